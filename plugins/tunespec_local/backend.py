"""LocalBackend: fine-tune on this machine with torch + peft.

validate / compile / token_counter are light (they run for `tunespec validate` and
`plan`): they resolve the model to files, read the cached tokenizer if there is one, and
turn the spec into a `TrainConfig`. `apply` does the heavy work in `run.py`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from pathlib import Path
from typing import Any, Iterable

import tunespec
from tunespec import Backend, Diagnostic, DiagnosticError, FieldMapping, Plan, ResolvedModel, ResolvedSpec, RunContext, RunResult, Severity

from tunespec_local.config import LocalConfig
from tunespec_local.hardware import cpu_has_native_bf16
from tunespec_local.media import AUDIO_INSTALL_HINT, PROCESSOR_FILES, model_modality
from tunespec_local.models.cache import cache_root, cached_folder, tokenizer_folder

LORA_AUTO_TARGETS = "all-linear"
"""`target_modules: auto` means every linear layer of the transformer blocks (attention
and MLP projections; peft leaves the output head out), the QLoRA paper's finding of what
works best for a given rank."""


class LocalBackend(Backend):
    name = "local"
    description = "Fine-tune on this machine (CPU, CUDA or Apple MPS) with torch + peft."
    config_model = LocalConfig
    requires = ("torch", "transformers", "peft", "tokenizers", "safetensors")
    install_hint = "pip install 'tunespec[local]'"
    export_formats = ("merged",)

    # -- light: validate / plan ---------------------------------------------------------

    def token_counter(self, spec: ResolvedSpec):
        """Exact counts once the model's folder exists locally (a HF folder, or a GGUF file
        converted by an earlier run); None otherwise, and tunespec estimates."""
        from tunespec_local.encode import ChatTokenCounter

        try:
            folder = tokenizer_folder(resolve_model(spec), cache_root(_config(spec).cache_dir))
            if folder is None:
                return None
            if not (folder / "tokenizer.json").is_file() or not (spec.job.model.chat_template or _has_chat_template(folder)):
                return None  # validate() says what is missing
            # The tokenizer loads when something is counted (not at all when every count is
            # cached). The cache folder's name is a hash: name the model as the spec does.
            name = f"{spec.job.model.base} tokenizer + chat template"
            if spec.job.data.modality == "video":
                return None  # refused by validate (TS302)
            if spec.job.data.modality != "text":
                from tunespec_local.media.count import MediaTokenCounter

                return MediaTokenCounter(folder, spec.job.model.chat_template, name, spec.base_dir, spec.job.data.documents,
                                         spec.job.data.modality, text_only=model_modality(spec.job) == "text")
            return ChatTokenCounter(folder, spec.job.model.chat_template, name)
        except Exception:  # counting is a nicety: validate() reports model problems with their diagnostics
            return None

    def validate(self, spec: ResolvedSpec, data: Any) -> Iterable[Diagnostic]:
        job = spec.job
        try:
            model = resolve_model(spec)
        except DiagnosticError as exc:
            for d in exc.diagnostics:
                yield dataclasses.replace(d, location=spec.locate("model.base"))
            return
        yield from multimodal_problems(spec)
        if job.hyperparameters.optimizer == "adamw_8bit" and not _importable("bitsandbytes"):
            yield Diagnostic(
                "TS302",
                "optimizer `adamw_8bit` needs the bitsandbytes package, which is not installed",
                spec.locate("hyperparameters.optimizer"),
                hint="`pip install bitsandbytes` (CUDA only), or use `optimizer: adamw`",
            )
        if job.method.quantization != "none" and not _importable("bitsandbytes"):
            yield Diagnostic(
                "TS302",
                f"`method.quantization: {job.method.quantization}` (QLoRA) needs the bitsandbytes package, which is not installed",
                spec.locate("method.quantization"),
                hint="`pip install 'tunespec[local]'` (it brings bitsandbytes), or remove `quantization`",
            )
        if _config(spec).check_memory:
            yield from memory_fit(spec, data, model).diagnostics(spec, "backend.check_memory")
        if job.hyperparameters.learning_rate_multiplier is not None:
            yield Diagnostic(
                "TS304",
                f"`learning_rate_multiplier` is a Vertex option; the local backend uses {job.hyperparameters.learning_rate_multiplier} x "
                f"the default learning rate = {learning_rate(spec):g}",
                spec.locate("hyperparameters.learning_rate_multiplier"),
                hint="set `learning_rate` to say the exact value",
                severity=Severity.WARNING,
            )
        if job.hyperparameters.precision == "fp16":
            yield Diagnostic(
                "TS304",
                "`precision: fp16` trains with fp16 autocast and a gradient scaler, and only on CUDA",
                spec.locate("hyperparameters.precision"),
                hint="prefer `bf16` (or `auto`) on GPUs that support it",
                severity=Severity.WARNING,
            )
        if not job.data.validation and (job.evaluation.metrics or job.evaluation.validation_loss):
            yield Diagnostic(
                "TS303",
                "no validation data: evaluation (generation metrics, validation loss, base vs tuned) is skipped",
                spec.locate("data"),
                hint="add `data.validation` to see whether tuning beat the base model",
                severity=Severity.WARNING,
            )
        folder = tokenizer_folder(model, cache_root(_config(spec).cache_dir)) if model.kind != "hub" else None
        limit = _max_positions(folder) if folder is not None else None
        if limit is not None and job.data.max_seq_length > limit:
            yield Diagnostic(
                "TS116",
                f"`data.max_seq_length: {job.data.max_seq_length}` is longer than the model's context ({limit} positions)",
                spec.locate("data.max_seq_length"),
                hint=f"set `data.max_seq_length` to at most {limit}",
            )
        if folder is not None and model_modality(job) not in ("text", "video") and not _has_processor(folder):
            yield Diagnostic(
                "TS301",
                f"`data.modality: {job.data.modality}` needs a multimodal model with a processor; the model at {folder} has none "
                "(no processor_config.json or preprocessor_config.json): it is a text model",
                spec.locate("model.base"),
                hint="use an image/audio-text model (e.g. HuggingFaceTB/SmolVLM-256M-Instruct, Qwen/Qwen2-Audio-7B-Instruct)"
                + (", or `data.documents.pages_as: text` to give this model each PDF page's text" if job.data.modality == "document" else ""),
            )
        if folder is not None and not job.model.chat_template and not _has_chat_template(folder):
            yield Diagnostic(
                "TS301",
                f"the model at {folder} has no chat template, so conversations cannot be formatted",
                spec.locate("model.base"),
                hint="set `model.chat_template` to a Jinja chat template, or use an instruct model",
            )

    def compile(self, spec: ResolvedSpec, data: Any) -> Plan:
        job = spec.job
        config = _config(spec)
        model = resolve_model(spec)
        train_examples = _examples(data, "train")
        hp = job.hyperparameters
        micro = hp.micro_batch_size or hp.batch_size
        steps_per_epoch = max(1, math.ceil(train_examples / hp.batch_size)) if train_examples else None
        total_steps = hp.max_steps or (hp.epochs * steps_per_epoch if steps_per_epoch else None)
        lora = job.method.lora
        targets = (LORA_AUTO_TARGETS if lora and lora.target_modules == "auto" else lora.target_modules) if lora else None
        training = {
            "method": job.method.type,
            "objective": job.method.objective,
            "preference": _preference(job.method),
            "lora": {"rank": lora.rank, "alpha": lora.alpha, "dropout": lora.dropout, "target_modules": targets} if lora else None,
            "learning_rate": learning_rate(spec),
            "optimizer": hp.optimizer,
            "weight_decay": hp.weight_decay,
            "lr_scheduler": hp.lr_scheduler,
            "warmup_ratio": hp.warmup_ratio,
            "max_grad_norm": hp.max_grad_norm,
            "batch_size": hp.batch_size,
            "micro_batch_size": micro,
            "gradient_accumulation_steps": math.ceil(hp.batch_size / micro),
            "epochs": hp.epochs,
            "max_steps": hp.max_steps,
            "total_steps": total_steps,
            "packing": hp.packing,
            "max_seq_length": job.data.max_seq_length,
            "seed": hp.seed,
            "precision": hp.precision,
            "quantization": job.method.quantization,
            "activation_checkpointing": False,  # decided below, from the memory estimate when `auto`
        }
        fit = memory_fit(spec, data, model)
        training["activation_checkpointing"] = fit.checkpointing
        evaluation = {
            "metrics": list(job.evaluation.metrics),
            "compare_base": job.evaluation.compare_base,
            "max_examples": job.evaluation.max_examples,
            "max_new_tokens": job.evaluation.max_new_tokens,
            "validation_loss": job.evaluation.validation_loss,
        }
        cached = cached_folder(model, cache_root(config.cache_dir)) if model.kind != "hub" else None
        job_body = {
            "model": {"ref": model.ref, "kind": model.kind, "location": model.display, "revision": job.model.revision,
                      "hf_folder": str(cached) if cached else None},
            "training": training,
            "evaluation": evaluation,
            "runtime": config.model_dump(mode="json"),
            "memory": fit.as_plan(),
        }
        summary = {
            "model": model.display + ("" if model.kind != "gguf" else (" (converted, cached)" if cached else " (converted on first run, ~20 s)")),
            "method": job.method.type + (f" (LoRA r={lora.rank}, alpha={lora.alpha:g}, targets={targets})" if lora else "")
            + (f", QLoRA: {job.method.quantization} base" if job.method.quantization != "none" else ""),
            "objective": _describe_objective(job.method),
            "steps": total_steps,
            "batch": f"{hp.batch_size} examples/step ({micro} per forward, {'packed' if hp.packing else 'padded'})",
            "learning_rate": f"{learning_rate(spec):g} ({hp.lr_scheduler}, warm-up {hp.warmup_ratio:g})",
            "device": config.device,
            "memory": fit.summary(),
            "activation checkpointing": f"{'on' if fit.checkpointing else 'off'} ({fit.checkpointing_reason})",
            "evaluation": (", ".join(job.evaluation.metrics) + (" (base vs tuned)" if job.evaluation.compare_base else "")) if job.data.validation else "skipped: no validation data",
        }
        return Plan(backend=self.name, spec_name=spec.name, summary=summary, job=job_body, mappings=_mappings(spec, targets, micro, fit))

    # -- heavy: apply ---------------------------------------------------------------------

    def apply(self, ctx: RunContext) -> RunResult:
        # OpenMP threads that spin while waiting collapse throughput (5-10x measured on a
        # 2-core machine) when anything else uses the CPU; passive waiting costs little
        # when the machine is idle. Must be set before torch loads OpenMP; the user's own
        # setting wins.
        if "torch" not in sys.modules:
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from tunespec_local.run import run

        return run(ctx, _config(ctx.spec), resolve_model(ctx.spec))

    # -- using a published run (tunespec predict / export) -------------------------------

    def predictor(self, run, options):
        from tunespec_local.using import LocalPredictor

        return LocalPredictor(run, options, _run_cache_dir(run))

    def export(self, run, format, target, progress):
        from tunespec_local.using import export_merged

        return export_merged(run, target, _run_cache_dir(run), progress.log)


def _run_cache_dir(run: Any) -> Path:
    """The model cache the run's spec used (`backend.cache_dir` in its spec.yaml), where its
    base model was converted or downloaded."""
    import yaml

    from tunespec import secrets

    try:
        stored = yaml.safe_load((run.run_dir / "spec.yaml").read_text()) or {}
        cache_dir = (stored.get("backend") or {}).get("cache_dir")
    except (OSError, yaml.YAMLError, AttributeError):
        cache_dir = None
    return cache_root(secrets.expand(cache_dir)[0] if isinstance(cache_dir, str) else None)


def _preference(method: Any) -> dict[str, Any] | None:
    """The preference options as the loop runs them, with the reference model it uses."""
    if method.objective != "preference" or method.preference is None:
        return None
    reference = "the base model with the adapters disabled" if method.type == "peft" else "a frozen copy of the base model"
    return {"beta": method.preference.beta, "loss": method.preference.loss, "sft_weight": method.preference.sft_weight, "reference": reference}


def _describe_objective(method: Any) -> str:
    if method.objective != "preference" or method.preference is None:
        return "sft (cross-entropy on the model turns)"
    loss = "DPO sigmoid" if method.preference.loss == "sigmoid" else "IPO"
    if method.preference.sft_weight:
        loss += f" + {method.preference.sft_weight:g} x NLL of the preferred response (RPO)"
    return f"preference ({loss}, beta={method.preference.beta:g}, reference: {_preference(method)['reference']})"  # type: ignore[index]


def memory_fit(spec: ResolvedSpec, data: Any, model: ResolvedModel | None = None, *, device: Any = None, capacity: float | None = None,
               workers: int = 1, parallelism: str = "ddp", levers: Any = None) -> Any:
    """Does the job fit its device? (`tunespec_local.memory_plan.MemoryPlan`; no torch.) The
    ray backend passes its own device, declared memory, workers and parallelism."""
    from tunespec_local.devices import detect_device
    from tunespec_local.memory import Levers
    from tunespec_local.memory_plan import model_shape, plan_memory

    try:
        model = model or resolve_model(spec)
        # A hub model is looked up only when `plan` already knows its folder: finding it would
        # import huggingface_hub, which validate and plan otherwise never need.
        cached = cached_folder(model, cache_root(_config(spec).cache_dir)) if model.kind != "hub" else None
        shape, why = model_shape(model, cached)
    except DiagnosticError:
        shape, why = None, "the model cannot be resolved"
    device = device or detect_device(_config(spec).device)
    levers = levers or Levers()
    return plan_memory(spec, data, shape, device, capacity=capacity, workers=workers, parallelism=parallelism, levers=levers,
                       why_unknown=why)


def resolve_model(spec: ResolvedSpec) -> ResolvedModel:
    """`model.base` -> files, through the registered model resolvers (this plugin's and any
    other plugin's), with the spec's hub revision applied; `run:<spec>` -> that spec's
    published run (models/runs.py)."""
    if spec.job.model.upstream is not None:
        from tunespec_local.models.runs import resolve_run

        return resolve_run(spec)
    model = tunespec.resolve_model(spec.job.model.base, spec.base_dir, spec.locate("model.base"))
    if spec.job.model.revision and model.kind == "hub":
        model = dataclasses.replace(model, revision=spec.job.model.revision)
    return model


def learning_rate(spec: ResolvedSpec) -> float:
    hp = spec.job.hyperparameters
    if hp.learning_rate is None and hp.learning_rate_multiplier is not None:
        return spec.job.effective_learning_rate * hp.learning_rate_multiplier
    return spec.job.effective_learning_rate


def _config(spec: ResolvedSpec) -> LocalConfig:
    return spec.config if isinstance(spec.config, LocalConfig) else LocalConfig.model_validate(spec.config.model_dump() if spec.config else {})


def _examples(data: Any, split: str) -> int:
    try:
        return data.splits[split].examples
    except (AttributeError, KeyError):
        return 0


def _max_positions(folder: Path) -> int | None:
    """The model's context length from its config.json (None when it does not say)."""
    import json

    try:
        value = json.loads((Path(folder) / "config.json").read_text()).get("max_position_embeddings")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, int) else None


