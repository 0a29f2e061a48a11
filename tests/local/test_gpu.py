"""The CUDA path: a spec applied on a GPU trains in bf16 autocast and publishes an adapter
that loads and runs anywhere. Skipped where no CUDA device is present (CI, laptops)."""

from __future__ import annotations

import json

import pytest

from tests.local.conftest import PEFT

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_lora_run_on_cuda_in_bf16_reloads_on_the_cpu(project, cli):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    spec = project.spec(method=PEFT, steps=6)
    spec.write_text(spec.read_text().replace("device: cpu", "device: cuda"))
    code, output = cli("apply", spec, "--yes")
    assert code == 0, output
    [run] = project.runs()
    manifest = json.loads((run / "manifest.json").read_text())
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    assert (manifest["metrics"]["device"], manifest["metrics"]["precision"]) == ("cuda", expected)
    losses = [json.loads(line)["train_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(loss == loss for loss in losses) and losses[-1] < losses[0]  # finite, and it learned

    base_path = json.loads((run / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"]
    ids = torch.tensor([[1, 5, 9, 13, 17]])
    on_cpu = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path), run / "adapter").eval()
    on_gpu = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path), run / "adapter").cuda().eval()
    with torch.no_grad():
        assert torch.allclose(on_cpu(ids).logits, on_gpu(ids.cuda()).logits.cpu(), atol=1e-3)
    assert cli("verify", run)[0] == 0
