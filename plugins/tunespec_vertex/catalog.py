"""The Vertex model catalog: which base models tune, how, where, with which limits.

The facts live in `catalog.yaml` beside this module (data, not code branches). A spec can
extend or override entries from its backend block (`catalog:`) or a YAML file
(`catalog_file:`); an override is merged field by field over the built-in entry, so a user
can, say, add a region without restating the adapter sizes.
"""

from __future__ import annotations

import fnmatch
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from tunespec.data import DataRules

CATALOG_FILE = Path(__file__).with_name("catalog.yaml")


class Retirement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: str = Field(description="Date (YYYY-MM-DD) from which the service refuses new tuning jobs.")
    replacement: str = Field(description="The model to use instead; named in the diagnostic.")


class ModelEntry(BaseModel):
    """What one tunable base model accepts."""

    model_config = ConfigDict(extra="forbid")

    family: Literal["gemini", "open"] = Field(
        description="`gemini`: PEFT adapters and a learning-rate multiplier. `open`: open-weight models "
        "(Llama, Gemma, Qwen) with full or PEFT tuning, learning rate, batch size and `output_uri`."
    )
    methods: list[Literal["peft", "full"]] = Field(default_factory=list, description="Tuning methods the model accepts.")
    objectives: list[Literal["sft", "preference"]] = Field(
        default_factory=lambda: ["sft"], description="Training objectives: `sft` (supervised tuning), `preference` (preference tuning, DPO)."
    )
    modalities: list[Literal["text", "image", "audio", "document", "video"]] = Field(
        default_factory=lambda: ["text"], description="Data modalities the model tunes on."
    )
    adapter_sizes: list[int] = Field(default_factory=list, description="LoRA ranks (`adapter_size`) the service accepts.")
    preference_adapter_sizes: list[int] = Field(
        default_factory=list, description="LoRA ranks (`adapter_size`) the service accepts for preference tuning."
    )
    regions: list[str] = Field(default_factory=list, description="Locations where tuning jobs for this model run.")
    cmek: bool = Field(default=False, description="Whether customer-managed encryption keys (`encryption_key`) are supported.")
    max_sequence_length: int | None = Field(default=None, description="Longest training sequence, in tokens (open models).")
    retired: Retirement | None = Field(default=None, description="Set when the model can no longer be tuned.")


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelEntry] = Field(description="Model id (or glob) -> what it accepts.")
    data_rules: DataRules = Field(description="Dataset limits of supervised tuning, for every model (tunespec's DataRules table).")
    preference_data_rules: DataRules = Field(
        default_factory=DataRules, description="Dataset limits of preference tuning, for every model (tunespec's DataRules table)."
    )

    def rules_for(self, objective: str) -> DataRules:
        """The dataset limits of supervised (`sft`) or `preference` tuning."""
        return self.preference_data_rules if objective == "preference" else self.data_rules

    def lookup(self, model_id: str) -> tuple[str, ModelEntry] | None:
        """The entry for `model_id`: an exact key first, else the first glob key (file order)."""
        if model_id in self.models:
            return model_id, self.models[model_id]
        for key, entry in self.models.items():
            if any(c in key for c in "*?[") and fnmatch.fnmatchcase(model_id, key):
                return key, entry
        return None

    def tunable_ids(self) -> list[str]:
        """Exact ids of models that can still be tuned (for did-you-mean hints)."""
        return [k for k, e in self.models.items() if e.retired is None and not any(c in k for c in "*?[")]

    def merged(self, override: dict[str, Any] | None) -> "Catalog":
        """This catalog with `override` (same shape, any subset) merged over it, entry by entry."""
        if not override:
            return self
        base = self.model_dump(mode="json")
        models = base["models"]
        for key, fields in (override.get("models") or {}).items():
            models[key] = {**models.get(key, {}), **(fields or {})}
        for section in ("data_rules", "preference_data_rules"):
            rules = base[section]
            for key, value in (override.get(section) or {}).items():
                if key == "media":  # media kinds merge one by one, like models
                    for kind, limits in (value or {}).items():
                        rules["media"][kind] = {**rules["media"].get(kind, {}), **(limits or {})}
                else:
                    rules[key] = value
        return Catalog.model_validate({"models": models, "data_rules": base["data_rules"], "preference_data_rules": base["preference_data_rules"]})


# libyaml's loader when present: the catalog is read on every `validate`, keep it quick.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def builtin_catalog() -> Catalog:
    return Catalog.model_validate(yaml.load(CATALOG_FILE.read_text(), Loader=SAFE_LOADER))


def read_catalog_file(path: Path) -> dict[str, Any]:
    """A user's catalog override file: the same shape as catalog.yaml, any subset of it."""
    data = yaml.load(path.read_text(), Loader=SAFE_LOADER) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a catalog file is a mapping with `models:` and/or `data_rules:`")
    return data