def _has_chat_template(folder: Path) -> bool:
    """Read only the template files: loading tokenizer.json here would cost `validate` as
    much as counting tokens does."""
    from tunespec_local.encode import chat_template_of

    try:
        return bool(chat_template_of(folder))
    except Exception:  # unreadable tokenizer files count as "no usable template"
        return False


def multimodal_problems(spec: ResolvedSpec) -> Iterable[Diagnostic]:
    """What the torch backends (local, and ray through this validate) cannot do with
    multimodal data (yet): video, preference pairs with media, quantised multimodal bases;
    and audio without its decoder installed."""
    backend = "local and ray"
    job = spec.job
    if job.data.modality == "video":
        yield Diagnostic(
            "TS302",
            f"the {backend} backends tune text, image, audio and document data; `data.modality: video` is not supported",
            spec.locate("data.modality"),
            hint="extract frames as images (`modality: image`), or use a backend that tunes on video (vertex)",
        )
    elif job.data.modality != "text" and job.method.objective == "preference":
        yield Diagnostic(
            "TS302",
            f"the {backend} backends tune preference pairs on text only; `data.modality: {job.data.modality}` with "
            "`method.objective: preference` is not supported",
            spec.locate("method.objective"),
            hint="use `objective: sft` for multimodal data, or `modality: text` for preference pairs",
        )
    if job.data.modality == "audio" and not _importable("soundfile"):
        yield Diagnostic(
            "TS300",
            "audio data needs the soundfile package to decode its clips, which is not installed",
            spec.locate("data.modality"),
            hint=AUDIO_INSTALL_HINT,
        )
    if model_modality(job) != "text" and job.method.quantization != "none":
        yield Diagnostic(
            "TS302",
            f"`method.quantization` is for text models on the {backend} backends; multimodal models load unquantised",
            spec.locate("method.quantization"),
            hint="remove `quantization`",
        )


