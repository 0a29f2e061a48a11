"""How long `tunespec validate` takes on a real spec, against `python -c pass`.

Target: under 0.3 s absolute on this machine with every built-in plugin installed.
Run: .venv/bin/python bench/cli_startup.py [SPEC]   (default: specs/vertex/text.yaml, whose
backend has no local tokenizer, and the quickstart spec).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = 15
# The Vertex example reads its project and bucket from the environment.
os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "tunespec-bench")
os.environ.setdefault("TUNESPEC_VERTEX_BUCKET", "gs://tunespec-bench-staging")


def timed(argv: list[str]) -> float:
    """Median wall time of `argv` over RUNS runs (after one warm-up run)."""
    subprocess.run(argv, capture_output=True, cwd=REPO)
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, cwd=REPO)
        samples.append(time.perf_counter() - start)
        if proc.returncode not in (0, 2):
            sys.exit(f"{' '.join(argv)} failed:\n{proc.stderr.decode()}")
    return statistics.median(samples)


def main() -> None:
    specs = sys.argv[1:] or [p for p in ("specs/vertex/text.yaml", "specs/quickstart") if (REPO / p).exists()]
    tunespec = str(Path(sys.executable).with_name("tunespec"))
    baseline = timed([sys.executable, "-c", "pass"])
    print(f"python -c pass: {baseline:.3f} s (median of {RUNS})")
    with tempfile.TemporaryDirectory() as state:
        for spec in specs:
            for command in ("validate", "plan"):
                wall = timed([tunespec, command, spec, "--state", f"{state}/state.db"])
                verdict = "OK" if wall < 0.3 else "OVER TARGET"
                print(f"tunespec {command} {spec}: {wall:.3f} s  = {wall / baseline:.1f}x python -c pass  "
                      f"(target < 0.300 s: {verdict})")


if __name__ == "__main__":
    main()
