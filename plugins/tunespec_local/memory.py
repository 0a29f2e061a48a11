"""Will the job fit? A per-device memory estimate made before any compute is spent.

Runs at `validate` and `plan`, so it imports no torch (nor numpy): the model's shape comes
from its config.json (or a GGUF file's header), the job's shape from the spec and the data
report. Every torch backend uses it (local, ray).

    shape = read_shape(folder_or_gguf)            # ModelShape: parameter counts by kind
    estimate = estimate_memory(shape, job)        # MemoryEstimate: bytes by part, and the peak
    fixes = cheapest_fixes(shape, job, capacity)  # what would make it fit, cheapest first

What the estimate models (per device, in the precision the loop really uses; see
tunespec_local/training/model.py, which builds exactly this):

    weights          frozen base: fp32, or bf16/fp16 for LoRA in those precisions; linear
                     layers of a QLoRA base at 4.13 bits (nf4 + double-quantised scales) or
                     8 bits (int8); full fine-tuning keeps fp32 master weights
    trainable        LoRA adapters (r x (in + out) per adapted linear layer) or every weight
    gradients        fp32, one per trainable weight
    optimizer state  adamw 8 bytes per trainable weight, adamw_8bit 2, sgd 4 (momentum),
                     adafactor ~0 (factored second moments)
    activations      what autograd keeps for the backward pass of the largest micro-batch:
                     per token and decoder block 8 hidden + 2 key/value + 4 intermediate
                     values + one per head (norm inputs/outputs, q/k/v, attention output,
                     the gated MLP's four tensors, log-sum-exp), plus the embeddings; when a
                     micro-batch holds several examples (packed, or padded) the attention
                     mask each block expands to [rows x tokens x tokens] fp32; and the
                     gradients of one block's activations during backward. With activation
                     checkpointing only each block's input is kept, plus one block
                     recomputed at a time
    logits and loss  fp32 logits, log-softmax and their gradients for every position of the
                     micro-batch (an upper bound: the loop computes logits only where an
                     answer token is predicted)
    sharding         FSDP divides weights, gradients and optimizer state by the workers and
                     adds the gathered copies of the root (embeddings, head) and two blocks;
                     DDP adds one gradient-sized bucket
    reference        full preference tuning (DPO) keeps a frozen fp32 copy of the base
    runtime          what the framework itself takes (CUDA context and kernels; the process)

The peak: weights + optimizer state + the larger of the backward pass (activations, logits,
and the gradients that exist by then: all of them when micro-batches accumulate, else the
output layer's) and the optimizer step (gradients + one trainable-sized temporary on CUDA).
bench/memory_estimate.py measures real peaks on this machine against these figures.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

GiB = 1024**3

NF4_BYTES_PER_WEIGHT = 0.5 + 1 / 64 + 4 / (64 * 256)
"""4-bit codes, one 8-bit scale per 64 weights, one fp32 scale per 256 of those (double quantisation)."""
INT8_BYTES_PER_WEIGHT = 1.0
OPTIMIZER_BYTES = {"adamw": 8.0, "adamw_8bit": 2.0, "sgd": 4.0, "adafactor": 0.0}
RUNTIME_BYTES = {"cuda": 1 * GiB, "cpu": GiB // 2, "mps": GiB // 2}
"""Fixed cost of the framework on the device: the CUDA context and kernels (about 1 GiB), or
the torch/transformers process itself on a CPU (about 0.5 GiB)."""

# Values autograd keeps per token and decoder block (counted with saved-tensor hooks on a
# Llama block in transformers 5): two norms' inputs and outputs, q, k, v, the attention
# output (twice: before and after the output projection's reshape), the gated MLP's gate,
# up, activation and product, plus the attention's log-sum-exp (one per head) and the two
# norms' inverse RMS.
HIDDEN_PER_TOKEN = 8
UPCAST_PER_TOKEN = 4
"""Of those, the two norms' inputs and outputs: fp32 under a quantised base in bf16/fp16,
because peft's `prepare_model_for_kbit_training` upcasts the embedding and norms to fp32,
so the residual stream and every norm's output are fp32 (counted with saved-tensor hooks:
QLoRA keeps 8.2 MiB fp32 + 6.2 MiB bf16 where LoRA keeps 2.0 + 11.3 on a tiny model)."""
KV_PER_TOKEN = 2
INTERMEDIATE_PER_TOKEN = 4
SMALL_PER_TOKEN = 2
LOSS_COPIES = 4
"""fp32 copies of a [positions x vocabulary] tensor alive at the start of backward: logits,
log-softmax, and the two gradients computed from them."""
UNGATED_MLP_MODEL_TYPES = {"phi", "gpt_neox", "falcon", "starcoder2", "gpt_bigcode", "opt", "gpt2", "bloom"}
"""Architectures whose MLP is up -> activation -> down (no gate projection)."""
TIGHT = 0.9
"""An estimate above this share of the device's memory fits only just: `plan` warns."""


