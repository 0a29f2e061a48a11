"""Benchmark: the multimodal data path of the local backend (tunespec_local.media).

Two figures, each against a baseline measured in the same run:

1. throughput, per architecture (tiny LLaVA and Idefics3 with their real processors,
   `tunespec.testing.make_tiny_vision_model`), on N image examples of varied sizes and
   aspect ratios (one JSONL file per round; even rounds OpenAI `image_url` data: URLs, odd
   rounds Gemini `inlineData`):

   - per example, what `encoded_split` does before training: tunespec reads the JSONL
     file, decodes each image, renders the chat template, tokenises the text and puts the
     processor's expansion of each image in its placeholder's place, writing the tokens
     and media bytes to a fresh token cache (`cached_split` + `MediaChatEncoder`);
     baseline: the processor alone as a user would call it on the same lines
     (`json.loads`, base64 decode, PIL decode, `processor.apply_chat_template`,
     `processor(text=..., images=...)`), no cache written;
   - per batch, what training does each micro-batch: tunespec reads the batch's examples
     from that cache and collates them with `MediaInputs` (pixel values from the cached
     image bytes: `SupervisedObjective.collate`); baseline: `processor(text=[...],
     images=[...], padding=True, return_tensors="pt")` on the same examples, their texts
     rendered and image bytes held in memory before the clock starts (PIL decode timed).

   Rounds alternate which path goes first; per example, each path does the whole round's
   file in turn; per batch, the two alternate batch by batch. A round's ratio is tunespec's
   examples/s over the baseline's; the median over rounds is reported (and the same ratio
   of CPU seconds, steadier on a shared machine). Target: >= 1.0 (tunespec's path no
   slower than calling the processor yourself). `--profile ARCH` shows where tunespec's
   per-example time goes instead.

2. peak RSS of a fresh process streaming 1k and 10k (`--sizes`) image examples through
   `cached_split` with the `MediaChatEncoder` (tiny LLaVA) into a fresh cache folder,
   minus the process's RSS after imports, processor load and a warm-up encoding (as
   bench/data_scale.py). Target: the largest size's growth under 1.5x the smallest's.

    .venv/bin/python bench/multimodal_data.py                      # 2,000 examples; 1k and 10k for memory (~2 min)
    .venv/bin/python bench/multimodal_data.py --skip-throughput --sizes 10000,50000
    .venv/bin/python bench/multimodal_data.py --examples 8000 --rounds 20 --sizes 1000,10000,50000
    .venv/bin/python bench/multimodal_data.py --profile idefics3   # where tunespec's per-example time goes

Data lives under .bench/multimodal_data/ (gitignored, reused); models and caches in a
temporary folder.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".bench" / "multimodal_data"
ARCHITECTURES = ("llava", "idefics3")
SHAPES = ("circle", "square", "triangle")
COLORS = {"red": (215, 40, 40), "green": (40, 170, 60), "blue": (45, 70, 215), "yellow": (235, 200, 40)}
QUESTION = "Shape and color, as JSON?"
MICRO_BATCH = 8

SPEC = """\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: multimodal-bench
model:
  base: {model}
data:
  modality: image
  train: {train}
  max_seq_length: 4096
method:
  type: peft
backend:
  name: local
  device: cpu
