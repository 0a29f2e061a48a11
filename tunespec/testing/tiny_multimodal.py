"""Tiny random-initialised multimodal models of real architectures, with real processors.

`make_tiny_model` (tiny_model.py) gives tests a text model in seconds; this module does the
same for image-text and audio-text models, so the multimodal path is tested on the
architectures users tune, not on a stand-in. `make_tiny_vision_model(folder, architecture)`
and `make_tiny_audio_model(folder, architecture)` write a complete Hugging Face folder:
config and random weights, a byte-level BPE tokenizer trained on the fly with the
architecture's media tokens, the architecture's own processor (image processor settings
scaled down to 32-pixel images, audio feature extractors to clips of about a second) and a
ChatML chat template that places media the way the family's templates do (`{"type":
"image"}` / `{"type": "audio"}` content parts, each emitting the family's placeholder).

    llava        LlavaForConditionalGeneration: CLIP vision tower + 2-layer MLP projector +
                 Llama; a fixed number of image tokens per image
    idefics3     Idefics3ForConditionalGeneration (SmolVLM's architecture): SigLIP-style
                 vision model + pixel-shuffle connector + Llama; images are split into tiles,
                 each with its own run of image tokens, so the count depends on the image's size
    smolvlm      SmolVLMForConditionalGeneration: Idefics3's architecture under SmolVLM's
                 model type and processor (the one SmolVLM/SmolVLM2 checkpoints load)
    qwen2_5_vl   Qwen2_5_VLForConditionalGeneration: windowed ViT over 4-pixel patches, 2x2
                 patch merger + Qwen2 with 3-D rotary positions (mrope); images resized to
                 whole 8-pixel cells (64 to 1024 pixels), one `<|image_pad|>` per cell between
                 `<|vision_start|>` and `<|vision_end|>` (a 40x30 image: 12)
    gemma3       Gemma3ForConditionalGeneration: SigLIP vision tower (32-pixel images, 8-pixel
                 patches) + average-pooling projector + Gemma 3 text model (a sliding-window
                 layer and a global one); every image is `<start_of_image>`, 4
                 `<image_soft_token>`s, `<end_of_image>` (with the processor's blank lines
                 around them), and the processor marks the soft tokens in `token_type_ids`,
                 which the model reads to let an image's tokens attend to each other both ways
    qwen2_audio  Qwen2AudioForConditionalGeneration: Whisper-style encoder over log-mel
                 features (16 mel bins, 1-second windows) + linear projector + Qwen2;
                 `<|audio_bos|><|AUDIO|><|audio_eos|>`, as many audio tokens as the clip's
                 length gives (longer clips are cut at the window)
    omniasr      OmniASRForConditionalGeneration (Omnilingual ASR LLM): wav2vec2-style
                 encoder over the raw waveform (convolutional subsampling, 320 samples a
                 frame) + linear projector + Llama; `<extra_id_1>`, one audio token per frame

Each loads with `AutoModelForMultimodalLM.from_pretrained(folder)` and
`AutoProcessor.from_pretrained(folder)`; usable as a spec's `model.base`. Heavy libraries
are imported inside the functions. SmolVLM's and Qwen2.5-VL's processors are saved without
their video processor, which transformers 5 builds only with torchvision (not installed by
tunespec): `AutoProcessor` needs torchvision for them, tunespec's `load_processor` does not.

The image tests parametrise over `llava` and `idefics3` only; the other vision
architectures have tests of their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tunespec.testing.tiny_model import train_tiny_tokenizer

VISION_ARCHITECTURES = ("llava", "idefics3", "smolvlm", "qwen2_5_vl", "gemma3")
AUDIO_ARCHITECTURES = ("qwen2_audio", "omniasr")
ARCHITECTURES = VISION_ARCHITECTURES + AUDIO_ARCHITECTURES


def chat_template(audio: str = "<|AUDIO|>", image: str = "<image>") -> str:
    """ChatML with media placeholders: each `{"type": "image"}` part becomes `image` (by
    default `<image>`, the token LLaVA and Idefics3 processors expand, as SmolVLM's and
    LLaVA's own templates do; Qwen2-VL's templates write
    `<|vision_start|><|image_pad|><|vision_end|>`, Gemma 3's `<start_of_image>`); each
    `{"type": "audio"}` part becomes `audio` (the family's placeholder)."""
    return (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for part in message['content'] %}"
        f"{{% if part['type'] == 'image' %}}{{{{ '{image}' }}}}"
        f"{{% elif part['type'] == 'audio' %}}{{{{ '{audio}' }}}}"
        "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
        "{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )


MULTIMODAL_CHAT_TEMPLATE = chat_template()


def make_tiny_vision_model(folder: str | Path, architecture: str = "llava", *, corpus: Iterable[str] = (), vocab_size: int = 512,
                           hidden_size: int = 64, seed: int = 0) -> Path:
    """Write a tiny image-text model of `architecture` (see the module docstring) to `folder`."""
    if architecture not in VISION_ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(VISION_ARCHITECTURES)}")
    folder = Path(folder)
    build = {"llava": _llava, "idefics3": _idefics3, "smolvlm": _smolvlm, "qwen2_5_vl": _qwen2_5_vl, "gemma3": _gemma3}[architecture]
    return _save(folder, build, corpus, vocab_size, hidden_size, seed)


def make_tiny_audio_model(folder: str | Path, architecture: str = "qwen2_audio", *, corpus: Iterable[str] = (), vocab_size: int = 512,
                          hidden_size: int = 64, seed: int = 0) -> Path:
    """Write a tiny audio-text model of `architecture` (see the module docstring) to `folder`."""
    if architecture not in AUDIO_ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(AUDIO_ARCHITECTURES)}")
    build = {"qwen2_audio": _qwen2_audio, "omniasr": _omniasr}[architecture]
    return _save(Path(folder), build, corpus, vocab_size, hidden_size, seed)