# -- the model --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer's dimensions (Llama family: Llama, Mistral, Qwen2, SmolLM...)."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    tied_embeddings: bool
    gated_mlp: bool = True
    source: str = ""

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def linear_layers(self) -> list[tuple[str, int, int]]:
        """(name, in features, out features) of one block's linear layers."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_dim, self.intermediate
        layers = [("q_proj", h, q), ("k_proj", h, kv), ("v_proj", h, kv), ("o_proj", q, h), ("up_proj", h, i), ("down_proj", i, h)]
        if self.gated_mlp:
            layers.insert(4, ("gate_proj", h, i))
        return layers

    @property
    def block_linear_params(self) -> int:
        return sum(n_in * n_out for _, n_in, n_out in self.linear_layers())

    @property
    def block_params(self) -> int:
        return self.block_linear_params + 2 * self.hidden  # + two norms

    @property
    def root_params(self) -> int:
        """Parameters outside the blocks: embeddings, final norm, output layer if not tied."""
        head = 0 if self.tied_embeddings else self.vocab * self.hidden
        return self.vocab * self.hidden + self.hidden + head

    @property
    def params(self) -> int:
        return self.layers * self.block_params + self.root_params

    def lora_params(self, rank: int, targets: str | list[str]) -> int:
        """Adapter weights: r x (in + out) for every adapted linear layer of every block."""
        names = None if targets in ("all-linear", "auto") else set(targets)
        per_block = sum(rank * (n_in + n_out) for name, n_in, n_out in self.linear_layers() if names is None or name in names)
        return self.layers * per_block


def read_shape(path: str | Path) -> ModelShape | None:
    """The shape of the model at `path`: a Hugging Face folder (its config.json) or a GGUF
    file (its header). None when it cannot be read or is not a decoder-only transformer."""
    path = Path(path)
    try:
        if path.is_dir():
            return shape_from_config(json.loads((path / "config.json").read_text()), f"{path}/config.json")
        if path.suffix.lower() == ".gguf":
            return shape_from_gguf(path)
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return None
    return None


def shape_from_config(config: dict[str, Any], source: str = "config.json") -> ModelShape | None:
    config = config.get("text_config", config)  # multimodal wrappers keep the LM's config inside
    needed = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    if not all(isinstance(config.get(k), int) for k in needed):
        return None
    heads = config["num_attention_heads"]
    return ModelShape(
        vocab=config["vocab_size"],
        hidden=config["hidden_size"],
        layers=config["num_hidden_layers"],
        heads=heads,
        kv_heads=config.get("num_key_value_heads") or heads,
        head_dim=config.get("head_dim") or config["hidden_size"] // heads,
        intermediate=config["intermediate_size"],
        tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        gated_mlp=config.get("model_type") not in UNGATED_MLP_MODEL_TYPES,
        source=source,
    )


# GGUF metadata value types (gguf spec): 0..12.
_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def shape_from_gguf(path: Path) -> ModelShape | None:
    """Read a GGUF header (metadata and tensor names only, never the weights) in pure Python."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            return None
        version, tensors, entries = struct.unpack("<IQQ", f.read(20))
        if version < 2:
            return None
        meta: dict[str, Any] = {}
        for _ in range(entries):
            key = _gguf_string(f)
            meta[key] = _gguf_value(f, struct.unpack("<I", f.read(4))[0])
        names = set()
        for _ in range(tensors):
            names.add(_gguf_string(f))
            dims = struct.unpack("<I", f.read(4))[0]
            f.seek(8 * dims + 4 + 8, 1)  # dims, type, offset
    arch = meta.get("general.architecture")
    get = lambda key: meta.get(f"{arch}.{key}")  # noqa: E731
    hidden, heads = get("embedding_length"), get("attention.head_count")
    vocab = get("vocab_size") or meta.get("tokenizer.ggml.tokens")
    if not all(isinstance(v, int) for v in (hidden, heads, get("block_count"), get("feed_forward_length"), vocab)):
        return None
    return ModelShape(
        vocab=vocab, hidden=hidden, layers=get("block_count"), heads=heads, kv_heads=get("attention.head_count_kv") or heads,
        head_dim=get("attention.key_length") or hidden // heads, intermediate=get("feed_forward_length"),
        tied_embeddings="output.weight" not in names, gated_mlp=any(".ffn_gate." in n for n in names),
        source=f"GGUF header of {path.name}",
    )


