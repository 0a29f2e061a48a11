"""Does this spec fit its device? The memory estimate (memory.py) applied to a spec, its
data report and the device, as `plan` shows it. No torch: `validate` and `plan` run this.

    fit = plan_memory(spec, data, shape, device, workers=1, parallelism="ddp", levers=Levers())
    fit.checkpointing     activation checkpointing as decided (`auto` resolved here)
    fit.verdict           fits | tight | does not fit | unknown
    fit.summary()         the line `plan` prints, e.g. "1.9 GiB per device of 24 GiB (cpu): fits"
    fit.as_plan()         the estimate by part, for the plan's job body
    fit.diagnostics(...)  TS320: an error when it does not fit, a warning when it fits only just,
                          each with the cheapest changes that would make it fit

The job's shape comes from the data report: the largest micro-batch is the longest example
plus (micro-batch - 1) examples at the 95th percentile, each cut to `data.max_seq_length`;
logits are counted for every position (an upper bound: the loop computes them only where
an answer token is predicted). The local and ray backends both use this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tunespec import Diagnostic, Severity

from tunespec_local.devices import DeviceInfo
from tunespec_local.memory import GiB, TIGHT, Fix, JobShape, Levers, MemoryEstimate, ModelShape, cheapest_fixes, estimate_memory, read_shape

MEMORY_CODE = "TS320"


@dataclass
class MemoryPlan:
    device: DeviceInfo
    capacity: float | None
    """Bytes one device offers (None: unknown)."""
    shape: ModelShape | None
    job: JobShape | None = None
    estimate: MemoryEstimate | None = None
    checkpointing: bool = False
    checkpointing_reason: str = ""
    fixes: list[Fix] = field(default_factory=list)
    why_unknown: str = ""

    @property
    def verdict(self) -> str:
        if self.estimate is None or self.capacity is None:
            return "unknown"
        if self.estimate.peak <= self.capacity * TIGHT:
            return "fits"
        return "tight" if self.estimate.peak <= self.capacity else "does not fit"

    def summary(self) -> str:
        if self.estimate is None:
            return f"not estimated: {self.why_unknown}"
        peak = f"~{self.estimate.peak / GiB:.1f} GiB per device"
        if self.capacity is None:
            return f"{peak} ({self.device.type}; device memory unknown: {self.why_unknown or 'not detected'})"
        of = f"{peak} of {self.capacity / GiB:.1f} GiB ({self.device.name or self.device.type})"
        verdict = self.verdict
        if verdict == "fits":
            return f"{of}: fits"
        if verdict == "tight":
            return f"{of}: fits only just (over {TIGHT:.0%})"
        return f"{of}: does not fit"

    def as_plan(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verdict": self.verdict, "device": self.device.type,
                               "device_memory_gib": round(self.capacity / GiB, 2) if self.capacity else None}
        if self.estimate is not None:
            out.update(self.estimate.as_plan())
        if self.job is not None:
            out["micro_batch_tokens"] = self.job.micro_batch_tokens
        if self.fixes:
            out["fixes"] = [{"change": f.change, "cost": f.cost, "peak_gib": round(f.peak / GiB, 2)} for f in self.fixes]
        return out

    def diagnostics(self, spec: Any, override: str) -> list[Diagnostic]:
        """TS320 for a job that does not fit (error) or fits only just (warning). `override`
        names the backend option that turns the check off."""
        verdict = self.verdict
        if verdict not in ("tight", "does not fit") or self.estimate is None or self.capacity is None:
            return []
        fixes = "; ".join(f"`{f.change}` (~{f.peak / GiB:.1f} GiB: {f.cost})" for f in self.fixes)
        hint = (f"cheapest changes that fit: {fixes}" if fixes else "no single change found that fits: use a smaller model or a device with more memory")
        hint += f"; `{override}: false` skips this check"
        message = (f"the estimated peak memory, ~{self.estimate.peak / GiB:.1f} GiB per device ({_largest_parts(self.estimate)}), "
                   f"{'exceeds' if verdict == 'does not fit' else 'is over ' + format(TIGHT, '.0%') + ' of'} the "
                   f"{self.capacity / GiB:.1f} GiB of {self.device.name or self.device.type}")
        severity = Severity.ERROR if verdict == "does not fit" else Severity.WARNING
        return [Diagnostic(MEMORY_CODE, message, spec.locate("model.base"), hint, severity)]


def _largest_parts(estimate: MemoryEstimate) -> str:
    parts = sorted(((v, k) for k, v in estimate.parts.items() if k != "runtime"), reverse=True)[:3]
    return ", ".join(f"{k} {v / GiB:.1f}" for v, k in parts)


def model_shape(model: Any, cached: Path | None) -> tuple[ModelShape | None, str]:
    """The model's shape from files already on this machine: its folder's config.json, the
    GGUF file's header; (None, why) otherwise."""
    if cached is not None:
        shape = read_shape(cached)
        if shape is not None:
            return shape, ""
    if getattr(model, "kind", None) == "gguf":
        shape = read_shape(Path(model.location) / (model.gguf_file or ""))
        if shape is not None:
            return shape, ""
        return None, "the GGUF file's header does not describe a decoder-only transformer"
    if getattr(model, "kind", None) == "hub":
        return None, "the model's config.json is not downloaded yet (the first apply downloads it)"
    return None, "the model's config.json is missing or does not describe a decoder-only transformer"


