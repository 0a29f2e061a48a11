"""A local run whose model, model cache and output folders come from `${env:...}`: no file
of the run (library-written ones included: peft's adapter_config.json and README.md record
the base model's path), no state and no output holds any of those values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

MARKERS = {"TS_MODEL_DIR": "model-marker-a81c", "TS_CACHE": "cache-marker-5d2e", "TS_OUT": "out-marker-c09b"}


def test_a_local_run_keeps_every_interpolated_path_out_of_its_files(project, cli, tmp_path, monkeypatch):
    from tunespec.testing import write_tiny_gguf

    folders = {name: tmp_path / value for name, value in MARKERS.items()}
    for folder in folders.values():
        folder.mkdir()
    write_tiny_gguf(Path(project.spec().read_text().split("base: ")[1].splitlines()[0]), folders["TS_MODEL_DIR"] / "tiny.gguf")
    for name, folder in folders.items():
        monkeypatch.setenv(name, str(folder))
    spec = project.spec(model="${env:TS_MODEL_DIR}/tiny.gguf", backend_extra="  cache_dir: ${env:TS_CACHE}\noutput:\n  path: ${env:TS_OUT}/runs\n")
    monkeypatch.chdir(project.root)

    outputs = [cli("validate", spec), cli("plan", spec, "--output", "json"), cli("apply", spec, "--yes")]
    assert outputs[-1][0] == 0, outputs[-1][1]
    outputs += [cli("runs"), cli("status", spec, "--output", "json")]
    [run] = [p for p in (folders["TS_OUT"] / "runs" / "tiny-job").iterdir() if not p.name.startswith(".")]
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert any(folders["TS_CACHE"].iterdir()), "the model really was converted into the interpolated cache folder"

    def leaks(data: bytes) -> list[str]:
        return [value for value in MARKERS.values() if value.encode() in data]

    printed = [leaks(text.encode()) for _, text in outputs]
    assert not any(printed), printed
    for file in (*run.rglob("*"), *project.root.rglob("*")):
        if file.is_file() and not file.is_relative_to(folders["TS_CACHE"]):
            assert not leaks(file.read_bytes()), f"{file} holds an interpolated value"
    recorded = json.loads((run / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert recorded.startswith("${env:TS_CACHE}"), recorded
    # the published run still verifies after the scrub: its checksums are of what is stored
    assert cli("verify", run)[0] == 0
    shutil.rmtree(folders["TS_CACHE"])