def _gguf_string(f: Any) -> str:
    (length,) = struct.unpack("<Q", f.read(8))
    return f.read(length).decode("utf-8", "replace")


def _gguf_value(f: Any, kind: int) -> Any:
    """A metadata value; an array's length stands for the array (token lists are long)."""
    if kind in _GGUF_SCALARS:
        fmt = _GGUF_SCALARS[kind]
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
    if kind == _STRING:
        return _gguf_string(f)
    if kind == _ARRAY:
        item, count = struct.unpack("<IQ", f.read(12))
        if item in _GGUF_SCALARS:
            f.seek(struct.calcsize(_GGUF_SCALARS[item]) * count, 1)
        else:
            for _ in range(count):
                _gguf_value(f, item)
        return count
    raise ValueError(f"unknown GGUF value type {kind}")


# -- the job ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobShape:
    """What the estimate needs to know about the job (all decided: no `auto`)."""

    method: Literal["peft", "full"] = "peft"
    lora_rank: int = 8
    lora_targets: Any = "all-linear"
    quantization: Literal["none", "nf4", "int8"] = "none"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    optimizer: str = "adamw"
    micro_batch_examples: int = 1
    """Examples in one device's micro-batch."""
    micro_batch_tokens: int = 1024
    """Tokens in the largest micro-batch one device runs (padding included)."""
    logit_positions: int | None = None
    """Positions whose logits are computed; None: every token of the micro-batch."""
    accumulation_steps: int = 1
    packing: bool = True
    activation_checkpointing: bool = False
    parallelism: Literal["ddp", "fsdp"] = "ddp"
    workers: int = 1
    device: Literal["cpu", "cuda", "mps"] = "cpu"
    reference_copy: bool = False
    """Full preference tuning keeps a frozen fp32 copy of the base as its reference model."""


@dataclass
class MemoryEstimate:
    parts: dict[str, float] = field(default_factory=dict)
    """Bytes per part (see the module docstring), each already divided by any sharding."""
    peak: float = 0.0
    """Bytes at the busiest moment of a step, runtime included."""

    @property
    def training_peak(self) -> float:
        """The peak without the framework's fixed runtime cost (what a benchmark measures as growth)."""
        return self.peak - self.parts.get("runtime", 0.0)

    def as_plan(self) -> dict[str, Any]:
        return {"peak_gib": round(self.peak / GiB, 3), "parts_gib": {k: round(v / GiB, 3) for k, v in self.parts.items()}}


def estimate_memory(shape: ModelShape, job: JobShape) -> MemoryEstimate:
    """Per-device bytes of one training step (see the module docstring)."""
    peft = job.method == "peft"
    trainable = shape.lora_params(job.lora_rank, job.lora_targets) if peft else shape.params
    shards = job.workers if job.parallelism == "fsdp" else 1

    weights = _weights(shape, job) + (trainable * 4 if peft else 0)  # LoRA adapters are fp32 beside the base
    gradients = trainable * 4.0
    optimizer = trainable * OPTIMIZER_BYTES.get(job.optimizer, 8.0)
    activations = _activations(shape, job)
    positions = job.logit_positions if job.logit_positions is not None else job.micro_batch_tokens
    loss = LOSS_COPIES * 4.0 * positions * shape.vocab
    early_gradients = shape.vocab * shape.hidden * 4.0 if not peft else 0.0  # the output layer's, first in backward

    parts = {
        "weights": weights / shards,
        "gradients": gradients / shards,
        "optimizer state": optimizer / shards,
        "activations": activations,
        "logits and loss": loss,
    }
    if job.reference_copy:
        parts["reference model"] = shape.params * 4.0  # copied before sharding: whole on every worker
    if job.parallelism == "fsdp" and job.workers > 1:
        parts["gathered for FSDP"] = _fsdp_gathered(shape, job)
    elif job.workers > 1:
        parts["DDP gradient buckets"] = gradients
    parts["runtime"] = float(RUNTIME_BYTES.get(job.device, 0))

    held_gradients = parts["gradients"] if job.accumulation_steps > 1 else min(early_gradients / shards, parts["gradients"])
    backward = activations + loss + held_gradients + parts.get("DDP gradient buckets", 0.0)
    step_temp = parts["gradients"] if job.device == "cuda" else 0.0  # foreach AdamW's temporaries
    step = parts["gradients"] + step_temp + parts.get("DDP gradient buckets", 0.0)
    fixed = parts["weights"] + parts["optimizer state"] + parts.get("reference model", 0.0) + parts.get("gathered for FSDP", 0.0)
    peak = fixed + max(backward, step) + parts["runtime"]
    return MemoryEstimate(parts=parts, peak=peak)


