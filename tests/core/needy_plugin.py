"""A plugin whose backend needs a module that is not installed (for `plugins` / TS300 tests)."""

from pydantic import BaseModel

import tunespec
from tunespec import Backend, Plan


class NeedyConfig(BaseModel):
    pass


class NeedyBackend(Backend):
    name = "needy"
    config_model = NeedyConfig
    requires = ("tunespec_surely_missing_module",)
    install_hint = "pip install tunespec-surely-missing"

    def compile(self, spec, data):
        return Plan(backend=self.name, spec_name=spec.name, job={})


@tunespec.hookimpl
def tunespec_backends():
    return [NeedyBackend()]
