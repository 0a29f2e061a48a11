"""The CUDA path: a spec applied on a GPU trains in bf16 autocast and publishes an adapter
that loads and runs anywhere, for text, images and audio. Skipped where no CUDA device is
present (CI, laptops)."""

from __future__ import annotations

import json

import pytest

from tests.local.conftest import PEFT
from tests.local.test_audio import audio_model, audio_spec  # noqa: F401 (fixtures)
from tests.local.test_multimodal import image_project, vision_model  # noqa: F401 (fixtures)

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


def applied_on_cuda(spec, cli):
    """Apply `spec` with `device: cuda`; the run folder, after checking what every CUDA run
    must show: bf16 where the GPU has it, finite losses that fall, and a run that verifies."""
    spec.write_text(spec.read_text().replace("device: cpu", "device: cuda"))
    code, output = cli("apply", spec, "--yes")
    assert code == 0, output
    [run] = [p for p in (spec.parent / "runs").glob("*/*") if not p.name.startswith(".")]
    manifest = json.loads((run / "manifest.json").read_text())
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    assert (manifest["metrics"]["device"], manifest["metrics"]["precision"]) == ("cuda", expected)
    losses = [json.loads(line)["train_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(loss == loss for loss in losses) and losses[-1] < losses[0]
    assert cli("verify", run)[0] == 0
    return run


def test_images_train_on_cuda_and_the_adapter_reloads_on_the_cpu(image_project, vision_model, cli):
    """LLaVA and Idefics3: media moved to the GPU with the batch, pixel values in the
    autocast dtype, base vs tuned evaluation generated on the GPU."""
    from peft import PeftModel
    from transformers import AutoModelForMultimodalLM

    run = applied_on_cuda(image_project(), cli)
    tuned = json.loads((run / "evaluation" / "tuned.json").read_text())
    assert len(tuned["outputs"]) == 6 and all(isinstance(o["output"], str) for o in tuned["outputs"])
    model = PeftModel.from_pretrained(AutoModelForMultimodalLM.from_pretrained(vision_model, dtype=torch.float32), run / "adapter")
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) > 0


@pytest.mark.parametrize("architecture", ["qwen2_5_vl", "gemma3", "smolvlm"])
def test_more_image_families_train_on_cuda(architecture, cli, tmp_path):
    """The families whose batches carry more than pixels: Qwen2.5-VL (its image grid and the
    image-token marks its 3-D positions come from), Gemma 3 (marks for its bidirectional image
    attention), SmolVLM (tiles)."""
    from tests.local.test_multimodal import COLORS, colors_project
    from tunespec.testing.tiny_multimodal import make_tiny_vision_model

    model = make_tiny_vision_model(tmp_path / "model", architecture, corpus=["Which color?", *COLORS])
    project = tmp_path / "project"
    project.mkdir()
    run = applied_on_cuda(colors_project(project, model)(), cli)
    assert len(json.loads((run / "evaluation" / "tuned.json").read_text())["outputs"]) == 6


def test_audio_trains_on_cuda(audio_spec, cli):
    """Qwen2-Audio (log-mel features) and OmniASR (raw waveform) on the GPU."""
    run = applied_on_cuda(audio_spec, cli)
    tuned = json.loads((run / "evaluation" / "tuned.json").read_text())
    assert [o["reference"] for o in tuned["outputs"]] == ["low", "high", "low", "high"]
