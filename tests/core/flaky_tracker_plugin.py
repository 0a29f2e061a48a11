"""A third-party tracker, added through the `tunespec_trackers` hook as any plugin would:
it records what it is sent in a JSON file, and can be told to fail half way."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

import tunespec
from tunespec.tracking import Tracker


class NotebookOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="JSON file the run is written to.")
    fail_after: str | None = Field(default=None, description="Raise after sending this part (params, metrics, ...).")


class NotebookTracker(Tracker):
    name = "notebook"
    description = "Writes runs to a JSON file (for tests)."
    config_model = NotebookOptions

    def send(self, run, config, sent):
        written = {}
        for part, value in (("params", run.params), ("metrics", run.step_metrics()), ("data", run.data),
                            ("evaluation", run.evaluation), ("manifest", run.manifest)):
            written[part] = value
            Path(config.file).write_text(json.dumps({"run_id": run.run_id, **written}))
            sent.part(part)
            if part == config.fail_after:
                raise ConnectionError("notebook server went away")
        sent.where["file"] = config.file


@tunespec.hookimpl
def tunespec_trackers():
    return [NotebookTracker()]