def _has_processor(folder: Path) -> bool:
    """A multimodal model folder carries its processor's settings (transformers writes one of these)."""
    return any((Path(folder) / name).is_file() for name in PROCESSOR_FILES)


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _auto_precision_note() -> str:
    cpu = "bf16 (native bf16 instructions)" if cpu_has_native_bf16() else "fp32 (no native bf16: emulated bf16 is slower)"
    return f"auto: bf16 on CUDA with bf16 support; on this machine's CPU {cpu}"


def _mappings(spec: ResolvedSpec, targets: Any, micro: int, fit: Any) -> list[FieldMapping]:
    """How every spec field reaches the trainer (plan prints these)."""
    job = spec.job
    hp = job.hyperparameters
    m = [
        FieldMapping(field="model.base", target="AutoModelForCausalLM.from_pretrained" if model_modality(job) == "text"
                     else "AutoModelForMultimodalLM + AutoProcessor.from_pretrained", value=job.model.base,
                     note="GGUF files are dequantised to fp32 once and cached" if job.model.base.lower().endswith(".gguf") else None),
        FieldMapping(field="data.modality", target="model inputs", value=job.data.modality,
                     note=None if job.data.modality == "text" else "each media item expanded to its tokens by the model's processor; "
                     "examples over max_seq_length dropped, never cut; padded, not packed"),
        FieldMapping(field="method.media_encoder", target="trained modules", value=job.method.media_encoder,
                     note=None if job.data.modality == "text" else ("encoder and projector trained in full" if job.method.media_encoder == "trained"
                                                                      else "encoder frozen; LoRA on the language model and projector"
                                                                      if job.method.type == "peft" else "encoder frozen")),
        FieldMapping(field="data.documents.pages_as", target="PDF pages ->", value=job.data.documents.pages_as,
                     note="pypdfium2: pages rendered to images" if job.data.documents.pages_as == "image" else "pypdfium2: page text"),
        FieldMapping(field="data.documents.max_pages", target="pages read per PDF", value=job.data.documents.max_pages),
        FieldMapping(field="data.documents.render_dpi", target="page render resolution", value=job.data.documents.render_dpi),
        FieldMapping(field="model.revision", target="snapshot_download(revision)", value=job.model.revision),
        FieldMapping(field="model.chat_template", target="chat template", value=job.model.chat_template is not None,
                     note=None if job.model.chat_template else "the tokenizer's own"),
        FieldMapping(field="data.max_seq_length", target="truncation", value=job.data.max_seq_length, note="tokens after the chat template; loss on model turns only"),
        FieldMapping(field="method.type", target="peft.get_peft_model" if job.method.type == "peft" else "all parameters trainable", value=job.method.type),
        FieldMapping(field="method.objective", target="training objective", value=job.method.objective,
                     note="DPO on preference pairs: both responses in one forward, reference log-probs without gradients"
                     if job.method.objective == "preference" else "cross-entropy on model turns"),
        FieldMapping(field="hyperparameters.epochs", target="total_steps", value=hp.epochs, note="ignored: max_steps is set" if hp.max_steps else None),
        FieldMapping(field="hyperparameters.max_steps", target="total_steps", value=hp.max_steps),
        FieldMapping(field="hyperparameters.learning_rate", target="optimizer lr", value=learning_rate(spec),
                     note=None if hp.learning_rate else ("multiplier x default" if hp.learning_rate_multiplier else "default for the method")),
        FieldMapping(field="hyperparameters.batch_size", target="examples per optimizer step", value=hp.batch_size),
        FieldMapping(field="hyperparameters.micro_batch_size", target="examples per forward", value=micro,
                     note=f"gradient accumulation over {math.ceil(hp.batch_size / micro)} forwards"),
        FieldMapping(field="hyperparameters.optimizer", target="torch.optim", value=hp.optimizer),
        FieldMapping(field="hyperparameters.weight_decay", target="optimizer weight_decay", value=hp.weight_decay),
        FieldMapping(field="hyperparameters.lr_scheduler", target="transformers.get_scheduler", value=hp.lr_scheduler),
        FieldMapping(field="hyperparameters.warmup_ratio", target="num_warmup_steps", value=hp.warmup_ratio),
        FieldMapping(field="hyperparameters.max_grad_norm", target="clip_grad_norm_", value=hp.max_grad_norm),
        FieldMapping(field="hyperparameters.packing", target="collation", value=hp.packing,
                     note="examples concatenated, position_ids restart per example (no cross-example attention)" if hp.packing else "padded to the longest in the micro-batch"),
        FieldMapping(field="hyperparameters.seed", target="data order, LoRA init, dropout", value=hp.seed),
        FieldMapping(field="hyperparameters.precision", target="torch.autocast", value=hp.precision,
                     note=_auto_precision_note() if hp.precision == "auto" else None),
        FieldMapping(field="hyperparameters.activation_checkpointing", target="gradient_checkpointing_enable(use_reentrant=False)",
                     value=fit.checkpointing, note=fit.checkpointing_reason),
        FieldMapping(field="method.quantization", target="BitsAndBytesConfig + prepare_model_for_kbit_training",
                     value=job.method.quantization, note={"none": "the base in the training precision", "nf4": "4-bit NF4, double quantisation",
                                                          "int8": "LLM.int8() 8-bit"}[job.method.quantization]),
        FieldMapping(field="evaluation.metrics", target="generation metrics", value=list(job.evaluation.metrics)),
        FieldMapping(field="evaluation.compare_base", target="base model evaluated before tuning", value=job.evaluation.compare_base),
        FieldMapping(field="evaluation.max_examples", target="validation examples generated", value=job.evaluation.max_examples),
        FieldMapping(field="evaluation.max_new_tokens", target="generate(max_new_tokens)", value=job.evaluation.max_new_tokens),
        FieldMapping(field="evaluation.validation_loss", target="eval_loss each epoch", value=job.evaluation.validation_loss),
    ]
    if job.method.preference:
        pref = job.method.preference
        m += [
            FieldMapping(field="method.preference.beta", target="DPO beta", value=pref.beta),
            FieldMapping(field="method.preference.loss", target="DPO loss", value=pref.loss,
                         note="-log sigmoid(beta x margin)" if pref.loss == "sigmoid" else "(per-token margin - 1/(2 beta))^2"),
            FieldMapping(field="method.preference.sft_weight", target="weight of the preferred response's NLL", value=pref.sft_weight,
                         note="plain DPO" if not pref.sft_weight else "RPO: keeps the preferred answers likely"),
        ]
    else:
        m += [FieldMapping(field=f"method.preference.{name}", target=None, value=None, note="only with `method.objective: preference`")
              for name in ("beta", "loss", "sft_weight")]
    if job.method.lora:
        lora = job.method.lora
        m += [
            FieldMapping(field="method.lora.rank", target="LoraConfig.r", value=lora.rank),
            FieldMapping(field="method.lora.alpha", target="LoraConfig.lora_alpha", value=lora.alpha),
            FieldMapping(field="method.lora.dropout", target="LoraConfig.lora_dropout", value=lora.dropout),
            FieldMapping(field="method.lora.target_modules", target="LoraConfig.target_modules", value=targets,
                         note="auto = every linear layer of the blocks (attention + MLP)" if lora.target_modules == "auto" else None),
        ]
    return m