"""


# -- data ----------------------------------------------------------------------------------


def draw(rng: random.Random) -> tuple[bytes, str, str]:
    """A PNG of a coloured shape on a plain background, 24-160 pixels a side (varied aspect
    ratios), with a few noisy pixels so that every image is unique."""
    from PIL import Image, ImageDraw

    shape, color = rng.choice(SHAPES), rng.choice(list(COLORS))
    width, height = rng.randint(24, 160), rng.randint(24, 160)
    shade = rng.randint(200, 255)
    image = Image.new("RGB", (width, height), (shade, shade, shade))
    pen = ImageDraw.Draw(image)
    radius = max(4, min(width, height) // 2 - rng.randint(2, 8))
    cx, cy = rng.randint(radius, width - radius), rng.randint(radius, height - radius)
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    fill = tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in COLORS[color])
    if shape == "circle":
        pen.ellipse(box, fill=fill)
    elif shape == "square":
        pen.rectangle(box, fill=fill)
    else:
        pen.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=fill)
    for _ in range(4):
        image.putpixel((rng.randrange(width), rng.randrange(height)), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue(), shape, color


def record(rng: random.Random, gemini: bool) -> dict:
    png, shape, color = draw(rng)
    answer = json.dumps({"shape": shape, "color": color})
    data = base64.b64encode(png).decode()
    if gemini:
        return {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": data}}, {"text": QUESTION}]},
                             {"role": "model", "parts": [{"text": answer}]}]}
    return {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + data}},
                                                      {"type": "text", "text": QUESTION}]},
                         {"role": "assistant", "content": answer}]}


def make_file(path: Path, n: int, seed: int, gemini: bool) -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for _ in range(n):
            f.write(json.dumps(record(rng, gemini)) + "\n")
    tmp.rename(path)
    return path


def round_files(examples: int, rounds: int) -> list[Path]:
    per = examples // rounds
    return [make_file(WORK / f"rounds-{examples}x{rounds}" / f"round-{r:02d}.jsonl", per, 1000 + r, gemini=bool(r % 2)) for r in range(rounds)]


# -- tunespec's path ------------------------------------------------------------------------


def resolved_spec(model: Path, train: Path):
    import yaml

    from tunespec.spec.model import TuningJob
    from tunespec.spec.resolve import ResolvedSpec
    from tunespec_local.config import LocalConfig

    spec_file = train.with_suffix(".yaml")
    text = SPEC.format(model=model, train=train.name)
    job = TuningJob.model_validate(yaml.safe_load(text))
    return ResolvedSpec(job=job, config=LocalConfig(), file=spec_file, document=0)


def encoder_for(model: Path, spec_dir: Path):
    from tunespec_local.encode import ChatTokenizer
    from tunespec_local.media.encode import MediaChatEncoder
    from tunespec_local.media.load import MediaReader

    return MediaChatEncoder(ChatTokenizer.from_folder(model), model, MediaReader(spec_dir))


def tunespec_encode(model: Path, encoder, train: Path, cache: Path):
    """What `encoded_split` does for one split: stream it through the encoder into a fresh cache."""
    from tunespec.data import iter_conversations
    from tunespec_local.encoded import cached_split

    spec = resolved_spec(model, train)
    key = f"{train.stem}-{time.monotonic_ns()}"
    return cached_split(cache, key, lambda: iter_conversations(spec, "train"), lambda batch: encoder.encode_many(batch, 4096),
                        False, lambda message: None, "bench")


def tunespec_batch(split, start: int, objective, pad_token_id: int) -> int:
    """What training does each micro-batch: its examples read from the cache, collated with their pixel values."""
    return len(objective.collate(split[start:start + MICRO_BATCH], False, pad_token_id)["input_ids"])


# -- the processor alone -----------------------------------------------------------------


def user_example(line: str) -> tuple[list[dict], list[bytes]]:
    """A JSONL line as a user would hand it to the processor: chat messages with `{"type":
    "image"}` parts, and the image bytes in order."""
    record = json.loads(line)
    messages, images = [], []
    if "messages" in record:
        for m in record["messages"]:
            content = m["content"]
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            parts = []
            for p in content:
                if p["type"] == "image_url":
                    images.append(base64.b64decode(p["image_url"]["url"].split(",", 1)[1]))
                    parts.append({"type": "image"})
                else:
                    parts.append({"type": "text", "text": p["text"]})
            messages.append({"role": m["role"], "content": parts})
    else:
        for c in record["contents"]:
            parts = []
            for p in c["parts"]:
                if "inlineData" in p:
                    images.append(base64.b64decode(p["inlineData"]["data"]))
                    parts.append({"type": "image"})
                else:
                    parts.append({"type": "text", "text": p["text"]})
            messages.append({"role": "assistant" if c["role"] == "model" else c["role"], "content": parts})
    return messages, images


def pil(data: bytes):
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def processor_encode(processor, lines: list[str]) -> int:
    n = 0
    for line in lines:
        messages, images = user_example(line)
        text = processor.apply_chat_template(messages, tokenize=False)
        out = processor(text=text, images=[pil(b) for b in images])
        n += len(out["input_ids"])
    return n


def processor_batch(processor, examples: list[tuple[str, list[bytes]]], start: int) -> int:
    chunk = examples[start:start + MICRO_BATCH]
    out = processor(text=[text for text, _ in chunk], images=[[pil(b) for b in images] for _, images in chunk],
                    padding=True, return_tensors="pt")
    return len(out["input_ids"])


# -- figures -------------------------------------------------------------------------------


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def throughput(arch: str, model: Path, files: list[Path], scratch: Path) -> dict:
    from tunespec_local.media.encode import load_processor
    from tunespec_local.media.inputs import MediaInputs
    from tunespec_local.training.objectives import SupervisedObjective

    processor = load_processor(model)  # the same processor object both paths use
    encoder = encoder_for(model, files[0].parent)
    objective = SupervisedObjective(media=MediaInputs(str(model)))
    pad = encoder.pad_token_id
    # Warm-up (chat templates compiled, the processor's first calls) outside the timing.
    warm = files[0].read_text().splitlines()[:8]
    processor_encode(processor, warm)
    processor_batch(processor, [(processor.apply_chat_template(m, tokenize=False), i) for m, i in map(user_example, warm)], 0)
    tunespec_batch(tunespec_encode(model, encoder, files[0], scratch / "warm-up"), 0, objective, pad)
    same_tokens(model, encoder, processor, files[:2])
    rows = []
    for r, path in enumerate(files):
        lines = path.read_text().splitlines()
        prepared = []
        for line in lines:
            messages, images = user_example(line)
            prepared.append((processor.apply_chat_template(messages, tokenize=False), images))
        cache = scratch / f"cache-{arch}-{r}"
        timings = {}
        split = None
        order = ("processor", "tunespec") if r % 2 == 0 else ("tunespec", "processor")
        for which in order:  # per example: the whole round's file one way, then the other
            if which == "processor":
                timings["processor_encode"] = timed(processor_encode, processor, lines)
            else:
                split, wall, cpu = timed(tunespec_encode, model, encoder, path, cache)
                timings["tunespec_encode"] = (len(split), wall, cpu)
        # per batch: interleaved batch by batch (who goes first alternates)
        timings["processor_batch"] = timings["tunespec_batch"] = (0, 0.0, 0.0)
        for b, start in enumerate(range(0, len(lines), MICRO_BATCH)):
            for which in order if b % 2 == 0 else order[::-1]:
                if which == "processor":
                    timings["processor_batch"] = add(timings["processor_batch"], timed(processor_batch, processor, prepared, start))
                else:
                    timings["tunespec_batch"] = add(timings["tunespec_batch"], timed(tunespec_batch, split, start, objective, pad))
        assert all(n == len(lines) for n, _, _ in timings.values()), timings
        split.close()
        shutil.rmtree(cache, ignore_errors=True)
        # examples/s of wall clock and of CPU time (this process's, all threads)
        rows.append({k: (n / wall, n / cpu) for k, (n, wall, cpu) in timings.items()})
        row = rows[-1]
        print(f"  {arch} round {r + 1}/{len(files)} ({len(lines)} examples, {'Gemini' if r % 2 else 'OpenAI'}, {order[0]} first): "
              f"per example {row['tunespec_encode'][0]:.0f} / {row['processor_encode'][0]:.0f} ex/s = "
              f"{row['tunespec_encode'][0] / row['processor_encode'][0]:.2f} (CPU {row['tunespec_encode'][1] / row['processor_encode'][1]:.2f}); "
              f"per batch {row['tunespec_batch'][0]:.0f} / {row['processor_batch'][0]:.0f} ex/s = "
              f"{row['tunespec_batch'][0] / row['processor_batch'][0]:.2f} (CPU {row['tunespec_batch'][1] / row['processor_batch'][1]:.2f})",
              flush=True)
    return {
        phase: {
            "tunespec": statistics.median(row[f"tunespec_{phase}"][0] for row in rows),
            "processor": statistics.median(row[f"processor_{phase}"][0] for row in rows),
            "ratios": [row[f"tunespec_{phase}"][0] / row[f"processor_{phase}"][0] for row in rows],
            "cpu_ratios": [row[f"tunespec_{phase}"][1] / row[f"processor_{phase}"][1] for row in rows],
        }
        for phase in ("encode", "batch")
    }


def same_tokens(model: Path, encoder, processor, files: list[Path]) -> None:
    """Both paths give the same token ids (so they do the same work): checked on the first
    examples of an OpenAI and a Gemini file."""
    import itertools

    from tunespec.data import iter_conversations

    for path in files:
        conversations = itertools.islice(iter_conversations(resolved_spec(model, path), "train"), 8)
        for conversation, line in zip(conversations, path.read_text().splitlines()):
            messages, images = user_example(line)
            ids = processor(text=processor.apply_chat_template(messages, tokenize=False), images=[pil(b) for b in images])["input_ids"][0]
            if list(ids) != encoder.encode(conversation, 4096).input_ids:
                raise SystemExit(f"{path}:{conversation.line}: tunespec's token ids differ from the processor's")


def add(a: tuple, b: tuple) -> tuple:
    return tuple(x + y for x, y in zip(a, b))


def timed(function, *args) -> tuple:
    """(what `function` returns, wall seconds, CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def profile(arch: str, model: Path, files: list[Path], scratch: Path) -> None:
    """cProfile of tunespec's per-example path over all rounds but the first (a warm-up),
    with a summary of where the time goes."""
    import cProfile
    import pstats

    encoder = encoder_for(model, files[0].parent)
    tunespec_encode(model, encoder, files[0], scratch / "warm-up")
    profiler = cProfile.Profile()
    profiler.enable()
    for path in files[1:]:
        tunespec_encode(model, encoder, path, scratch / "profile")
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(30)

    def cumulative(file: str, function: str) -> float:
        return sum(row[3] for (f, _, name), row in stats.stats.items() if f.endswith(file) and name == function)

    total = cumulative("encoded/cache.py", "cached_split")
    encode = cumulative("media/encode.py", "encode")
    parts = {
        "the processor called on the image for its expansion (pixel values computed, then dropped)":
            cumulative("media/encode.py", "expand") - cumulative("media/encode.py", "decode_image"),
        "decoding the image (PIL, to RGB) for that call": cumulative("media/encode.py", "decode_image"),
        "the chat template (3 renders: the text, and before/through the model turn for its span)":
            cumulative("tunespec_local/encode.py", "render"),
        "tokenising the text pieces and labelling them": cumulative("media/encode.py", "_add_text"),
        "chat messages from the conversation (base64 decode of the image)": cumulative("media/encode.py", "messages"),
    }
    parts["the rest of encode (placeholder search, Encoded)"] = encode - sum(parts.values())
    parts["reading and parsing the JSONL file, writing the cache (fsync included)"] = total - encode
    n = (len(files) - 1) * (sum(1 for _ in files[0].open()))
    print(f"where tunespec's per-example time goes ({arch}, {n:,} examples, {total:.2f} s under the profiler):")
    for name, seconds in parts.items():
        print(f"  {seconds / total:6.1%}  {seconds:6.2f} s  {name}")


# -- memory --------------------------------------------------------------------------------


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def memory_child(model: Path, train: Path, cache: Path) -> None:
    """In a fresh process: imports, processor, a warm-up encoding; then the whole file
    streamed into a fresh cache. Prints a JSON line."""
    import itertools

    from tunespec.data import iter_conversations

    encoder = encoder_for(model, train.parent)
    spec = resolved_spec(model, train)
    encoder.encode_many(list(itertools.islice(iter_conversations(spec, "train"), 16)), 4096)
    baseline_kb = status_kb("VmRSS")
    started = time.perf_counter()
    split = tunespec_encode(model, encoder, train, cache)
    print(json.dumps({"examples": len(split), "baseline_mb": baseline_kb / 1024, "peak_mb": status_kb("VmHWM") / 1024,
                      "seconds": time.perf_counter() - started}), flush=True)


def memory(model: Path, sizes: list[int], scratch: Path) -> dict[int, dict]:
    results = {}
    for n in sizes:
        train = make_file(WORK / f"memory-{n}" / "train.jsonl", n, 7, gemini=False)
        cache = scratch / f"memory-cache-{n}"
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(model), str(train), str(cache)], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])})
        shutil.rmtree(cache, ignore_errors=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode or not lines:
            raise SystemExit(f"the memory run on {n} examples failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        results[n] = r = json.loads(lines[-1])
        print(f"  {n:>7,} examples ({train.stat().st_size / 1e6:.0f} MB file): peak RSS {r['peak_mb']:.0f} MB, after imports and "
              f"warm-up {r['baseline_mb']:.0f} MB, growth {r['peak_mb'] - r['baseline_mb']:.1f} MB ({r['seconds']:.1f} s, "
              f"{r['examples'] / r['seconds']:.0f} ex/s)", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="image examples per architecture for the throughput figure")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (the examples are split between them)")
    parser.add_argument("--sizes", default="1000,10000", help="examples per memory run (comma-separated)")
    parser.add_argument("--architectures", default=",".join(ARCHITECTURES))
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--profile", choices=ARCHITECTURES, help="instead: cProfile tunespec's per-example path over the rounds, and where its time goes")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(*map(Path, args.memory_child))

    from tunespec.testing.tiny_multimodal import make_tiny_vision_model

    started = time.time()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; {load()} at the start", flush=True)
    files = round_files(args.examples, args.rounds)
    corpus = [QUESTION, *SHAPES, *COLORS, '{"shape": "circle", "color": "red"}']
    with tempfile.TemporaryDirectory(prefix="multimodal-bench-") as tmp:
        scratch = Path(tmp)
        models: dict[str, Path] = {}

        def model(arch: str) -> Path:
            if arch not in models:
                models[arch] = make_tiny_vision_model(scratch / arch, arch, corpus=corpus)
            return models[arch]

        if args.profile:
            return profile(args.profile, model(args.profile), files, scratch)
        results = {}
        if not args.skip_throughput:
            print(f"\nthroughput: {args.examples:,} examples in {args.rounds} interleaved rounds, micro-batches of {MICRO_BATCH}", flush=True)
            for arch in args.architectures.split(","):
                results[arch] = throughput(arch, model(arch), files, scratch)
        mem = {}
        if not args.skip_memory:
            print(f"\npeak RSS of a fresh process streaming a split into the cache (tiny llava), {load()}", flush=True)
            mem = memory(model("llava"), [int(s) for s in args.sizes.split(",")], scratch)

    print(f"\n{load()} at the end; {time.time() - started:.0f} s in all\n")
    if results:
        print("| architecture | path | processor alone (ex/s) | tunespec (ex/s) | ratio, median of rounds (min-max) | ratio of CPU time | target |")
        print("|---|---|---|---|---|---|---|")
        for arch, phases in results.items():
            for phase, name in (("encode", "per example (read, decode, tokenise, expand)"), ("batch", f"per batch of {MICRO_BATCH} (pixel values)")):
                f = phases[phase]
                print(f"| {arch} | {name} | {f['processor']:.0f} | {f['tunespec']:.0f} | **{statistics.median(f['ratios']):.2f}** "
                      f"({min(f['ratios']):.2f}-{max(f['ratios']):.2f}) | {statistics.median(f['cpu_ratios']):.2f} | >= 1.0 |")
    if mem:
        sizes = sorted(mem)
        print("\n| examples | peak RSS | after imports + warm-up | growth |")
        print("|---|---|---|---|")
        for n in sizes:
            r = mem[n]
            print(f"| {n:,} | {r['peak_mb']:.0f} MB | {r['baseline_mb']:.0f} MB | {r['peak_mb'] - r['baseline_mb']:.1f} MB |")
        growth = {n: mem[n]["peak_mb"] - mem[n]["baseline_mb"] for n in sizes}
        small, large = sizes[0], sizes[-1]
        print(f"\npeak RSS growth {large:,} / {small:,} examples = {growth[large]:.1f} / {growth[small]:.1f} MB = "
              f"**{growth[large] / max(growth[small], 1e-9):.2f}x** (target < 1.5x); whole process "
              f"{mem[large]['peak_mb'] / mem[small]['peak_mb']:.2f}x")
        for a, b in zip(sizes, sizes[1:]):
            print(f"  {b:,} / {a:,}: {growth[b] / max(growth[a], 1e-9):.2f}x, "
                  f"{(growth[b] - growth[a]) * 1024 * 1024 / (b - a):.0f} bytes per added example")


if __name__ == "__main__":
    main()