def _weights(shape: ModelShape, job: JobShape) -> float:
    """The base model's bytes as the loop holds them."""
    linear = shape.layers * shape.block_linear_params
    other = shape.params - linear
    if job.method == "full":
        return shape.params * 4.0  # fp32 master weights; autocast computes in bf16/fp16
    if job.quantization != "none":
        per_weight = NF4_BYTES_PER_WEIGHT if job.quantization == "nf4" else INT8_BYTES_PER_WEIGHT
        # peft keeps non-quantised weights in fp32. Nothing else: the loader copies them out
        # of the checkpoint file's memory map (model.release_checkpoint_mapping), which would
        # otherwise keep the fp32 linear weights read to quantise resident on a CPU.
        return linear * per_weight + other * 4.0
    return shape.params * (4.0 if job.precision == "fp32" else 2.0)


def _activations(shape: ModelShape, job: JobShape) -> float:
    """Bytes autograd keeps during the forward pass, plus the backward's working set."""
    tokens = job.micro_batch_tokens
    value = 4.0 if job.precision == "fp32" else 2.0
    per_token = HIDDEN_PER_TOKEN * shape.hidden + KV_PER_TOKEN * shape.kv_dim + INTERMEDIATE_PER_TOKEN * shape.intermediate
    upcast = job.quantization != "none" and value < 4.0  # the residual stream is fp32 (UPCAST_PER_TOKEN)
    upcast_bytes = (4.0 - value) * UPCAST_PER_TOKEN * shape.hidden if upcast else 0.0
    per_block = tokens * (value * per_token + upcast_bytes + 4.0 * (shape.heads + SMALL_PER_TOKEN)) + _mask_bytes(job)
    embeddings = tokens * 4.0 * shape.hidden * 3  # embedding output, final norm in and out
    # Backward: the gradients of the block being differentiated (the mask has none).
    block_gradients = per_block - _mask_bytes(job)
    if job.activation_checkpointing:
        kept = shape.layers * tokens * (4.0 if upcast else value) * shape.hidden  # each block's input
        return kept + embeddings + per_block + block_gradients  # + the one block recomputed at a time
    return shape.layers * per_block + embeddings + block_gradients


def _mask_bytes(job: JobShape) -> float:
    """The fp32 attention mask one block materialises when a micro-batch holds several
    examples: block-diagonal for a packed row, padding for padded rows (an upper bound: a
    padded micro-batch whose examples have equal lengths needs none)."""
    if job.micro_batch_examples <= 1:
        return 0.0
    rows = 1 if job.packing else job.micro_batch_examples
    width = job.micro_batch_tokens / rows
    return 4.0 * rows * width * width


def _fsdp_gathered(shape: ModelShape, job: JobShape) -> float:
    """Unsharded copies FSDP2 holds while computing: the root (embeddings, head, final norm)
    and two blocks (the current one and the one prefetched), plus one block's full gradients
    before they are reduce-scattered (trainable weights only)."""
    value = 4.0 if job.method == "full" or job.precision == "fp32" else 2.0
    block = shape.block_params * value
    block_gradients = shape.block_params * 4.0 if job.method == "full" else 0.0
    return shape.root_params * value + 2 * block + block_gradients


# -- fitting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fix:
    """One change to the spec and what the estimate becomes with it."""

    change: str
    """What to write, e.g. `hyperparameters.activation_checkpointing: true`."""
    cost: str
    """What it costs, in a few words."""
    peak: float


