"""Write train.jsonl and validation.jsonl: short clips of beeps, and the question "How many
beeps, and how high?" answered as JSON: {"beeps": 1-3, "pitch": "low" | "high"}.

Deterministic (fixed seed). Each clip is a 1-second mono WAV at 8 kHz (16-bit): 1 to 3
beeps of a low (220-330 Hz) or high (880-1320 Hz) tone at varied times and loudness, over
a little noise. Clips are inlined in the records: OpenAI `input_audio` parts for training,
Gemini `inlineData` (audio/wav) for validation. The validation clips are new draws.

    python specs/audio/generate_data.py
"""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path

RATE = 8000
QUESTION = "Beeps and pitch, as JSON?"


def clip(beeps: int, pitch: str, rng: random.Random) -> bytes:
    import numpy as np
    import soundfile

    generator = np.random.default_rng(rng.randrange(1 << 30))
    t = np.arange(RATE) / RATE
    wave = generator.normal(0, 0.01, RATE)
    slots = sorted(rng.sample(range(5), beeps))  # beeps start in distinct fifths of the second
    frequency = rng.uniform(220, 330) if pitch == "low" else rng.uniform(880, 1320)
    for slot in slots:
        start = slot * RATE // 5 + rng.randint(0, RATE // 40)
        length = rng.randint(RATE // 12, RATE // 7)
        envelope = np.zeros(RATE)
        envelope[start : start + length] = np.hanning(len(envelope[start : start + length]))
        wave += rng.uniform(0.3, 0.8) * envelope * np.sin(2 * np.pi * frequency * t)
    out = io.BytesIO()
    soundfile.write(out, wave.astype("float32"), RATE, format="WAV", subtype="PCM_16")
    return out.getvalue()


def answer(beeps: int, pitch: str) -> str:
    return json.dumps({"beeps": beeps, "pitch": pitch})


def openai_record(beeps: int, pitch: str, rng: random.Random) -> dict:
    data = base64.b64encode(clip(beeps, pitch, rng)).decode()
    return {"messages": [
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}, {"type": "text", "text": QUESTION}]},
        {"role": "assistant", "content": answer(beeps, pitch)},
    ]}


def gemini_record(beeps: int, pitch: str, rng: random.Random) -> dict:
    data = base64.b64encode(clip(beeps, pitch, rng)).decode()
    return {"contents": [
        {"role": "user", "parts": [{"inlineData": {"mimeType": "audio/wav", "data": data}}, {"text": QUESTION}]},
        {"role": "model", "parts": [{"text": answer(beeps, pitch)}]},
    ]}


def main() -> None:
    here = Path(__file__).parent
    rng = random.Random(5)
    kinds = [(b, p) for b in (1, 2, 3) for p in ("low", "high")]
    train = [openai_record(*kinds[i % len(kinds)], rng) for i in range(160)]
    rng.shuffle(train)
    validation = [gemini_record(*kinds[i % len(kinds)], rng) for i in range(36)]
    (here / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (here / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in validation))


if __name__ == "__main__":
    main()