def _save(folder: Path, build, corpus: Iterable[str], vocab_size: int, hidden_size: int, seed: int) -> Path:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        processor, model = build(list(corpus), vocab_size, hidden_size)
    tokenizer = processor.tokenizer
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    processor.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


def _tokenizer(corpus: list[str], vocab_size: int, media_tokens: list[str], **attributes):
    """`attributes`: named special tokens the processor reads off the tokenizer (Gemma 3's
    `extra_special_tokens={"boi_token": ...}`)."""
    from transformers import PreTrainedTokenizerFast

    raw = train_tiny_tokenizer(corpus, vocab_size)
    raw.add_special_tokens(media_tokens)
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token=None, **attributes)


def _text_config(tokenizer, hidden_size: int, config_class=None):
    from transformers import LlamaConfig

    return (config_class or LlamaConfig)(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tokenizer.pad_token_id)


def _llava(corpus: list[str], vocab_size: int, hidden_size: int):
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = _tokenizer(corpus, vocab_size, ["<image>"])
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    # 32x32 images in 8x8 patches: 16 patches + CLS, minus CLS ("default" feature selection) = 16 image tokens
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default",
                               num_additional_image_tokens=1, chat_template=MULTIMODAL_CHAT_TEMPLATE)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8,
                              projection_dim=32)
    config = LlavaConfig(vision_config=vision, text_config=_text_config(tokenizer, hidden_size),
                         image_token_id=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
                         vision_feature_select_strategy="default")
    return processor, LlavaForConditionalGeneration(config)


def _idefics3(corpus: list[str], vocab_size: int, hidden_size: int):
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    return _tiled(corpus, vocab_size, hidden_size, Idefics3Processor, Idefics3ImageProcessorPil, Idefics3Config, Idefics3ForConditionalGeneration)


def _smolvlm(corpus: list[str], vocab_size: int, hidden_size: int):
    """SmolVLM: Idefics3's architecture with its own classes; its processor saved without the
    video part (transformers 5 builds that only with torchvision)."""
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMProcessor
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    return _tiled(corpus, vocab_size, hidden_size, without_video(SmolVLMProcessor), SmolVLMImageProcessorPil, SmolVLMConfig,
                  SmolVLMForConditionalGeneration)


def _tiled(corpus: list[str], vocab_size: int, hidden_size: int, processor_class, image_processor_class, config_class, model_class):
    """An Idefics3-style model (Idefics3, SmolVLM): images split into tiles plus a global view."""
    media_tokens = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
    media_tokens += [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    tokenizer = _tokenizer(corpus, vocab_size, media_tokens)
    # Tiles of 32 pixels (the longest edge resized to at most 64: up to 2x2 tiles + the global
    # view); 32/8 = 4x4 patches, pixel-shuffled by 2 -> 4 image tokens per tile.
    image_processor = image_processor_class(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True)
    processor = processor_class(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4, chat_template=MULTIMODAL_CHAT_TEMPLATE)
    config = config_class(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32,
                       "patch_size": 8},
        text_config=_text_config(tokenizer, hidden_size).to_dict(),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    return processor, model_class(config)


def _qwen2_5_vl(corpus: list[str], vocab_size: int, hidden_size: int):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2Config
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    media = {"vision_start_token_id": "<|vision_start|>", "vision_end_token_id": "<|vision_end|>", "image_token_id": "<|image_pad|>",
             "video_token_id": "<|video_pad|>"}
    tokenizer = _tokenizer(corpus, vocab_size, list(media.values()))
    # 4-pixel patches merged 2x2: one image token per 8x8 cell; images resized (keeping their
    # aspect) to whole cells between 64 and 1024 pixels, so 1 to 16 image tokens.
    image_processor = Qwen2VLImageProcessorPil(min_pixels=8 * 8, max_pixels=32 * 32, patch_size=4, merge_size=2, temporal_patch_size=2)
    processor = without_video(Qwen2_5_VLProcessor)(image_processor=image_processor, tokenizer=tokenizer,
                                                   chat_template=chat_template(image="<|vision_start|><|image_pad|><|vision_end|>"))
    text = _text_config(tokenizer, hidden_size, Qwen2Config).to_dict()
    # mrope: the rotary frequencies of each head (head_dim 16: 8) split between time, height, width
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": 4, "spatial_merge_size": 2,
              "temporal_patch_size": 2, "window_size": 16, "fullatt_block_indexes": [1], "out_hidden_size": hidden_size}
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True,
                              **{key: tokenizer.convert_tokens_to_ids(token) for key, token in media.items()})
    return processor, Qwen2_5_VLForConditionalGeneration(config)