def plan_memory(spec: Any, data: Any, shape: ModelShape | None, device: DeviceInfo, *, capacity: float | None = None,
                workers: int = 1, parallelism: str = "ddp", levers: Levers = Levers(), why_unknown: str = "") -> MemoryPlan:
    """The estimate for `spec` on `device` (see the module docstring); `capacity` overrides
    the device's detected memory (a declared figure)."""
    capacity = capacity if capacity is not None else (float(device.memory) if device.memory else None)
    hp = spec.job.hyperparameters
    fit = MemoryPlan(device=device, capacity=capacity, shape=shape, why_unknown=why_unknown)
    declared = hp.activation_checkpointing
    if shape is None:
        fit.checkpointing = declared is True
        fit.checkpointing_reason = "set in the spec" if declared != "auto" else "auto: no estimate"
        return fit
    job = job_shape(spec, data, device, workers=workers, parallelism=parallelism, checkpointing=declared is True)
    if declared == "auto":
        without = estimate_memory(shape, job)
        needed = capacity is not None and without.peak > capacity * TIGHT
        job = replace(job, activation_checkpointing=needed)
        fit.checkpointing_reason = (f"auto: needed, ~{without.peak / GiB:.1f} GiB without it" if needed
                                    else "auto: fits without it" if capacity is not None else "auto: device memory unknown")
    else:
        fit.checkpointing_reason = "set in the spec"
    fit.checkpointing = job.activation_checkpointing
    fit.job = job
    fit.estimate = estimate_memory(shape, job)
    if capacity is not None and fit.estimate.peak > capacity * TIGHT:
        fit.fixes = cheapest_fixes(shape, job, capacity, levers)
    return fit


def job_shape(spec: Any, data: Any, device: DeviceInfo, *, workers: int = 1, parallelism: str = "ddp", checkpointing: bool = False) -> JobShape:
    """What one device runs for this spec (see the module docstring)."""
    job = spec.job
    hp = job.hyperparameters
    micro = hp.micro_batch_size or hp.batch_size
    share = math.ceil(hp.batch_size / max(workers, 1))  # examples one worker takes per step
    per_forward = min(micro, share)
    longest, typical = _example_tokens(job, data)
    tokens = longest + (per_forward - 1) * typical
    sequences = per_forward * (2 if job.method.objective == "preference" else 1)  # a pair is two sequences
    lora = job.method.lora
    targets = "all-linear" if lora is None or lora.target_modules in ("auto", "all-linear") else list(lora.target_modules)
    return JobShape(
        method=job.method.type,
        lora_rank=lora.rank if lora else 8,
        lora_targets=targets,
        quantization=job.method.quantization,
        precision=_precision(hp.precision, device),
        optimizer=hp.optimizer,
        micro_batch_examples=sequences,
        micro_batch_tokens=max(tokens, 1),
        accumulation_steps=math.ceil(share / per_forward),
        packing=hp.packing,
        activation_checkpointing=checkpointing,
        parallelism="fsdp" if parallelism == "fsdp" else "ddp",
        workers=workers,
        device=device.type if device.type in ("cpu", "cuda", "mps") else "cpu",
        reference_copy=job.method.objective == "preference" and job.method.type == "full",
    )


def _example_tokens(job: Any, data: Any) -> tuple[int, int]:
    """(longest, 95th percentile) tokens of a training example after truncation; without a
    data report, `data.max_seq_length` for both."""
    limit = job.data.max_seq_length
    pair = 2 if job.method.objective == "preference" else 1  # each sequence is cut to the limit
    stats = getattr(data, "splits", {}).get("train") if data is not None else None
    if stats is None or not stats.examples:
        return limit * pair, limit * pair
    return min(stats.tokens_max, limit * pair), min(stats.tokens_p95 or stats.tokens_max, limit * pair)


def _precision(choice: str, device: DeviceInfo) -> str:
    if choice == "auto":
        return "bf16" if device.type == "cuda" and device.bf16 else "fp32"
    return choice
