"""Generating with a Vertex run's tuned model: its endpoint (the manifest's
`outputs.endpoint`), called with google-genai's `generate_content`, the prompts of a batch
sent concurrently. Read only through the artifact contract: the manifest and spec.yaml
(the connection: project, location, endpoint override, credentials)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import yaml

from tunespec import Diagnostic, DiagnosticError, Location, PredictOptions, Predictor, PublishedRun
from tunespec_vertex.clients import Connection, call, expand_env, genai_client


def run_connection(run: PublishedRun, endpoint: str) -> Connection:
    """The connection the run's spec used (spec.yaml's backend block), in the endpoint's
    own project and location."""
    try:
        stored = yaml.safe_load((run.run_dir / "spec.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        stored = {}
    backend = stored.get("backend") or {}
    fields = {"project": backend.get("project", ""), "location": backend.get("location", ""), "api_endpoint": backend.get("api_endpoint"),
              "anonymous": backend.get("credentials") == "anonymous", "timeout": backend.get("timeout", 60.0)}
    return Connection.for_job(endpoint, fields)


class EndpointPredictor(Predictor):
    def __init__(self, run: PublishedRun, options: PredictOptions):
        endpoint = run.manifest.outputs.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            raise DiagnosticError(Diagnostic("TS407", f"run {run.run_id} has no tuned endpoint in its manifest (outputs.endpoint)",
                                             Location(str(run.run_dir)), "only a succeeded Vertex tuning job has one"))
        self.endpoint = expand_env(endpoint)
        self.options = options
        conn = run_connection(run, self.endpoint)
        self.client = genai_client(conn, Location(str(run.run_dir)))
        self.pool = ThreadPoolExecutor(max_workers=max(1, min(options.batch_size, 16)))

    def generate(self, prompts: list[list[dict[str, str]]]) -> list[str]:
        return list(self.pool.map(self._one, prompts))

    def _one(self, messages: list[dict[str, str]]) -> str:
        from google.genai import types

        system = "\n".join(m["content"] for m in messages if m["role"] == "system") or None
        contents = [types.Content(role="model" if m["role"] == "assistant" else "user", parts=[types.Part(text=m["content"])])
                    for m in messages if m["role"] != "system"]
        config = types.GenerateContentConfig(system_instruction=system, max_output_tokens=self.options.max_new_tokens,
                                             temperature=self.options.temperature)
        response: Any = call(f"generate with {self.endpoint}", lambda: self.client.models.generate_content(model=self.endpoint, contents=contents, config=config))
        return response.text or ""

    def close(self) -> None:
        self.pool.shutdown(wait=True)
