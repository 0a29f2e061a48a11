"""Spec -> Vertex `TuningJob` request body, with a mapping for every spec field.

`compile_job` is the one place that decides what the service receives. It builds the body
as a plain camelCase dict (the JSON the REST API receives; `apply` turns it into the proto
with `json_format.ParseDict`), records how each spec field was mapped, and collects the
diagnostics of the catalog's pre-flight rules. It imports nothing from google.*: `validate`
and `plan` stay fast.

Two values are only known at apply time and appear as placeholders in the plan: the run
id in the `tunespec_run` label, and the content hash in the name of a dataset staged from
local files.

`method.objective: preference` compiles to a `preferenceOptimizationSpec` (beta, epochs,
adapter size, learning-rate multiplier, datasets of Gemini preference records) instead of a
`supervisedTuningSpec`. `model.base: run:<spec>` compiles to `preTunedModel` (continued
tuning) when that spec's run was a Vertex job with a tuned model.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from tunespec import Diagnostic, FieldMapping, ResolvedSpec, Severity, TuningJob

from tunespec_vertex import labels as L
from tunespec_vertex.catalog import Catalog, ModelEntry, builtin_catalog, read_catalog_file
from tunespec_vertex.config import VertexConfig

if TYPE_CHECKING:
    from tunespec.data import DataReport

TUNED_MODEL = re.compile(r"^projects/[^/]+/locations/[^/]+/models/[^/@]+(@[^/]+)?$")
ADAPTER_SIZES = {1: "ADAPTER_SIZE_ONE", 2: "ADAPTER_SIZE_TWO", 4: "ADAPTER_SIZE_FOUR", 8: "ADAPTER_SIZE_EIGHT",
                 16: "ADAPTER_SIZE_SIXTEEN", 32: "ADAPTER_SIZE_THIRTY_TWO"}
MAX_DISPLAY_NAME = 128
STAGED_PLACEHOLDER = "<sha256>"
SPEC_KEYS = {"sft": "supervisedTuningSpec", "preference": "preferenceOptimizationSpec"}
"""The TuningJob field that holds the tuning spec, per `method.objective`."""

# Spec fields the service has no setting for. The service chooses these itself, so a
# non-default value is reported: a warning where the job is still what the user meant,
# an error where it would silently train something else.
SERVICE_OWNED: dict[str, tuple[Severity, str]] = {
    "model.revision": (Severity.ERROR, "Vertex tunes published model versions; name the version in `model.base`"),
    "model.chat_template": (Severity.ERROR, "Vertex always applies the model's own chat template"),
    "method.lora.alpha": (Severity.WARNING, "Vertex sets the LoRA scaling itself; only the rank (adapter size) is sent"),
    "method.lora.dropout": (Severity.WARNING, "Vertex has no LoRA dropout setting"),
    "method.lora.target_modules": (Severity.WARNING, "Vertex chooses the adapted modules itself"),
    "method.quantization": (Severity.ERROR, "Vertex quantises nothing for you: it tunes the model as it serves it. For QLoRA "
                            "(adapters on a 4-bit or 8-bit base) use the local or ray backend"),
    "method.media_encoder": (Severity.WARNING, "Vertex tunes Gemini's media understanding its own way: whether the media encoder "
                             "trains is not a setting it has (the spec still tunes the model on the same media)"),
    "data.documents.pages_as": (Severity.WARNING, "Gemini reads PDFs natively; their pages are not turned into images or text"),
    "data.documents.max_pages": (Severity.WARNING, "Gemini reads PDFs natively; Vertex's own limit of 300 pages per PDF is checked instead"),
    "data.documents.render_dpi": (Severity.WARNING, "Gemini reads PDFs natively; their pages are not rendered"),
    "hyperparameters.activation_checkpointing": (Severity.WARNING, "Vertex manages training memory itself"),
    "hyperparameters.max_steps": (Severity.ERROR, "Vertex trains whole epochs; set `hyperparameters.epochs` instead"),
    "hyperparameters.micro_batch_size": (Severity.WARNING, "Vertex chooses gradient accumulation itself"),
    "hyperparameters.optimizer": (Severity.WARNING, "Vertex uses its own optimizer"),
    "hyperparameters.weight_decay": (Severity.WARNING, "Vertex has no weight decay setting"),
    "hyperparameters.lr_scheduler": (Severity.WARNING, "Vertex uses its own learning-rate schedule"),
    "hyperparameters.warmup_ratio": (Severity.WARNING, "Vertex uses its own warm-up"),
    "hyperparameters.max_grad_norm": (Severity.WARNING, "Vertex has no gradient clipping setting"),
    "hyperparameters.packing": (Severity.WARNING, "Vertex decides on sequence packing itself"),
    "hyperparameters.seed": (Severity.WARNING, "Vertex has no seed setting: runs are not bit-reproducible"),
    "hyperparameters.precision": (Severity.WARNING, "Vertex chooses the training precision"),
    "evaluation.metrics": (Severity.WARNING, "this model and region have no evaluationConfig; the service reports validation loss"),
    "evaluation.compare_base": (Severity.WARNING, "the service evaluates the tuned model only, not the base model"),
    "evaluation.max_examples": (Severity.WARNING, "the service evaluates on the whole validation dataset"),
    "evaluation.max_new_tokens": (Severity.WARNING, "this model and region have no evaluationConfig"),
}

# Spec fields that tunespec itself consumes before the service sees anything.
CONSUMED_LOCALLY: dict[str, str] = {
    "data.format": "records converted to Gemini JSONL (`contents`) before staging",
    "data.fields": "prompt/completion field names, used when converting to Gemini JSONL",
    "data.max_reported_problems": "data validation report size",
    "output.path": "artifact root: manifest.json and spec.yaml of the run are written there",
    "evaluation.validation_loss": "the service computes validation loss when a validation dataset is sent",
    "tracking": "trackers receive the run when tunespec publishes it (what the job reported), as for every backend",
}


@dataclass
class Compiled:
    """What compilation produced: the request, how fields mapped, and the problems."""

    parent: str
    body: dict[str, Any]
    entry: ModelEntry | None
    mappings: list[FieldMapping] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    staged_splits: list[str] = field(default_factory=list)
    """Splits whose local sources `apply` converts and uploads (their URI is a placeholder)."""
    base_id: str | None = None
    """The catalog id of the model the job tunes (for continued tuning: what it was tuned from), when known."""
    service_chooses: list[str] = field(default_factory=list)
    """Hyperparameters the spec leaves unset, so the service picks its recommended value."""


class _Compiler:
    def __init__(self, spec: ResolvedSpec, data: "DataReport | None" = None):
        self.spec = spec
        self.data = data
        self.job: TuningJob = spec.job
        self.config: VertexConfig = spec.config  # type: ignore[assignment]
        self.mappings: list[FieldMapping] = []
        self.diagnostics: list[Diagnostic] = []
        self.catalog: Catalog | None = None
        self.objective = self.job.method.objective
        self.entry_id = self.job.model.base
        """The catalog id of the model the job tunes (for continued tuning, what it was tuned from)."""
        self.spec_key = SPEC_KEYS[self.objective]

    # -- helpers -------------------------------------------------------------------------
    def map(self, path: str, target: str | None, value: Any = None, note: str | None = None) -> None:
        self.mappings.append(FieldMapping(field=path, target=target, value=value, note=note))

    def diag(self, code: str, path: str, message: str, hint: str | None = None, severity: Severity = Severity.ERROR) -> None:
        self.diagnostics.append(Diagnostic(code, message, self.spec.locate(path), hint, severity))

    def written(self, path: str) -> bool:
        """True when the spec file sets `path` (to any value, the default included)."""
        *parents, name = path.split(".")
        obj: Any = self.job
        for p in parents:
            obj = getattr(obj, p)
            if obj is None:
                return False
        return name in obj.model_fields_set

    def user_set(self, path: str) -> bool:
        """True when the spec sets `path` to something other than its default."""
        if not self.written(path):
            return False
        *parents, name = path.split(".")
        obj: Any = self.job
        for p in parents:
            obj = getattr(obj, p)
        default = type(obj).model_fields[name].get_default(call_default_factory=True)
        return getattr(obj, name) != default

    # -- the catalog ---------------------------------------------------------------------
    def load_catalog(self) -> Catalog | None:
        catalog = builtin_catalog()
        try:
            if self.config.catalog_file:
                path = Path(self.spec.resolve_path(self.config.catalog_file))
                catalog = catalog.merged(read_catalog_file(path))
            if self.config.catalog is not None:
                catalog = catalog.merged(self.config.catalog.model_dump())
        except (OSError, ValueError, ValidationError) as exc:  # ValidationError is a ValueError
            where = "backend.catalog_file" if self.config.catalog_file else "backend.catalog"
            first = str(exc).splitlines()
            self.diag("TS116", where, f"model catalog override is invalid: {' '.join(first[:3])}",
                      "an override has the shape of plugins/tunespec_vertex/catalog.yaml (models:, data_rules:)")
            return None
        return catalog

    def model_entry(self, catalog: Catalog, model_id: str, where: str) -> ModelEntry | None:
        found = catalog.lookup(model_id)
        if found is None:
            close = difflib.get_close_matches(model_id, catalog.tunable_ids(), n=1, cutoff=0.5)
            hint = f"did you mean `{close[0]}`?" if close else "tunable models: " + ", ".join(catalog.tunable_ids())
            self.diag("TS301", where, f"`{model_id}` is not a Vertex tunable model in the catalog",
                      hint + " (add a model with `backend.catalog.models`)")
            return None
        key, entry = found
        if entry.retired is not None:
            since = f" on {entry.retired.since}" if entry.retired.since else ""
            self.diag("TS310", where, f"`{model_id}` was retired{since}: Vertex no longer tunes it",
                      f"use `{entry.retired.replacement}` instead")
            return None
        return entry

    # -- the body, section by section -----------------------------------------------------
    def compile(self) -> Compiled:
        cfg = self.config
        parent = f"projects/{cfg.project}/locations/{cfg.location}"
        catalog = self.catalog = self.load_catalog()
        body: dict[str, Any] = {}
        entry = self.base_model(body, catalog) if catalog is not None else None
        sts: dict[str, Any] = {}
        staged = self.datasets(sts)
        hp: dict[str, Any] = {}
        self.method(sts, hp, entry)
        self.hyperparameters(hp, entry)
        self.preference(hp, entry)
        if hp:
            sts["hyperParameters"] = hp
        if cfg.export_last_checkpoint_only:
            sts["exportLastCheckpointOnly"] = True
        self.evaluation(sts, entry)
        body[self.spec_key] = sts
        self.metadata(body)
        self.backend_options(body, entry)
        self.service_owned()
        self.consumed_locally()
        return Compiled(parent, body, entry, self.mappings, self.diagnostics, staged, self.entry_id if entry is not None else None,
                        self.service_chooses())

    def base_model(self, body: dict[str, Any], catalog: Catalog) -> ModelEntry | None:
        base, cfg = self.job.model.base, self.config
        if self.job.model.upstream is not None:  # run:<spec>: continued tuning of that spec's tuned model
            return self.upstream_model(body, catalog)
        if TUNED_MODEL.match(base):  # continued tuning of a model tuned earlier
            return self.pre_tuned_model(body, catalog)
        for option in ("checkpoint_id", "pre_tuned_base_model"):
            if getattr(cfg, option):
                self.diag("TS115", f"backend.{option}", f"`{option}` only applies to continued tuning",
                          f"set `model.base` to a tuned model (`projects/P/locations/L/models/M`) or remove `{option}`")
        body["baseModel"] = base
        self.map("model.base", "baseModel", base)
        return self.usable(self.model_entry(catalog, base, "model.base"), base)

    def upstream_model(self, body: dict[str, Any], catalog: Catalog) -> ModelEntry | None:
        """`run:<spec>`: the tuned model of that spec's latest succeeded Vertex run (a Gemini
        adapter lives in the service, so only a Vertex run can be continued on Vertex)."""
        from tunespec.chains import PendingUpstream, UpstreamRun

        upstream, name = self.spec.upstream, self.job.model.upstream
        if isinstance(upstream, PendingUpstream):
            tuned, base_id = f"<the tuned model of run:{name}>", None
        elif isinstance(upstream, UpstreamRun) and upstream.backend == "vertex" and upstream.tuned_model:
            tuned = upstream.tuned_model
            # What the upstream itself was tuned from: recorded by this backend (continued
            # chains), else its own model.base when that is a catalog id.
            base_id = upstream.manifest.outputs.get("base_model") or upstream.base_model
        elif isinstance(upstream, UpstreamRun):
            self.diag("TS301", "model.base", f"run:{name} ran on the {upstream.backend} backend; Vertex continues tuning only a model "
                      "it tuned itself (preTunedModel)", f"run {name} on Vertex too, or build on it with the {upstream.backend} backend")
            return None
        else:
            self.diag("TS125", "model.base", f"`{self.job.model.base}` was not resolved to a run",
                      "run `tunespec plan` or `apply`, which resolve run: references through the state database")
            return None
        return self.pre_tuned_model(body, catalog, tuned, base_id)

    def pre_tuned_model(self, body: dict[str, Any], catalog: Catalog, tuned: str | None = None, base_id: str | None = None) -> ModelEntry | None:
        base, cfg = tuned or self.job.model.base, self.config
        pre: dict[str, Any] = {"tunedModelName": base}
        if cfg.checkpoint_id:
            pre["checkpointId"] = cfg.checkpoint_id
        body["preTunedModel"] = pre
        note = f"continued tuning of {self.job.model.base}'s tuned model" if tuned else "continued tuning of a tuned model"
        self.map("model.base", "preTunedModel.tunedModelName", base, note)
        model_location = base.split("/")[3] if TUNED_MODEL.match(base) else cfg.location
        if model_location != cfg.location:
            self.diag("TS305", "backend.location", f"the tuned model is in `{model_location}`, the job would run in `{cfg.location}`",
                      f"set `backend.location: {model_location}`")
        if cfg.pre_tuned_base_model is None and base_id and catalog.lookup(base_id) is not None:
            entry = self.model_entry(catalog, base_id, "model.base")
            return self.usable(entry, base_id)
        if cfg.pre_tuned_base_model is None:
            self.diag("TS301", "model.base", "the base of this tuned model is unknown, so the catalog's checks "
                      "(adapter sizes, regions, CMEK) are skipped",
                      "set `backend.pre_tuned_base_model` to the model it was tuned from", Severity.WARNING)
            return None
        entry = self.model_entry(catalog, cfg.pre_tuned_base_model, "backend.pre_tuned_base_model")
        return self.usable(entry, cfg.pre_tuned_base_model)

    def usable(self, entry: ModelEntry | None, model_id: str) -> ModelEntry | None:
        """The catalog's region and modality rules for the model the job tunes."""
        if entry is None:
            return None
        self.entry_id = model_id
        if self.config.location == "global":
            self.diag("TS305", "backend.location", "Vertex AI tuning jobs do not run on the `global` endpoint (Google lists tuning "
                      "among the features the global endpoint lacks)", "tuning regions for this model: " + ", ".join(entry.regions))
        elif self.config.location not in entry.regions:
            self.diag("TS305", "backend.location", f"`{model_id}` cannot be tuned in `{self.config.location}`",
                      "tuning regions for this model: " + ", ".join(entry.regions))
        if self.job.data.modality not in entry.modalities:
            self.diag("TS303", "data.modality", f"`{model_id}` does not tune on {self.job.data.modality} data",
                      "modalities for this model: " + ", ".join(entry.modalities))
        return entry

    def datasets(self, sts: dict[str, Any]) -> list[str]:
        staged = []
        records = "Gemini preference JSONL" if self.objective == "preference" else "Gemini JSONL"
        for split, key in (("train", "trainingDatasetUri"), ("validation", "validationDatasetUri")):
            sources = getattr(self.job.data, split)
            if not sources:
                self.map(f"data.{split}", None, None, "no validation data: the service reports no validation loss")
                continue
            direct = self.direct_uri(split, sources)
            if direct is not None:
                sts[key] = direct
                self.map(f"data.{split}", f"{self.spec_key}.{key}", direct, f"{records} in Cloud Storage, used as is")
                continue
            staged.append(split)
            if self.config.staging_bucket is None:
                self.diag("TS313", f"data.{split}", f"`data.{split}` needs converting and uploading, but no staging bucket is set",
                          "set `backend.staging_bucket: gs://BUCKET[/prefix]`")
                continue
            uri = staged_dataset_uri(self.config, STAGED_PLACEHOLDER)
            sts[key] = uri
            self.map(f"data.{split}", f"{self.spec_key}.{key}", uri,
                     f"converted to {records} and uploaded at apply under its content hash (skipped when already there); "
                     "local media files are uploaded and referenced as gs://")
        return staged

    def direct_uri(self, split: str, sources: list) -> str | None:
        """A split is used in place when it is one Gemini JSONL file already in Cloud Storage
        (format `gemini`, or `auto` and detected as Gemini by data validation)."""
        if len(sources) != 1 or not sources[0].path.startswith("gs://") or not sources[0].path.endswith(".jsonl"):
            return None
        src = sources[0]
        fmt = src.format if src.format != "auto" else self.job.data.format
        if fmt == "auto" and self.data is not None:
            detected = {f.format for f in self.data.files if f.split == split and f.path == src.path}
            fmt = detected.pop() if len(detected) == 1 else fmt
        return src.path if fmt == ("gemini_preference" if self.objective == "preference" else "gemini") else None

    def method(self, sts: dict[str, Any], hp: dict[str, Any], entry: ModelEntry | None) -> None:
        method = self.job.method
        if entry is not None and method.type not in entry.methods:
            allowed = " or ".join(entry.methods)
            hint = ("Gemini models tune PEFT adapters only: set `method: peft`" if entry.family == "gemini"
                    else f"this model accepts: {allowed}")
            self.diag("TS302", "method.type", f"`{self.job.model.base}` cannot be tuned with method `{method.type}`", hint)
        if entry is not None and self.objective not in entry.objectives:
            able = [k for k, e in (self.catalog.models.items() if self.catalog else []) if self.objective in e.objectives and e.retired is None]
            self.diag("TS302", "method.objective", f"`{self.entry_id}` cannot be {self.objective}-tuned on Vertex",
                      f"models with {self.objective} tuning: " + (", ".join(able) or "none in the catalog"))
        open_model = entry is not None and entry.family == "open"
        mode = "TUNING_MODE_FULL" if method.type == "full" else "TUNING_MODE_PEFT_ADAPTER"
        if open_model and self.objective == "sft":
            sts["tuningMode"] = mode
            self.map("method.type", f"{self.spec_key}.tuningMode", mode)
        else:
            self.map("method.type", None, method.type,
                     "Gemini models always tune PEFT adapters; `tuningMode` is only sent for open models")
        if method.lora is None or not self.written("method.lora.rank"):
            # Unset: the service's recommended adapter size for the model (not tunespec's default rank).
            self.map("method.lora.rank", None, None, "not set: the service chooses the adapter size")
            return
        rank = method.lora.rank
        size = ADAPTER_SIZES.get(rank)
        sizes = (entry.preference_adapter_sizes if self.objective == "preference" else entry.adapter_sizes) if entry is not None else None
        if size is None or (sizes is not None and rank not in sizes):
            allowed = sizes if sizes is not None else sorted(ADAPTER_SIZES)
            what = "preference tuning of" if self.objective == "preference" else "tuning"
            self.diag("TS302", "method.lora.rank", f"adapter size {rank} is not supported for {what} `{self.job.model.base}`",
                      "set `method.lora.rank` to one of " + ", ".join(map(str, allowed)))
            return
        hp["adapterSize"] = size
        self.map("method.lora.rank", f"{self.spec_key}.hyperParameters.adapterSize", size)

    def hyperparameters(self, hp: dict[str, Any], entry: ModelEntry | None) -> None:
        """Values the service has a recommendation for (epochs, multiplier, batch size) are
        sent only when the spec sets them: left unset, the service chooses, and the plan
        says so. A learning rate and a multiplier are never both sent."""
        h, open_model = self.job.hyperparameters, entry is not None and entry.family == "open"
        if self.written("hyperparameters.epochs"):
            hp["epochCount"] = h.epochs
            self.map("hyperparameters.epochs", f"{self.spec_key}.hyperParameters.epochCount", h.epochs)
        else:
            self.map("hyperparameters.epochs", None, None, "not set: the service chooses the epochs for the dataset size")
        if h.learning_rate_multiplier is not None:
            hp["learningRateMultiplier"] = h.learning_rate_multiplier
            self.map("hyperparameters.learning_rate_multiplier",
                     f"{self.spec_key}.hyperParameters.learningRateMultiplier", h.learning_rate_multiplier)
        else:
            self.map("hyperparameters.learning_rate_multiplier", None, None, "not set: the service's recommended rate (multiplier 1.0)")
        if h.learning_rate is not None:
            if open_model or entry is None:
                if h.learning_rate_multiplier is None:  # both set is refused by the spec schema (TS115)
                    hp["learningRate"] = h.learning_rate
                self.map("hyperparameters.learning_rate", f"{self.spec_key}.hyperParameters.learningRate", h.learning_rate)
            else:
                self.diag("TS303", "hyperparameters.learning_rate",
                          "Gemini models take a learning-rate multiplier, not a learning rate",
                          "use `hyperparameters.learning_rate_multiplier` (1.0 = Google's recommended rate)")
        else:
            self.map("hyperparameters.learning_rate", None, None,
                     "not set: the service's recommended rate" + (" (times the multiplier)" if not open_model else ""))
        if open_model and self.written("hyperparameters.batch_size"):
            hp["batchSize"] = h.batch_size
            self.map("hyperparameters.batch_size", f"{self.spec_key}.hyperParameters.batchSize", h.batch_size)
        elif open_model:
            self.map("hyperparameters.batch_size", None, None, "not set: the service chooses the batch size")
        elif self.user_set("hyperparameters.batch_size"):
            self.diag("TS303", "hyperparameters.batch_size", "Gemini tuning chooses the batch size itself; `batch_size` is not sent",
                      "remove `hyperparameters.batch_size` (it only applies to open models on Vertex)", Severity.WARNING)
            self.map("hyperparameters.batch_size", None, h.batch_size, "not sent: Gemini tuning chooses the batch size")
        else:
            self.map("hyperparameters.batch_size", None, h.batch_size, "not sent: Gemini tuning chooses the batch size")

    # Spec metrics the Gen AI evaluation service computes itself (the rest have no equivalent).
    EVALUATION_METRICS = {"exact_match": {"exactMatchSpec": {}, "aggregationMetrics": ["AVERAGE"]}}

    def evaluation(self, sts: dict[str, Any], entry: ModelEntry | None) -> None:
        """`evaluation` written in the spec becomes the job's `evaluationConfig` (Gen AI
        evaluation of the tuned model on the validation set, after tuning) where the model
        and region have it; its results come back in the job and in the manifest."""
        ev, cfg = self.job.evaluation, self.config
        if "evaluation" not in self.job.model_fields_set or self.objective != "sft" or entry is None:
            return
        if cfg.location not in entry.evaluation_regions:
            where = ", ".join(entry.evaluation_regions) or "no region"
            self.diag("TS303", "evaluation", f"`{self.entry_id}` has evaluationConfig in {where}, not in `{cfg.location}`: "
                      "the job runs without it", "remove `evaluation` for this job, or tune in a region that has it", Severity.WARNING)
            return
        if not self.job.data.validation:
            self.diag("TS303", "evaluation", "the service evaluates the tuned model on the validation dataset, and there is none",
                      "add `data.validation`", Severity.WARNING)
            return
        if cfg.staging_bucket is None:
            self.diag("TS313", "evaluation", "evaluation results are written to Cloud Storage, but no staging bucket is set",
                      "set `backend.staging_bucket: gs://BUCKET[/prefix]`")
            return
        metrics = [self.EVALUATION_METRICS[m] for m in ev.metrics if m in self.EVALUATION_METRICS]
        unsent = [m for m in ev.metrics if m not in self.EVALUATION_METRICS]
        if unsent:
            self.diag("TS303", "evaluation.metrics", f"the Gen AI evaluation service has no {', '.join(unsent)} metric; not sent",
                      "use `exact_match`, or evaluate the tuned model with the local backend", Severity.WARNING)
        if not metrics:
            return
        bucket, prefix = cfg.bucket_and_prefix
        out = f"gs://{bucket}/{prefix + '/' if prefix else ''}evaluations/"
        sts["evaluationConfig"] = {
            "metrics": metrics,
            "outputConfig": {"gcsDestination": {"outputUriPrefix": out}},
            "inferenceGenerationConfig": {"maxOutputTokens": ev.max_new_tokens},
        }
        self.map("evaluation.metrics", f"{self.spec_key}.evaluationConfig.metrics", [m for m in ev.metrics if m not in unsent],
                 f"the Gen AI evaluation service scores the tuned model; results under {out}")
        self.map("evaluation.max_new_tokens", f"{self.spec_key}.evaluationConfig.inferenceGenerationConfig.maxOutputTokens", ev.max_new_tokens)

    def service_chooses(self) -> list[str]:
        """What the plan shows as left to the service."""
        return [name for path, name in (("hyperparameters.epochs", "epochs"), ("method.lora.rank", "adapter size"))
                if not self.written(path)] + (["learning rate"] if self.job.hyperparameters.learning_rate is None
                                              and self.job.hyperparameters.learning_rate_multiplier is None else [])

    def preference(self, hp: dict[str, Any], entry: ModelEntry | None) -> None:
        """The objective, and for preference tuning its options: beta is sent, the loss must
        be DPO's (the service's only one)."""
        method = self.job.method
        self.map("method.objective", self.spec_key, method.objective,
                 "preference tuning (DPO) of a Gemini model" if self.objective == "preference" else None)
        if method.preference is None:
            for name in ("beta", "loss", "sft_weight"):
                self.map(f"method.preference.{name}", None, None, "only with `method.objective: preference`")
            return
        hp["beta"] = method.preference.beta
        self.map("method.preference.beta", f"{self.spec_key}.hyperParameters.beta", method.preference.beta,
                 None if "beta" in method.preference.model_fields_set else "tunespec's default (the service's own is used when not sent)")
        if method.preference.loss != "sigmoid":
            self.diag("TS303", "method.preference.loss", f"Vertex preference tuning has no `{method.preference.loss}` loss: it trains DPO's sigmoid loss",
                      "set `method.preference.loss: sigmoid` (or remove it) for this backend")
        self.map("method.preference.loss", None, method.preference.loss, "the service's DPO loss (sigmoid), not sent")
        if method.preference.sft_weight:
            self.diag("TS303", "method.preference.sft_weight", "Vertex preference tuning has no supervised (RPO) term in its loss",
                      "remove `method.preference.sft_weight` (or set it to 0) for this backend; tune supervised first and chain "
                      "the preference spec on it with `model.base: run:<spec>` instead")
        self.map("method.preference.sft_weight", None, method.preference.sft_weight, "not sent: the service trains plain DPO")

    def metadata(self, body: dict[str, Any]) -> None:
        meta = self.job.metadata
        body["tunedModelDisplayName"] = meta.name[:MAX_DISPLAY_NAME]
        self.map("metadata.name", "tunedModelDisplayName", meta.name)
        if meta.description:
            body["description"] = meta.description
            self.map("metadata.description", "description", meta.description)
        else:
            self.map("metadata.description", None, None, "not set")
        labels: dict[str, str] = {}
        for source, given in (("metadata.labels", meta.labels), ("backend.labels", self.config.labels)):
            fixed = {}
            for key, value in given.items():
                k, v, problem = L.fix_label(key, value)
                if problem:
                    self.diag("TS116", f"{source}.{key}", problem, "label keys: lowercase letters first, then letters, digits, `_`, `-`")
                elif k.startswith(L.RESERVED_PREFIXES):
                    self.diag("TS116", f"{source}.{key}", f"label `{k}` is reserved for tunespec", "rename the label")
                else:
                    fixed[k] = v
            labels.update(fixed)
            changed = fixed != given
            self.map(source, "labels", fixed, "sanitised to Vertex label rules (lowercase, `-` for other characters)" if changed else None)
        labels[L.SPEC_LABEL] = L.sanitize(meta.name)
        labels[L.FINGERPRINT_LABEL] = self.spec.fingerprint[: L.FINGERPRINT_CHARS]
        labels[L.RUN_LABEL] = L.RUN_ID_PLACEHOLDER
        if len(labels) > L.MAX_LABELS:
            self.diag("TS116", "metadata.labels", f"{len(labels)} labels; Vertex allows at most {L.MAX_LABELS}",
                      "remove labels (tunespec adds 3 of its own)")
        body["labels"] = labels

    def backend_options(self, body: dict[str, Any], entry: ModelEntry | None) -> None:
        cfg = self.config
        open_model = entry is not None and entry.family == "open"
        self.map("backend.project", None, cfg.project, f"parent: projects/{cfg.project}/locations/{cfg.location}")
        self.map("backend.location", None, cfg.location, "regional endpoint and job location")
        for name in ("encryption_key", "service_account", "output_uri", "custom_base_model"):
            if getattr(cfg, name) is None:
                self.map(f"backend.{name}", None, None, "not set")
        if cfg.encryption_key:
            if entry is not None and not entry.cmek:
                self.diag("TS312", "backend.encryption_key", f"`{self.job.model.base}` does not support customer-managed encryption keys",
                          "remove `encryption_key` or choose a model whose catalog entry has `cmek: true`")
            key_location = cfg.encryption_key.split("/")[3]
            if key_location != cfg.location:  # Vertex uses a CMEK key only in the resource's own region
                self.diag("TS312", "backend.encryption_key", f"the KMS key is in `{key_location}`, the job runs in `{cfg.location}`",
                          f"use a key ring in `{cfg.location}` (`projects/P/locations/{cfg.location}/keyRings/R/cryptoKeys/K`)")
            body["encryptionSpec"] = {"kmsKeyName": cfg.encryption_key}
            self.map("backend.encryption_key", "encryptionSpec.kmsKeyName", cfg.encryption_key)
        if cfg.service_account:
            body["serviceAccount"] = cfg.service_account
            self.map("backend.service_account", "serviceAccount", cfg.service_account)
        if cfg.output_uri and entry is not None and not entry.output_uri:
            self.diag("TS303", "backend.output_uri", f"`{self.entry_id}` keeps its tuned model in Vertex AI; it takes no `output_uri`",
                      "remove `backend.output_uri` (it applies to open models, which write their weights there)")
            self.map("backend.output_uri", None, cfg.output_uri, "not sent: the model does not accept it")
        elif cfg.output_uri:
            body["outputUri"] = cfg.output_uri
            self.map("backend.output_uri", "outputUri", cfg.output_uri)
        elif open_model:
            self.diag("TS313", "backend", f"open model `{self.job.model.base}` writes its tuned weights to `output_uri`, which is not set",
                      "set `backend.output_uri: gs://BUCKET/path`")
        if cfg.custom_base_model:
            if entry is not None and not open_model:
                self.diag("TS303", "backend.custom_base_model", "`custom_base_model` only applies to open models",
                          "remove it, or tune an open model (e.g. `meta/llama3_1@llama-3.1-8b`)")
            body["customBaseModel"] = cfg.custom_base_model
            self.map("backend.custom_base_model", "customBaseModel", cfg.custom_base_model)
        self.max_seq_length(entry)
        for name in ("staging_bucket", "wait", "poll_interval", "timeout", "api_endpoint", "credentials",
                     "catalog", "catalog_file", "pre_tuned_base_model", "checkpoint_id", "export_last_checkpoint_only"):
            if name == "checkpoint_id" and cfg.checkpoint_id and "preTunedModel" in body:
                self.map("backend.checkpoint_id", "preTunedModel.checkpointId", cfg.checkpoint_id)
            elif name == "export_last_checkpoint_only" and cfg.export_last_checkpoint_only:
                self.map("backend.export_last_checkpoint_only", f"{self.spec_key}.exportLastCheckpointOnly", True)
            else:
                self.map(f"backend.{name}", None, _jsonable(getattr(cfg, name)), "tunespec option (not sent)")

    def max_seq_length(self, entry: ModelEntry | None) -> None:
        """Vertex has no truncation setting: the service's own limit applies. Data validation
        reports examples over `data.max_seq_length` (TS215), so the honest value is that limit."""
        value = self.job.data.max_seq_length
        limit = entry.sequence_limit(self.job.method.type) if entry is not None else None
        if limit is None and self.catalog is not None:
            limit = self.catalog.data_rules.max_tokens_per_example
        if limit is None:
            self.map("data.max_seq_length", None, value, "not sent")
            return
        service = f"the service trains on up to {limit:,} tokens per example"
        note = f"not sent: {service}"
        if self.user_set("data.max_seq_length") and value != limit:
            self.diag("TS304", "data.max_seq_length", f"Vertex does not truncate examples to {value:,} tokens; {service}",
                      f"set `data.max_seq_length: {limit}` so validation reports what the service does", Severity.WARNING)
        elif value < limit:
            note += f"; set `data.max_seq_length: {limit}` so validation checks examples against it, not {value:,}"
        self.map("data.max_seq_length", None, value, note)

    def service_owned(self) -> None:
        for path, (severity, why) in SERVICE_OWNED.items():
            if any(m.field == path and m.target for m in self.mappings):
                continue  # sent after all (evaluationConfig)
            if self.user_set(path):
                self.diag("TS303", path, f"`{path}` cannot be honoured by Vertex: {why}",
                          f"remove `{path}` for this backend", severity)
                self.map(path, None, _jsonable(_get(self.job, path)), f"not sent: {why}")
            elif not any(m.field == path for m in self.mappings):
                self.map(path, None, _jsonable(_get(self.job, path)), f"default, not sent: {why}")

    def consumed_locally(self) -> None:
        for path, note in CONSUMED_LOCALLY.items():
            self.map(path, None, _jsonable(_get(self.job, path)), note)
        self.map("data.modality", None, self.job.data.modality, "selects the modality rules checked before upload")


def staged_dataset_uri(config: VertexConfig, digest: str) -> str:
    """Where a converted dataset lives in the staging bucket: named by its sha256."""
    bucket, prefix = config.bucket_and_prefix
    return f"gs://{bucket}/{prefix + '/' if prefix else ''}datasets/{digest}.jsonl"


def compile_job(spec: ResolvedSpec, data: "DataReport | None" = None) -> Compiled:
    return _Compiler(spec, data).compile()


def load_catalog(spec: ResolvedSpec) -> Catalog | None:
    """The built-in catalog with the spec's overrides; None when an override is invalid."""
    return _Compiler(spec).load_catalog()


def _get(obj: Any, path: str) -> Any:
    for p in path.split("."):
        obj = getattr(obj, p, None)
    return obj


def _jsonable(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


__all__ = ["ADAPTER_SIZES", "SPEC_KEYS", "Compiled", "compile_job", "load_catalog", "staged_dataset_uri"]
