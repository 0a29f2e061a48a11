"""tunespec.artifacts.gcs: a finalised run uploaded to gs:// (manifest last) and verified in
place, against gcp-storage-emulator with the real storage client."""

from __future__ import annotations

import pytest

from tunespec.artifacts import Manifest, RunDirectory
from tunespec.artifacts.gcs import upload_run, verify_gcs_run

pytestmark = pytest.mark.slow


@pytest.fixture
def finalised_run(tmp_path):
    run = RunDirectory(tmp_path / "runs", "demo", "run-1").create()
    (run.path / "request.json").write_text('{"baseModel": "gemini-2.5-flash"}\n')
    (run.path / "adapter").mkdir()
    (run.path / "adapter" / "weights.bin").write_bytes(bytes(range(256)) * 64)
    manifest = Manifest(
        run_id="run-1", spec_name="demo", fingerprint="f" * 64, backend="vertex", status="succeeded",
        started_at="2026-01-01T00:00:00Z", finished_at="2026-01-01T00:01:00Z", base_model="gemini-2.5-flash",
        method={"type": "peft"}, hyperparameters={"epochs": 1},
    )
    return run.finalize(manifest, "metadata: {name: demo}\n")


def test_upload_sends_the_manifest_last_and_the_run_verifies(gcs, finalised_run):
    order: list[str] = []
    uri = f"gs://{gcs.bucket}/runs/demo/run-1"
    upload_run(finalised_run, uri, client=gcs.client, on_file=lambda rel, size: order.append(rel))
    assert order[-1] == "manifest.json"
    assert sorted(order) == ["adapter/weights.bin", "manifest.json", "request.json", "spec.yaml"]
    manifest, problems = verify_gcs_run(uri, client=gcs.client)
    assert manifest is not None and manifest.run_id == "run-1"
    assert not list(problems)


def test_verify_reports_missing_changed_and_unlisted_objects(gcs, finalised_run):
    uri = f"gs://{gcs.bucket}/runs/demo/run-1"
    upload_run(finalised_run, uri, client=gcs.client)
    bucket = gcs.client.bucket(gcs.bucket)
    bucket.blob("runs/demo/run-1/adapter/weights.bin").delete()
    bucket.blob("runs/demo/run-1/request.json").upload_from_string(b'{"baseModel": "other"}\n')
    bucket.blob("runs/demo/run-1/stray.txt").upload_from_string(b"?")
    _, problems = verify_gcs_run(uri, client=gcs.client)
    found = {(d.code, d.location.file.rsplit("/", 1)[-1]) for d in problems}
    assert found == {("TS502", "weights.bin"), ("TS501", "request.json"), ("TS503", "stray.txt")}


def test_a_run_without_its_manifest_is_incomplete(gcs, finalised_run):
    bucket = gcs.client.bucket(gcs.bucket)
    bucket.blob("runs/demo/run-2/request.json").upload_from_filename(str(finalised_run / "request.json"))
    manifest, problems = verify_gcs_run(f"gs://{gcs.bucket}/runs/demo/run-2", client=gcs.client)
    assert manifest is None
    assert [d.code for d in problems] == ["TS500"]
