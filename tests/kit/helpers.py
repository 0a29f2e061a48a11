"""Run a pytest suite in a subprocess and read back which tests passed or failed."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path


def run_pytest(folder: Path, *args: str, pythonpath: list[Path] = (), env: dict[str, str] | None = None, timeout: int = 300) -> tuple[dict[str, str], str]:
    """Run pytest in `folder` (its own rootdir); return {test name: outcome} and the output."""
    report = Path(tempfile.mkdtemp(prefix="tunespec-kit-")) / "report.xml"  # never inside the tested folder
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    environment.pop("TUNESPEC_PLUGINS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *args],
        cwd=folder, env=environment, capture_output=True, text=True, timeout=timeout,
    )
    outcomes = {}
    if report.exists():
        for case in ET.parse(report).iter("testcase"):
            kinds = {child.tag for child in case}
            outcome = "failed" if kinds & {"failure", "error"} else "skipped" if "skipped" in kinds else "passed"
            outcomes[case.get("name")] = outcome
    return outcomes, proc.stdout + proc.stderr
