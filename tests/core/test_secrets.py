"""An interpolated `${env:...}` value never leaves the process: not in the state database,
not in any command's output (human or JSON, errors included), not in any file of a run."""

from __future__ import annotations

import shutil
from pathlib import Path

MARKERS = {
    "TS_SECRET_OUT": "out-marker-6b1f0c",
    "TS_SECRET_DATA": "data-marker-93ae2d",
    "TS_SECRET_TEXT": "text-marker-41c7e9",
}

SPEC = """\
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: secret-job
  description: token ${env:TS_SECRET_TEXT}
  labels:
    owner: ${env:TS_SECRET_TEXT}
model:
  base: base-${env:TS_SECRET_TEXT}
data:
  train: ${env:TS_SECRET_DATA}/train.jsonl
backend:
  name: echo
output:
  path: ${env:TS_SECRET_OUT}/runs
"""


def _leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [value for value in MARKERS.values() if value.encode() in data]


def test_no_command_stores_or_prints_an_interpolated_value(cli, project, monkeypatch, tmp_path):
    # The values are real folders: output under one, data under another.
    out_dir, data_dir = tmp_path / MARKERS["TS_SECRET_OUT"], tmp_path / MARKERS["TS_SECRET_DATA"]
    data_dir.mkdir()
    shutil.copy(project.root / "data" / "train.jsonl", data_dir / "train.jsonl")
    monkeypatch.setenv("TS_SECRET_OUT", str(out_dir))
    monkeypatch.setenv("TS_SECRET_DATA", str(data_dir))
    monkeypatch.setenv("TS_SECRET_TEXT", MARKERS["TS_SECRET_TEXT"])
    spec = project.root / "spec.yaml"
    spec.write_text(SPEC)
    monkeypatch.chdir(project.root)

    results = []
    for output in ("human", "json"):
        results += [cli(command, spec, "--output", output) for command in ("validate", "plan", "apply", "status")]
        results += [cli("runs", "--output", output), cli("cancel", "secret-job", "--output", output)]
    applied = cli("apply", spec, "--force", "--output", "json")
    run_dir = applied.json["runs"][0]["run_dir"]
    assert run_dir.startswith("${env:TS_SECRET_OUT}/runs/secret-job/"), "the run folder is shown as a reference"
    results += [applied, cli("verify", run_dir), cli("verify", run_dir, "--output", "json")]
    assert results[-1].code == 0, results[-1].text  # the reference resolves at use
    # a problem in the data is reported at the data file, named by its reference
    (data_dir / "train.jsonl").write_text('{"messages": [\n')
    broken = cli("validate", spec, "--output", "json")
    assert broken.code == 1 and "${env:TS_SECRET_DATA}/train.jsonl" in broken.out
    results += [broken, cli("validate", spec), cli("plan", spec), cli("apply", spec)]

    leaks = {" ".join(r.argv): _leaks(r.text) for r in results if _leaks(r.text)}
    assert not leaks, f"printed: {leaks}"
    for file in (*project.root.rglob("*"), *out_dir.rglob("*")):
        if file.is_file():
            assert not _leaks(file.read_bytes()), f"stored in {file}"
    published = [p for p in (out_dir / "runs" / "secret-job").iterdir() if not p.name.startswith(".")]
    assert len(published) == 2  # both runs really were written under the secret folder
    stored_spec = (published[0] / "spec.yaml").read_text()
    assert "${env:TS_SECRET_TEXT}" in stored_spec and "${env:TS_SECRET_OUT}/runs" in stored_spec


def test_a_default_is_not_a_secret(cli, project, monkeypatch):
    """`${env:X:-value}` whose default was used is text of the spec itself: shown as is."""
    monkeypatch.delenv("TS_UNSET_NAME", raising=False)
    spec = project.spec()
    spec.write_text(spec.read_text().replace("base: tiny-model", "base: ${env:TS_UNSET_NAME:-plain-default-model}"))
    shown = cli("plan", spec, "--output", "json")
    assert '"plain-default-model"' in shown.out


def test_an_internal_error_traceback_file_holds_no_secret(cli, project, monkeypatch, tmp_path):
    """The traceback tunespec saves for a bug is redacted like everything else."""
    import re

    monkeypatch.setenv("TS_SECRET_TEXT", MARKERS["TS_SECRET_TEXT"])
    monkeypatch.setenv("TUNESPEC_PLUGINS", "tests.core.echo_plugin,tests.core.crashing_plugin")
    from tunespec.plugins.host import reset_plugin_host

    reset_plugin_host()
    spec = project.spec()
    spec.write_text(spec.read_text().replace("name: echo", "name: crashing").replace("base: tiny-model", "base: ${env:TS_SECRET_TEXT}"))
    result = cli("plan", spec, "--output", "json", allow_internal_error=True)
    assert result.code == 1 and result.json["diagnostics"][0]["code"] == "TS004"
    log = Path(re.search(r"(\S+tunespec-error-\S+\.log)", result.json["diagnostics"][0]["hint"]).group(1))
    assert "RuntimeError" in log.read_text() and "${env:TS_SECRET_TEXT}" in log.read_text()
    assert not _leaks(log.read_text()) and not _leaks(result.text)