@dataclass(frozen=True)
class Levers:
    """Which changes the backend can make: FSDP over this many workers (0: none), and the
    most workers a suggestion may ask for."""

    fsdp_workers: int = 0
    max_workers: int = 0


def cheapest_fixes(shape: ModelShape, job: JobShape, capacity: float, levers: Levers, limit: int = 3) -> list[Fix]:
    """Changes that make the estimate fit `capacity` bytes, cheapest first: single changes
    first; if none suffices, the cheapest combination (changes added in order of cost)."""
    candidates = _candidates(shape, job, capacity, levers)
    single = [fix for fix, changed in candidates if estimate_memory(shape, changed).peak <= capacity * TIGHT]
    if single:
        return single[:limit]
    combined, changes = job, []
    for fix, changed in candidates:
        combined = _merge(combined, changed, job)
        changes.append(fix)
        peak = estimate_memory(shape, combined).peak
        if peak <= capacity * TIGHT:
            return [Fix(" and ".join(f.change for f in changes), ", ".join(f.cost for f in changes), peak)]
    return []


def _candidates(shape: ModelShape, job: JobShape, capacity: float, levers: Levers) -> list[tuple[Fix, JobShape]]:
    """(fix, the job with it) for every applicable change, cheapest first."""
    out: list[tuple[JobShape, str, str]] = []
    if levers.fsdp_workers > 1 and job.parallelism != "fsdp":
        out.append((replace(job, parallelism="fsdp", workers=levers.fsdp_workers), "backend.parallelism: fsdp",
                    f"shards over the {levers.fsdp_workers} workers; more communication"))
    if not job.activation_checkpointing:
        out.append((replace(job, activation_checkpointing=True), "hyperparameters.activation_checkpointing: true",
                    "about a third more compute"))
    smaller = _smaller_micro_batch(shape, job, capacity)
    if smaller is not None:
        out.append(smaller)
    if job.method == "peft" and job.quantization == "none":
        out.append((replace(job, quantization="nf4"), "method.quantization: nf4", "QLoRA: 4-bit base, slightly lower quality"))
    if job.method == "full":
        out.append((replace(job, method="peft"), "method.type: peft", "trains LoRA adapters instead of every weight"))
    wider = _more_workers(shape, job, capacity, levers)
    if wider is not None:
        out.append(wider)
    return [(Fix(change, cost, estimate_memory(shape, changed).peak), changed) for changed, change, cost in out]


def _smaller_micro_batch(shape: ModelShape, job: JobShape, capacity: float) -> tuple[JobShape, str, str] | None:
    """The largest smaller micro-batch that fits (gradient accumulation keeps the batch)."""
    if job.micro_batch_examples <= 1:
        return None
    per_example = job.micro_batch_tokens / job.micro_batch_examples
    for k in range(job.micro_batch_examples - 1, 0, -1):
        positions = None if job.logit_positions is None else math.ceil(job.logit_positions * k / job.micro_batch_examples)
        changed = replace(job, micro_batch_examples=k, micro_batch_tokens=math.ceil(per_example * k), logit_positions=positions,
                          accumulation_steps=max(job.accumulation_steps, 2))
        if k == 1 or estimate_memory(shape, changed).peak <= capacity * TIGHT:
            return changed, f"hyperparameters.micro_batch_size: {k}", "gradient accumulation: slower, same results"
    return None


def _more_workers(shape: ModelShape, job: JobShape, capacity: float, levers: Levers) -> tuple[JobShape, str, str] | None:
    """The fewest workers FSDP needs to fit (on the ray backend)."""
    if levers.max_workers < 2:
        return None
    start = max(2, (levers.fsdp_workers or 1) + 1)
    for workers in range(start, levers.max_workers + 1):
        changed = replace(job, parallelism="fsdp", workers=workers)
        if estimate_memory(shape, changed).peak <= capacity * TIGHT:
            where = "backend: ray with " if levers.fsdp_workers == 0 else "backend."
            return changed, f"{where}num_workers: {workers} and parallelism: fsdp", f"{workers} devices"
    return None


def _merge(current: JobShape, changed: JobShape, original: JobShape) -> JobShape:
    """`current` with every field `changed` changed relative to `original`."""
    updates = {name: getattr(changed, name) for name in JobShape.__dataclass_fields__ if getattr(changed, name) != getattr(original, name)}
    return replace(current, **updates)
