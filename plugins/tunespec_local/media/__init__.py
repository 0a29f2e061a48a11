"""Multimodal examples (image, audio, document) on the torch backends.

    load.py      the bytes of a media part (local path, inline/data: URL, gs://), and a
                 PDF's pages as images or text, as `data.documents` says
    encode.py    a conversation with media -> token ids and labels through the model's own
                 processor (each image/audio/page expanded to its real number of tokens)
    inputs.py    the processor's tensors for the media of a batch (pixel values, audio
                 features), next to the token ids the loop already collates
    family.py    which part of a multimodal model is the media encoder, the projector and
                 the language model (LoRA targets, what `method.media_encoder` trains)

Text-only specs never import the heavy parts of this package.
"""

# Where a saved multimodal model keeps its processor's settings (image processor, audio
# feature extractor): transformers writes one or both next to the tokenizer.
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")

AUDIO_INSTALL_HINT = "`pip install 'tunespec[local]'` (the `ray` extra includes it): it brings soundfile, whose wheels bundle libsndfile"
"""How to get the audio decoder (`soundfile`, in the `local` extra of pyproject.toml)."""


def model_modality(job) -> str:
    """What the model reads: "text" for text data and for documents read as text
    (`data.documents.pages_as: text`: a text model, packed like any text), else the data's
    modality (a multimodal model with its processor)."""
    modality = job.data.modality
    if modality == "document" and job.data.documents.pages_as == "text":
        return "text"
    return modality
