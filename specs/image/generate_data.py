"""Write train.jsonl and validation.jsonl: a coloured shape on a plain background, and the
question "What is in the picture?" answered as JSON: {"shape": ..., "color": ...}.

Deterministic (fixed seed): running it again writes the same files. Each image is a 64x64
PNG, inlined as a data: URL in OpenAI's chat format (`image_url` content parts). Shapes,
colours, sizes, positions and background shades vary; the validation images are new
draws, none of them in the training set.

    python specs/image/generate_data.py
"""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path

SHAPES = ("circle", "square", "triangle")
COLORS = {"red": (215, 40, 40), "green": (40, 170, 60), "blue": (45, 70, 215), "yellow": (235, 200, 40)}
QUESTION = 'Shape and color, as JSON?'
SIZE = 64


def paint(pen, shape: str, cx: int, cy: int, radius: int, fill: tuple) -> None:
    """Draw one filled shape centred at (cx, cy) with a PIL ImageDraw pen."""
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if shape == "circle":
        pen.ellipse(box, fill=fill)
    elif shape == "square":
        pen.rectangle(box, fill=fill)
    else:
        pen.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=fill)


def draw(shape: str, color: str, rng: random.Random) -> bytes:
    from PIL import Image, ImageDraw

    shade = rng.randint(200, 255)
    image = Image.new("RGB", (SIZE, SIZE), (shade, shade, shade))
    pen = ImageDraw.Draw(image)
    radius = rng.randint(12, 20)
    cx, cy = rng.randint(radius + 2, SIZE - radius - 2), rng.randint(radius + 2, SIZE - radius - 2)
    fill = tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in COLORS[color])
    paint(pen, shape, cx, cy, radius, fill)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def example(shape: str, color: str, rng: random.Random) -> dict:
    url = "data:image/png;base64," + base64.b64encode(draw(shape, color, rng)).decode()
    answer = json.dumps({"shape": shape, "color": color})
    return {"messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": QUESTION}]},
        {"role": "assistant", "content": answer},
    ]}


def write(path: Path, n: int, rng: random.Random) -> None:
    pairs = [(s, c) for s in SHAPES for c in COLORS]
    rows = [example(*pairs[i % len(pairs)], rng) for i in range(n)]
    rng.shuffle(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    here = Path(__file__).parent
    rng = random.Random(12)
    write(here / "train.jsonl", 240, rng)
    write(here / "validation.jsonl", 36, rng)


if __name__ == "__main__":
    main()