def _gemma3(corpus: list[str], vocab_size: int, hidden_size: int):
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor, Gemma3TextConfig
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    media = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
    tokenizer = _tokenizer(corpus, vocab_size, list(media.values()), extra_special_tokens=media)  # attributes the processor reads
    # Images resized to 32x32 (no pan-and-scan crops), 8-pixel patches: 4x4 patches, pooled 2x2 -> 4 image tokens.
    image_processor = Gemma3ImageProcessorPil(size={"height": 32, "width": 32}, do_pan_and_scan=False)
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_length=4,
                                chat_template=chat_template(image="<start_of_image>"))
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in media.items()}
    text = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16, sliding_window=32, layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id)
    vision = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4, boi_token_index=ids["boi_token"],
                          eoi_token_index=ids["eoi_token"], image_token_index=ids["image_token"], tie_word_embeddings=True)
    model = Gemma3ForConditionalGeneration(config)
    # Gemma 3 initialises its projection to zeros (every image the same to the language model): random here, so images count.
    with torch.no_grad():
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, 0.2)
    return processor, model


def without_video(cls):
    """Processor class `cls` (Qwen2-VL's, SmolVLM's...) without its video processor, which
    transformers 5 builds only with torchvision: the same image path, and it saves the same
    settings under `cls`'s name (what is saved is read off `__init__`'s signature)."""
    import inspect

    class ImagesOnly(cls):  # type: ignore[misc, valid-type]
        def __init__(self, image_processor=None, tokenizer=None, **kwargs):
            cls.__init__(self, image_processor, tokenizer, None, **kwargs)

    signature = inspect.signature(cls.__init__)
    ImagesOnly.__init__.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for p in signature.parameters.values() if p.name != "video_processor"])
    ImagesOnly.__name__ = ImagesOnly.__qualname__ = cls.__name__
    return ImagesOnly


def _qwen2_audio(corpus: list[str], vocab_size: int, hidden_size: int):
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor, Qwen2Config, WhisperFeatureExtractor

    tokenizer = _tokenizer(corpus, vocab_size, ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"])
    # 1-second windows of 100 mel frames (hop 10 ms); the encoder's two convolutions and its
    # pooling make that 25 audio tokens for a full window, fewer for a shorter clip.
    features = WhisperFeatureExtractor(feature_size=16, sampling_rate=16000, hop_length=160, chunk_length=1, n_fft=400)
    processor = Qwen2AudioProcessor(feature_extractor=features, tokenizer=tokenizer,
                                    chat_template=chat_template("<|audio_bos|><|AUDIO|><|audio_eos|>"))
    audio = {"model_type": "qwen2_audio_encoder", "num_mel_bins": 16, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
             "d_model": 32, "max_source_positions": 50}  # 100 frames / the first convolution's stride of 2
    config = Qwen2AudioConfig(audio_config=audio, text_config=_text_config(tokenizer, hidden_size, Qwen2Config).to_dict(),
                              audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"))
    return processor, Qwen2AudioForConditionalGeneration(config)


def _omniasr(corpus: list[str], vocab_size: int, hidden_size: int):
    from transformers import OmniASRConfig, OmniASRFeatureExtractor, OmniASRForConditionalGeneration, OmniASRProcessor

    tokenizer = _tokenizer(corpus, vocab_size, ["<extra_id_1>"])
    # Four convolutions striding 5*4*4*4 = 320 samples: half a second at 16 kHz is 25 frames.
    kernel, stride = [10, 3, 3, 3], [5, 4, 4, 4]
    processor = OmniASRProcessor(feature_extractor=OmniASRFeatureExtractor(sampling_rate=16000), tokenizer=tokenizer,
                                 chat_template=chat_template("<extra_id_1>"), conv_kernel=kernel, conv_stride=stride)
    audio = {"model_type": "omniasr_audio", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
             "conv_dim": [16] * len(kernel), "conv_kernel": kernel, "conv_stride": stride, "num_conv_pos_embeddings": 16,
             "num_conv_pos_embedding_groups": 2}
    config = OmniASRConfig(audio_config=audio, text_config=_text_config(tokenizer, hidden_size).to_dict(),
                           audio_token_id=tokenizer.convert_tokens_to_ids("<extra_id_1>"), bos_token_id=tokenizer.bos_token_id,
                           eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tokenizer.pad_token_id)
    return processor, OmniASRForConditionalGeneration(config)
