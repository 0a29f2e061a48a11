"""Using a tuned model the minute it exists: `tunespec predict` generates with a published
run (through its manifest and adapter), `tunespec export --to merged` writes a standalone
Hugging Face folder that transformers loads alone. Real training of a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def tuned_run(cli, project) -> Path:
    spec = project.spec(steps=4)
    code, output = cli("apply", spec)
    assert code == 0, output
    [run] = project.runs()
    return run


def test_predict_answers_as_the_runs_own_evaluation_did(cli, project, tuned_run, monkeypatch):
    """The validation file (OpenAI messages, with answers) as input: each line gets the tuned
    model's greedy answer, the same one the run's evaluation recorded for that prompt."""
    out = project.root / "predictions.jsonl"
    code, output = cli("predict", tuned_run, "--input", project.root / "validation.jsonl", "--out", out,
                       "--max-new-tokens", 6, "--batch-size", 4)
    assert code == 0, output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    validation = [json.loads(line) for line in (project.root / "validation.jsonl").read_text().splitlines()]
    assert len(lines) == len(validation) == 6
    assert [line["source"] for line in lines] == [f"{project.root / 'validation.jsonl'}:{i}" for i in range(1, 7)]
    assert [line["reference"] for line in lines] == [r["messages"][-1]["content"] for r in validation]
    assert lines[0]["messages"] == validation[0]["messages"][:-1] and lines[0]["run_id"] == tuned_run.name
    recorded = json.loads((tuned_run / "evaluation" / "tuned.json").read_text())["outputs"]
    assert [line["output"] for line in lines] == [r["output"] for r in recorded]

    # By spec name (its latest run, from the project's state database) and plain prompts,
    # one per line, on stdout.
    monkeypatch.chdir(project.root)
    prompts = project.root / "prompts.txt"
    prompts.write_text("My printer is on fire\n\nThe app crashes at login\n")
    code, output = cli("predict", "tiny-job", "--input", prompts, "--max-new-tokens", 3)
    assert code == 0, output
    plain = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert [p["messages"] for p in plain] == [[{"role": "user", "content": "My printer is on fire"}], [{"role": "user", "content": "The app crashes at login"}]]
    assert all(isinstance(p["output"], str) and "reference" not in p for p in plain)


def test_predict_reports_a_bad_input_line_before_loading_any_model(cli, project, tuned_run):
    bad = project.root / "bad.jsonl"
    good = (project.root / "validation.jsonl").read_text().splitlines()[0]
    bad.write_text(good + "\n{not json\n")
    code, output = cli("predict", tuned_run, "--input", bad, "--out", project.root / "p.jsonl")
    assert code == 1
    assert "bad.jsonl:2" in output and "TS201" in output
    assert not (project.root / "p.jsonl").exists()
    code, output = cli("predict", "no-such-run", "--input", bad)
    assert code == 1 and "TS401" in output


def test_export_merged_is_a_standalone_folder_transformers_loads(cli, project, tuned_run):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    code, output = cli("export", tuned_run, "--to", "merged")
    assert code == 0, output
    folder = tuned_run.parent / f"{tuned_run.name}-merged"
    assert (folder / "config.json").is_file() and (folder / "manifest.json").is_file()
    assert not (folder / "adapter_config.json").exists()  # merged weights, no adapter left
    # Both verify: the export against its own manifest, the run against its (now listing the export).
    code, output = cli("verify", tuned_run, folder)
    assert code == 0, output
    run_manifest = json.loads((tuned_run / "manifest.json").read_text())
    assert [(e["format"], e["path"]) for e in run_manifest["exports"]] == [("merged", folder.name)]
    export_manifest = json.loads((folder / "manifest.json").read_text())
    assert export_manifest["outputs"]["export"]["source_run_id"] == tuned_run.name

    # transformers alone: the merged model answers as the run's own evaluation did.
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    first = json.loads((project.root / "validation.jsonl").read_text().splitlines()[0])
    ids = tokenizer.apply_chat_template(first["messages"][:-1], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        generated = model.generate(**ids, max_new_tokens=6, do_sample=False)
    answer = tokenizer.decode(generated[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    recorded = json.loads((tuned_run / "evaluation" / "tuned.json").read_text())["outputs"][0]["output"]
    assert answer == recorded

    code, output = cli("export", tuned_run, "--to", "merged")
    assert code == 1 and "TS007" in output  # never overwritten silently
    assert cli("export", tuned_run, "--to", "merged", "--force")[0] == 0
