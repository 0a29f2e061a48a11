"""Hostile specs: how long and how much memory `tunespec` takes to refuse each one.

Specs arrive in pull requests, so each case below is what a hostile (or broken) contributor
could commit. Each runs `tunespec validate` (or `plan`) in a fresh process under
/usr/bin/time -v, next to a baseline measured in the same run: validating a normal spec.
Targets: every case refused with exit 1 and a located diagnostic, in well under 10 s and
under 500 MB peak RSS.

    .venv/bin/python bench/hostile_specs.py              # this checkout
    .venv/bin/python bench/hostile_specs.py --tree DIR   # another checkout (e.g. the code before)

The files are generated under a temporary folder (55 MB at most, sparse) and removed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = """\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: {name}
model:
  base: tiny-model
data:
  train: data/train.jsonl
backend:
  name: echo
"""
MIB = 1 << 20


def header(name: str = "bench") -> str:
    return HEADER.format(name=name)


def cases(folder: Path) -> list[tuple[str, str, list[str]]]:
    """(name, command, paths) for each case; files are written into `folder`."""

    def write(name: str, content: str | bytes) -> str:
        path = folder / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return str(path)

    big = folder / "huge-55mb.yaml"
    with open(big, "wb") as f:
        f.write(header().encode())
        line = ("# " + "x" * 77 + "\n").encode()
        f.write(line * (55 * MIB // len(line)))

    mixed = folder / "mixed"
    mixed.mkdir()
    shutil.copytree(folder / "data", mixed / "data")
    (mixed / "a-deep.yaml").write_text(header("deep") + "a: " + "[" * 10_000 + "]" * 10_000 + "\n")
    (mixed / "b-typo.yaml").write_text(header("typo") + "hyperparameters:\n  epoch: 2\n")

    # A 1 MB description repeated as 300 labels: a valid spec once expanded, so `plan` prints it.
    labels = "  labels: {" + ", ".join(f"l{i}: *big" for i in range(300)) + "}\n"
    alias = header().replace("  name: bench\n", '  name: bench\n  description: &big "' + "x" * 1_000_000 + '"\n' + labels)
    block = "".join("    " + "x" * 24_999 + "\n" for _ in range(40))  # 1 MB in 40 lines: under the line limits
    alias_block = header().replace("  name: bench\n", "  name: bench\n  description: &big |\n" + block + labels)
    nodes = header() + "a: [\n" + "".join("  " + "1, " * 1000 + "\n" for _ in range(30)) + "]\n"
    return [
        ("baseline: a valid spec", "validate", [write("valid.yaml", header() + "hyperparameters:\n  seed: 7\n")]),
        ("10,000-deep flow nesting", "validate", [write("deep.yaml", header() + "a: " + "[" * 10_000 + "]" * 10_000 + "\n")]),
        ("600-deep block mappings", "validate", [write("deep-block.yaml", header() + "".join(" " * i + "a:\n" for i in range(600)))]),
        ("NUL byte", "validate", [write("nul.yaml", header() + "x: a\x00b\n")]),
        ("UTF-16-LE, no BOM", "validate", [write("utf16.yaml", header().encode("utf-16-le"))]),
        ("UTF-32 with BOM", "validate", [write("utf32.yaml", header().encode("utf-32"))]),
        ("seed: !!int abc", "validate", [write("tag-int.yaml", header() + "hyperparameters:\n  seed: !!int abc\n")]),
        ("2024-13-45 (bad timestamp)", "validate", [write("date.yaml", header().replace("  name: bench\n", "  name: bench\n  labels:\n    at: 2024-13-45\n"))]),
        ("5,000-digit integer", "validate", [write("digits.yaml", header() + "hyperparameters:\n  seed: " + "9" * 5000 + "\n")]),
        ("seed: 10**32 (plan)", "plan", [write("seed.yaml", header() + "hyperparameters:\n  seed: 100000000000000000000000000000000\n")]),
        ("1 MB line aliased 300 times (plan)", "plan", [write("alias.yaml", alias)]),
        ("1 MB block aliased 300 times (plan)", "plan", [write("alias-block.yaml", alias_block)]),
        ("55 MB spec file", "validate", [str(big)]),
        ("1 MiB flow list on one line", "validate", [write("nodes-line.yaml", header() + "a: [" + "1," * ((MIB - 400) // 2) + "]\n")]),
        ("30,000-item list in 30 lines", "validate", [write("nodes.yaml", nodes)]),
        ("1 MiB of `--- {}` documents", "validate", [write("docs.yaml", header() + "--- {}\n" * ((MIB - 400) // 7))]),
        ("5,000 documents", "validate", [write("docs-5000.yaml", header() + "--- {}\n" * 5000)]),
        ("1 MiB line", "validate", [write("line.yaml", header() + "description: " + "x" * (MIB - 400) + "\n")]),
        ("1 MiB of blank lines", "validate", [write("lines.yaml", header() + "\n" * (MIB - 400))]),
        ("sexagesimal 1:1:...: int (16 KB)", "validate", [write("sexa.yaml", header() + "hyperparameters:\n  seed: " + ":".join(["1"] * 8000) + "\n")]),
        ("9,000 unknown keys (human output)", "validate-human", [write("keys.yaml", header() + "".join(f"k{i}: 1\n" for i in range(9000)))]),
        ("dir: hostile file + schema error", "validate", [str(mixed)]),
    ]


def measure(tree: Path, command: str, paths: list[str], state: Path, timeout: float) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'plugins'}",
        "TUNESPEC_PLUGINS": "tests.core.echo_plugin",
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    output = "human" if command.endswith("-human") else "json"
    command = command.removesuffix("-human")
    argv = ["/usr/bin/time", "-v", sys.executable, "-m", "tunespec.cli.main", command, *paths, "--output", output, "--state", str(state)]
    start = time.perf_counter()
    # its own process group, so a timeout stops tunespec too, not only /usr/bin/time
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace", env=env, cwd=tree, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"seconds": time.perf_counter() - start, "mb": None, "code": "timeout", "codes": [], "out_mb": 0.0}
    seconds = time.perf_counter() - start
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    code = re.search(r"Exit status: (\d+)", stderr)
    try:
        report = json.loads(stdout)
        found = report.get("diagnostics", []) + [d for s in report.get("specs", []) for d in s.get("diagnostics", [])]
        codes = [f"{d['code']} {d['location']['line']}:{d['location']['column']}" for d in found]
    except (json.JSONDecodeError, AttributeError, KeyError):
        codes = sorted(set(re.findall(r"\bTS\d{3}\b", stderr)))
    return {
        "seconds": seconds,
        "mb": int(peak.group(1)) / 1024 if peak else None,
        "code": int(code.group(1)) if code else proc.returncode,
        "codes": codes,
        "out_mb": len(stdout) / MIB,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="tunespec checkout to run (default: this one)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds before a case is stopped")
    args = parser.parse_args(argv)
    if not Path("/usr/bin/time").exists():
        print("needs /usr/bin/time (GNU time) for peak RSS", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="tunespec-hostile-") as tmp:
        folder = Path(tmp)
        shutil.copytree(ROOT / "tests" / "core" / "invalid_specs" / "data", folder / "data")
        rows = []
        for name, command, paths in cases(folder):
            result = measure(args.tree.resolve(), command, paths, folder / "state" / "state.db", args.timeout)
            rows.append((name, command, result))
            mb = f"{result['mb']:.0f}" if result["mb"] is not None else "?"
            shown = ", ".join(result["codes"][:3]) + (f" (+{len(result['codes']) - 3})" if len(result["codes"]) > 3 else "")
            printed = f"{result['out_mb']:7.1f} MB out"
            print(f"{name:38} {command:14} {result['seconds']:7.2f} s {mb:>6} MB peak {printed}  exit {result['code']}  {shown}", flush=True)
        base = rows[0][2]
        worst_s = max(r["seconds"] for _, _, r in rows[1:])
        worst_mb = max((r["mb"] or 0) for _, _, r in rows[1:])
        print(f"\nbaseline {base['seconds']:.2f} s, {base['mb']:.0f} MB; worst hostile case {worst_s:.2f} s "
              f"({worst_s / base['seconds']:.1f}x), {worst_mb:.0f} MB ({worst_mb / base['mb']:.1f}x)")
        failed = [n for n, _, r in rows[1:] if r["code"] != 1 or any(c.startswith(("TS004", "TS121")) for c in r["codes"])]
        if failed:
            print(f"not refused cleanly (exit 1, no TS004/TS121): {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
