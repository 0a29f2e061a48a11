"""Building the model the loop trains: base precision, quantisation, activation
checkpointing and LoRA, decided here and nowhere else.

    build_model(config, device)     the base model as the spec asks for it:
        method full                 fp32 master weights (bf16/fp16 come from autocast)
        method peft                 frozen base in the training precision (fp32 on CPU, bf16/fp16
                                    with those precisions: half the memory), LoRA adapters in fp32
        method.quantization nf4     QLoRA: the base's linear layers in 4-bit NormalFloat with
                                    double quantisation (bitsandbytes), prepared with peft's
                                    `prepare_model_for_kbit_training`, LoRA on top; the
                                    weights it leaves unquantised (embeddings, norms) are
                                    copied out of the checkpoint file's memory map, so the
                                    fp32 weights read to quantise it stop counting as memory
        method.quantization int8    the same with LLM.int8() 8-bit weights
        activation_checkpointing    each decoder block keeps only its input and recomputes the
                                    rest in backward (transformers' gradient checkpointing,
                                    non-reentrant, so a frozen base needs no input-grad hack)

    shard_model(model, device)      FSDP2 (`fully_shard`): each decoder block, then the root; what
                                    an environment with `sharded = True` calls in `prepare_model`

The memory estimate (`tunespec_local.memory`) models exactly these choices; when one
changes here, change it there (bench/memory_estimate.py checks both against each other).
"""

from __future__ import annotations

from typing import Any

from tunespec_local.training.config import TrainConfig

CHECKPOINTING_KWARGS = {"use_reentrant": False}
"""Non-reentrant checkpointing: works with frozen inputs (a LoRA base) and with FSDP2,
and recomputes with the RNG state of the first pass (dropout masks match)."""


def base_dtype(config: TrainConfig) -> Any:
    """The dtype the base model's weights are held in (see the module docstring)."""
    import torch

    if config.method == "peft" and config.precision == "bf16":
        return torch.bfloat16
    if config.method == "peft" and config.precision == "fp16":
        return torch.float16
    return torch.float32


def quantization_config(config: TrainConfig) -> Any:
    """transformers' `BitsAndBytesConfig` for `method.quantization`, or None."""
    if config.quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if config.quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,  # quantise the per-block scales too: ~0.37 bits/weight saved
        bnb_4bit_compute_dtype=base_dtype(config),
    )


def build_model(config: TrainConfig, device: Any = None) -> Any:
    """The model to train (see the module docstring). `device` is where a quantised base is
    placed while it loads (bitsandbytes quantises on the way in); other models load on the
    CPU and the environment moves or shards them (`TrainEnv.prepare_model`)."""
    import torch

    torch.manual_seed(config.seed)  # LoRA initialisation
    quantization = quantization_config(config)
    options: dict[str, Any] = {"dtype": base_dtype(config)}
    if quantization is not None:
        options["quantization_config"] = quantization
        options["device_map"] = {"": _device_map_target(device)}
    model = model_class(config.modality).from_pretrained(config.model_path, **options)
    model.config.use_cache = False
    if quantization is not None:
        release_checkpoint_mapping(model)
        from peft import prepare_model_for_kbit_training

        # Freezes the base, keeps its non-quantised weights (norms, embeddings) in fp32 and
        # turns checkpointing on or off as the spec says.
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=config.activation_checkpointing,
            gradient_checkpointing_kwargs=CHECKPOINTING_KWARGS,
        )
    elif config.activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=CHECKPOINTING_KWARGS)
    if config.method == "peft":
        model = add_lora(model, config)
    elif config.modality != "text" and config.media_encoder == "frozen":
        from tunespec_local.media.family import freeze_encoder

        freeze_encoder(model)
    return model


def model_class(modality: str) -> Any:
    """transformers' Auto class for the data's modality: a causal LM for text, a multimodal
    LM otherwise (every image-text-to-text family, LLaVA, Idefics3/SmolVLM, Qwen2-VL, Gemma 3,
    and the audio-text ones, Qwen2-Audio, Voxtral, Granite Speech...)."""
    import transformers

    if modality == "text":
        return transformers.AutoModelForCausalLM
    return transformers.AutoModelForMultimodalLM


