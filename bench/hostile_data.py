"""Benchmark: validating hostile data files stays bounded in time and memory (not a test).

Data files arrive in pull requests. Each hostile case below is validated by
`tunespec.data.validate_data` in a fresh process (one core: TUNESPEC_DATA_WORKERS=1), which
reports its wall-clock seconds and peak RSS (VmHWM); each is printed next to a baseline
measured in the same run: a normal file of the same (decompressed) size and layout.

| case | baseline |
|---|---|
| .gz, 50 MiB of blank lines (52 KB) | .gz, 50 MiB of ordinary chat records |
| .gz, 50 MiB and 200 MiB of one small valid record repeated | same baseline |
| .gz, 50 MiB of records each followed by blank and whitespace lines | same baseline |
| .gz, 50 MiB of malformed lines after one good record | same baseline |
| one 30 MB JSONL record of 10M empty arrays, of 3.75M small objects | a 30 MB JSONL file of ordinary records |
| one 30 MB JSONL record holding one 18 MB inline image (accepted) | same baseline |
| 30 MB of records that are `{}` (no format) after one good record | same baseline |
| a 30 MB JSON array of 10M empty arrays | a 30 MB JSON array of ordinary records |
| /proc/self/environ, /dev/zero | (none: they end at once) |

Targets: each hostile case well under 10 s and under 500 MB, except the repeated-record
bomb, which is plain data and may take time in proportion to its decompressed size, in
flat memory. (Files of bad lines stop after 10,000 of them: TS230.)

Files are generated under .bench/hostile_data/ (gitignored; reused between runs).
Run: .venv/bin/python bench/hostile_data.py
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".bench" / "hostile_data"
MiB = 1 << 20

WORDS = "the of and to in is that for it as was with be by on not this are or from at which but have an they you model answer question".split()


def _record(rng: random.Random) -> bytes:
    def text(n: int) -> str:
        return " ".join(rng.choices(WORDS, k=n))

    turns = [{"role": ("user", "assistant")[i % 2], "content": text(rng.randint(8, 120))} for i in range(rng.choice((2, 2, 4)))]
    return orjson.dumps({"messages": turns}) + b"\n"


def _ordinary(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    pool = [_record(rng) for _ in range(5000)]
    out, n = [], 0
    while n < size:
        rng.shuffle(pool)
        for r in pool:
            out.append(r)
            n += len(r)
            if n >= size:
                break
    return b"".join(out)


def _write(name: str, make) -> Path:
    path = OUT / name
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(make())
        tmp.rename(path)
    return path


def _png_b64(size: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b"")
    return base64.b64encode(png + os.urandom(size - len(png)))


def files() -> dict[str, Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    good = orjson.dumps({"prompt": "What is 2+2?", "completion": "4"}) + b"\n"
    ordinary_50 = _ordinary(50 * MiB)
    ordinary_30 = _ordinary(30_000_000, seed=2)
    records = ordinary_30.splitlines()
    return {
        "baseline: ordinary records, 50 MiB .gz": _write("ordinary-50.jsonl.gz", lambda: gzip.compress(ordinary_50, 6)),
        "blank lines, 50 MiB .gz": _write("blank-50.jsonl.gz", lambda: gzip.compress(b"\n" * (50 * MiB), 9)),
        "one record repeated, 50 MiB .gz": _write("repeated-50.jsonl.gz", lambda: gzip.compress(good * (50 * MiB // len(good)), 9)),
        "one record repeated, 200 MiB .gz": _write("repeated-200.jsonl.gz", lambda: gzip.compress(good * (200 * MiB // len(good)), 9)),
        "records + blank/space lines, 50 MiB .gz": _write(
            "sparse-50.jsonl.gz", lambda: gzip.compress((good + b"\n" * 500 + b" \r\n\t\n" * 200) * (50 * MiB // (len(good) + 1400)), 9)
        ),
        "malformed lines, 50 MiB .gz": _write("malformed-50.jsonl.gz", lambda: gzip.compress(good + b"{x\n" * (50 * MiB // 3), 9)),
        "baseline: ordinary records, 30 MB JSONL": _write("ordinary-30.jsonl", lambda: ordinary_30),
        "one 30 MB record of 10M []": _write("lists-30.jsonl", lambda: b'{"messages": [' + b"[]," * 10_000_000 + b"[]]}\n"),
        "one 30 MB record of 3.75M {\"a\":1}": _write("dicts-30.jsonl", lambda: b'{"messages": [' + b'{"a":1},' * 3_750_000 + b"{}]}\n"),
        "30 MB of {} records (format errors)": _write("empty-objects-30.jsonl", lambda: good + b"{}\n" * 10_000_000),
        "one 30 MB record, one inline image (ok)": _write(
            "inline-30.jsonl",
            lambda: b'{"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "'
            + _png_b64(18_000_000)
            + b'"}}, {"text": "what is it?"}]}, {"role": "model", "parts": [{"text": "noise"}]}]}\n',
        ),
        "baseline: ordinary records, 30 MB JSON array": _write("ordinary-30.json", lambda: b"[" + b",\n".join(records) + b"]"),
        "a 30 MB JSON array of 10M []": _write("lists-30.json", lambda: b"[" + b"[]," * 10_000_000 + b"[]]"),
    }


def _child(path: str) -> None:
    """Validate one file in this (fresh) process and print what it cost, as JSON."""
    sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
    from tests.data.conftest import make_spec
    from tunespec.data import validate_data
    from tunespec.diagnostics import Diagnostics

    diagnostics = Diagnostics()
    modality = "image" if "inline" in path else "text"
    spec = make_spec(Path(path).parent, path, modality=modality, max_seq_length=1 << 20)
    start = time.perf_counter()
    report = validate_data(spec, None, None, diagnostics)
    seconds = time.perf_counter() - start
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(json.dumps({"seconds": seconds, "peak_mb": hwm / 1024, "examples": report.splits["train"].examples, "problems": report.problems}))


def measure(path: Path | str) -> dict:
    env = {**os.environ, "TUNESPEC_DATA_WORKERS": "1"}
    proc = subprocess.run([sys.executable, __file__, "--child", str(path)], capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    cases = files()
    cases["/proc/self/environ"] = "/proc/self/environ"  # type: ignore[assignment]
    cases["/dev/zero"] = "/dev/zero"  # type: ignore[assignment]
    print(f"{'case':44} {'size':>10} {'seconds':>8} {'peak MB':>8}  {'vs baseline':>16}  result")
    baseline = None
    for name, path in cases.items():
        size = os.path.getsize(path) if Path(path).is_file() and not str(path).startswith("/proc") else 0
        if str(path).endswith(".gz"):
            with gzip.open(path) as fp:
                size = sum(len(b) for b in iter(lambda: fp.read(8 * MiB), b""))
        r = measure(path)
        if name.startswith("baseline"):
            baseline = r
            ratio = ""
        elif baseline is not None and not name.startswith("/"):
            ratio = f"{r['seconds'] / baseline['seconds']:5.2f}x {r['peak_mb'] / baseline['peak_mb']:5.2f}x"
        else:
            ratio = ""
        result = f"{r['examples']:,} examples" + (f", {r['problems']}" if r["problems"] else "")
        print(f"{name:44} {size / MiB:8.1f}Mi {r['seconds']:8.2f} {r['peak_mb']:8.0f}  {ratio:>16}  {result}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(sys.argv[2])
    else:
        main()
