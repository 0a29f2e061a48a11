"""Using a published local (or Ray) run: generate with its tuned model, export it merged.

Everything is read through the artifact contract: `adapter/` (a peft run: the adapter is
loaded on the base model it names in adapter_config.json) or `model/` (a full run). The
adapter folder carries the tokenizer and chat template the run trained with, so prompts
are rendered exactly as in training and evaluation.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tunespec import Diagnostic, DiagnosticError, Location, PredictOptions, Predictor, PublishedRun


def tuned_folder(run: PublishedRun) -> tuple[str, Path]:
    """(`adapter` | `model`, its folder) of a run; TS407 when it published neither."""
    for kind in ("adapter", "model"):
        if run.has(kind) and (run.run_dir / kind).is_dir():
            return kind, run.run_dir / kind
    raise DiagnosticError(Diagnostic("TS407", f"run {run.run_id} published no adapter/ or model/", Location(str(run.run_dir)),
                                     "`tunespec verify` the run; only a succeeded local or ray run has them"))


class LocalPredictor(Predictor):
    """The tuned model loaded once, in eval mode; greedy (or sampled) batched generation."""

    def __init__(self, run: PublishedRun, options: PredictOptions, cache_dir: Path, device: str = "auto"):
        import torch

        from tunespec_local.encode import load_tokenizer
        from tunespec_local.models.runs import base_of_adapter
        from tunespec_local.run import quiet_libraries
        from tunespec_local.training.env import default_device
        from tunespec_local.training.model import model_class_of

        quiet_libraries()
        self.options = options
        self.device = default_device(device)
        kind, folder = tuned_folder(run)
        if kind == "adapter":
            from peft import PeftModel

            base_folder = base_of_adapter(folder, cache_dir)
            base = model_class_of(base_folder).from_pretrained(base_folder, dtype=torch.float32)
            self.model = PeftModel.from_pretrained(base, folder)
        else:
            self.model = model_class_of(folder).from_pretrained(folder, dtype=torch.float32)
        self.model.to(self.device).eval()
        self.tokenizer = load_tokenizer(folder)

    def generate(self, prompts: list[list[dict[str, str]]]) -> list[str]:
        from tunespec_local.encode import Prompt
        from tunespec_local.evaluation import generate

        encoded = [Prompt(self.tokenizer.tokenizer.encode(self.tokenizer.render(m, add_generation_prompt=True), add_special_tokens=False).ids, "")
                   for m in prompts]
        return generate(self.model, self.tokenizer, encoded, self.options.max_new_tokens, len(encoded), self.device,
                        temperature=self.options.temperature)

    def close(self) -> None:
        del self.model


def export_merged(run: PublishedRun, target: Path, cache_dir: Path, log: Any) -> dict[str, Any]:
    """A standalone Hugging Face folder: the adapter merged into its base (or a full run's
    model as it is), with the tokenizer and chat template, loadable by transformers alone."""
    from tunespec_local.models.runs import _merge, base_of_adapter

    kind, folder = tuned_folder(run)
    if kind == "model":
        shutil.copytree(folder, target, dirs_exist_ok=True)
        return {"method": "full", "base_model": run.manifest.base_model}
    base = base_of_adapter(folder, cache_dir, log)
    log(f"merging the adapter of run {run.run_id} into {base}")
    _merge(folder, base, target)
    (target / "tunespec-source.json").unlink(missing_ok=True)  # names local paths; the export's manifest says where it came from
    return {"method": "peft", "base_model": run.manifest.base_model}