def model_class_of(folder: Any) -> Any:
    """The Auto class for a saved model folder (or hub id): a multimodal LM when its config
    has a vision or audio part, else a causal LM. For loading what a run produced (merging
    an upstream run, `predict`, `export`) without knowing the spec it came from."""
    import json
    from pathlib import Path

    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    multimodal = any(key in config for key in ("vision_config", "audio_config"))
    return model_class("image" if multimodal else "text")


def release_checkpoint_mapping(model: Any) -> None:
    """Give every parameter and buffer whose memory torch did not allocate (a window of the
    memory map of the safetensors file transformers loads from) a storage of its own.

    transformers maps the whole checkpoint file and hands out its tensors as views into
    that one mapping. An unquantised model keeps using them (zero-copy); a quantised one
    reads every linear weight once to quantise it and keeps only the other weights
    (embeddings, norms), but any of those views keeps the whole mapping alive, and the
    pages read stay resident: for SmolLM2-135M the 405 MiB of fp32 linear weights stayed
    in the process's RSS through training, so QLoRA measured more memory than LoRA
    (bench/README.md, memory_estimate). Copying the few unquantised weights (the tied
    embedding is one Parameter: it stays tied) lets the mapping go."""
    import torch

    with torch.no_grad():
        for module in model.modules():
            for tensors in (module._parameters, module._buffers):
                for tensor in tensors.values():
                    # torch's own allocations are resizable; memory it was handed is not
                    if tensor is not None and tensor.device.type == "cpu" and not tensor.untyped_storage().resizable():
                        tensor.data = tensor.data.clone()


def add_lora(model: Any, config: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    targets: Any = config.lora_target_modules
    modules_to_save = None
    if config.modality != "text":
        from tunespec_local.media.family import fully_trained, lora_targets

        trained = config.media_encoder == "trained"
        if targets == "all-linear":
            targets = lora_targets(model, trained)
        modules_to_save = fully_trained(model, trained) or None
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        modules_to_save=modules_to_save,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def _device_map_target(device: Any) -> Any:
    """`device_map` wants a CUDA device as its index; CPU (and MPS) by name."""
    if device is None:
        return "cpu"
    if getattr(device, "type", None) == "cuda":
        return device.index if device.index is not None else 0
    return str(device)


def shard_model(model: Any, device: Any) -> Any:
    """Shard `model` over the default process group with FSDP2 (`fully_shard`) and return it.

    Each decoder block is its own unit (its weights are gathered just before its forward and
    freed after), then the root takes what is left (embeddings, final norm, output layer).
    The blocks are the classes the model names in `_no_split_modules` (transformers' own list
    of modules that must stay whole on one device), so this works for any architecture
    without a table of layer names. FSDP2 shards every parameter separately, so a frozen
    base beside trainable LoRA weights needs nothing special; parameter names are unchanged,
    so checkpoints and published weights keep the unsharded model's keys."""
    from torch.distributed.fsdp import fully_shard

    model = model.to(device)
    for block in decoder_blocks(model):
        fully_shard(block)
    fully_shard(model)
    return model


def decoder_blocks(model: Any) -> list[Any]:
    """The model's repeated blocks (e.g. `LlamaDecoderLayer`s), outermost first."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or ())
    if not names:
        raise ValueError(f"{type(base).__name__} does not name its decoder blocks (`_no_split_modules`); FSDP cannot shard it by block")
    blocks = [module for module in base.modules() if type(module).__name__ in names]
    # A block class nested in another one (rare) is sharded with its outer block.
    return [b for b in blocks if not any(b is not o and any(m is b for m in o.modules()) for o in blocks)]


def publishable_state_dict(model: Any, config: TrainConfig) -> dict[str, Any]:
    """The full (unsharded) weights of a sharded model, on the main worker's CPU (other
    workers get an empty dict): what `save_outputs` writes as `adapter/` or `model/`. Every
    worker must call it (it gathers shards). For LoRA only the trainable adapter weights
    are gathered; the frozen base is the model folder it was loaded from."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=config.method == "peft")
    return get_model_state_dict(model, options=options)
