"""tunespec's conformance kit against the kubeflow backend: the same contract the built-in
backends meet. The main run writes the manifest only (`submit: never`); the in-flight
cancel goes through kubectl to the fake cluster."""

from __future__ import annotations

import json

import pytest

from tunespec.testing import DELETE, SECRET_ENV, TRAIN_RECORDS, BackendConformance, ConformanceCase, InvalidCase

from conftest import install_fake_kubectl


class TestKubeflowConformance(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def conformance_case(cls, tmp_path_factory) -> ConformanceCase:
        outside = tmp_path_factory.mktemp("outside") / "train.jsonl"
        outside.write_text("".join(json.dumps(r) + "\n" for r in TRAIN_RECORDS))
        return ConformanceCase(
            backend="kubeflow",
            model="HuggingFaceTB/SmolLM2-135M-Instruct",
            options={
                "image": "registry.example.com/ml/tunespec:0.1",
                "submit": "never",
                "secret_env": {SECRET_ENV: {"secret": "conformance", "key": "token"}},
            },
            plugin_module="tunespec_kubeflow.plugin",
            env=install_fake_kubectl(tmp_path_factory.mktemp("kube")),
            in_flight_options={"submit": "always"},
            outputs=["pytorchjob.yaml"],
            failing={"backend": {"submit": "always", "namespace": "missing"}},  # the cluster refuses the job
            invalid=[
                InvalidCase("workers-without-a-shared-volume", {"backend": {"workers": 2}}, "TS313", "backend.workers"),
                InvalidCase("data-outside-project", {"data": {"train": [{"path": str(outside)}]}}, "TS303", "data.train[0].path"),
                InvalidCase("secret-not-passed", {"backend": {"secret_env": DELETE}}, "TS307", "backend"),
                InvalidCase("bad-namespace", {"backend": {"namespace": "Not_A_Namespace"}}, "TS11*", "backend.namespace"),
            ],
        )
