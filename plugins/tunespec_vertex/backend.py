"""The `vertex` backend: a spec becomes one Vertex AI tuning job (supervised, or
preference tuning for `method.objective: preference`).

    validate/compile   compile.py builds the request body (no google imports)
    apply              stage data (staging.py), submit once (jobs.py), wait, report
    status/cancel      follow or stop the job named in the run record

Supervised jobs are created with google-cloud-aiplatform's GenAiTuningServiceClient.
Preference jobs are created with google-genai (`tunings.tune`, method PREFERENCE_TUNING):
aiplatform's v1beta1 TuningJob message has no `preferenceOptimizationSpec` yet, and genai
is Google's supported client for it. Both send the body `plan` printed; every job is then
followed, listed and cancelled with the same aiplatform client.

The plan's `job` is the exact request: `POST {endpoint}/v1beta1/{parent}/tuningJobs` with
`body`, the JSON the API receives. Apply changes only the two placeholders the plan shows
(the run id label and the staged dataset URIs) and converts the body with
`json_format.ParseDict`, so what `plan` printed is what the service gets.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Iterable

import orjson

from tunespec import Backend, Diagnostic, DiagnosticError, Location, Plan, ResolvedSpec, RunContext, RunResult, Severity

from tunespec_vertex import labels as L
from tunespec_vertex.compile import SPEC_KEYS, compile_job, load_catalog
from tunespec_vertex.config import VertexConfig

if TYPE_CHECKING:
    from tunespec.data import DataReport, DataRules
    from tunespec.state import RunRecord


class VertexBackend(Backend):
    name = "vertex"
    description = "Vertex AI managed tuning jobs (Gemini PEFT adapters; open models full or PEFT)"
    config_model = VertexConfig
    requires = ("google.cloud.aiplatform_v1beta1", "google.cloud.storage", "pypdf", "mutagen")
    install_hint = "pip install 'tunespec[vertex]'"
    remote = True

    # -- validate / compile: no google imports ------------------------------------------
    def data_rules(self, spec: ResolvedSpec) -> "DataRules | None":
        catalog = load_catalog(spec)
        if catalog is None:  # an invalid override: validate reports it; check with the built-in limits
            from tunespec_vertex.catalog import builtin_catalog

            catalog = builtin_catalog()
        rules = catalog.rules_for(spec.job.method.objective)
        config: VertexConfig = spec.config  # type: ignore[assignment]
        found = catalog.lookup(spec.job.model.base) or (catalog.lookup(config.pre_tuned_base_model) if config.pre_tuned_base_model else None)
        # Function-calling examples are the model's to accept: its catalog entry says. Gemini
        # reads PDFs itself: `data.documents` (pages as images or text, max_pages) does not
        # apply; tunespec_vertex.media checks Google's own page limit. The service has no
        # truncation setting: an example over `data.max_seq_length` trains whole (TS304).
        return rules.model_copy(update={"allow_function_calls": found[1].function_calling if found else None, "pdf_native": True,
                                        "long_examples": "kept"})

    def token_counter(self, spec: ResolvedSpec) -> None:
        return None  # Gemini's tokenizer is not available locally: token counts are estimates

    def validate(self, spec: ResolvedSpec, data: "DataReport | None") -> Iterable[Diagnostic]:
        # Warnings travel in the plan (compile), so that they are shown once; when there is
        # an error, compile does not run, and everything is returned here.
        compiled = compile_job(spec, data)
        diagnostics = compiled.diagnostics + self._data_checks(spec, data, compiled.entry) + self._split_sizes(spec, data)
        if data is not None and data.errors == 0 and spec.job.data.modality in ("audio", "document", "video"):
            diagnostics += self._media_lengths(spec)
        return diagnostics if any(d.is_error for d in diagnostics) else []

    # Google's dataset-size rules beyond a fixed count per split ("Prepare supervised
    # fine-tuning data"): multimodal training sets hold at most 300K examples, and above
    # 1,000 training examples the validation set is at most 30% of the training set.
    MAX_MULTIMODAL_TRAINING = 300_000
    VALIDATION_SHARE_ABOVE = 1_000
    VALIDATION_MAX_SHARE = 0.30

    def _split_sizes(self, spec: ResolvedSpec, data: "DataReport | None") -> list[Diagnostic]:
        if data is None or spec.job.method.objective != "sft":
            return []
        train = data.splits.get("train")
        val = data.splits.get("validation")
        out = []
        if train is not None and spec.job.data.modality != "text" and train.examples > self.MAX_MULTIMODAL_TRAINING:
            out.append(Diagnostic("TS216", f"{train.examples:,} multimodal training examples; Vertex takes at most "
                                  f"{self.MAX_MULTIMODAL_TRAINING:,}", spec.locate("data.train"), "use fewer examples"))
        if train is not None and val is not None and train.examples > self.VALIDATION_SHARE_ABOVE:
            limit = int(train.examples * self.VALIDATION_MAX_SHARE)
            if val.examples > limit:
                out.append(Diagnostic(
                    "TS216", f"{val.examples:,} validation examples for {train.examples:,} training examples; above "
                    f"{self.VALIDATION_SHARE_ABOVE:,} training examples Vertex takes a validation set of at most 30% of it ({limit:,})",
                    spec.locate("data.validation"), f"keep at most {limit:,} validation examples (move the rest to training)",
                ))
        return out

    @staticmethod
    def _media_lengths(spec: ResolvedSpec) -> list[Diagnostic]:
        """Audio and video durations, PDF page counts of local files (real readers)."""
        from tunespec.data import iter_conversations
        from tunespec_vertex.media import check_media

        # Only splits with local files: media referenced from Cloud Storage are the service's to judge.
        splits = [s for s in ("train", "validation") if any("://" not in src.path for src in getattr(spec.job.data, s) or [])]
        return check_media(spec, lambda split: iter_conversations(spec, split), splits)  # type: ignore[arg-type]

    def _data_checks(self, spec: ResolvedSpec, data: "DataReport | None", entry: Any) -> list[Diagnostic]:
        limit = entry.sequence_limit(spec.job.method.type) if entry is not None else None
        if data is None or not limit:
            return []
        out = []
        for split, stats in data.splits.items():
            if stats.tokens_max > limit:
                out.append(Diagnostic(
                    "TS215", f"{split} has examples of up to ~{stats.tokens_max:,} tokens; `{spec.job.model.base}` trains on "
                    f"{limit:,} tokens per sequence ({spec.job.method.type}), so the service truncates them",
                    spec.locate(f"data.{split}"), f"shorten or split the examples longer than {limit:,} tokens", Severity.WARNING,
                ))
        return out

    def compile(self, spec: ResolvedSpec, data: "DataReport | None") -> Plan:
        from tunespec_vertex.clients import Connection

        compiled = compile_job(spec, data)
        diagnostics = compiled.diagnostics + self._data_checks(spec, data, compiled.entry) + self._split_sizes(spec, data)
        errors = [d for d in diagnostics if d.is_error]
        if errors:
            raise DiagnosticError(errors)
        config: VertexConfig = spec.config  # type: ignore[assignment]
        conn = Connection.from_config(config)
        endpoint = conn.api_endpoint or f"https://{config.location}-aiplatform.googleapis.com"
        kind = "preference tuning (DPO)" if spec.job.method.objective == "preference" else "supervised tuning"
        summary: dict[str, Any] = {
            "job": f"Vertex AI {kind} of {spec.job.model.base} in {compiled.parent}",
            "method": spec.job.method.type,
            "wait": "apply waits for the job to finish" if config.wait else "apply returns once the job exists; `tunespec status` follows it",
        }
        if compiled.service_chooses:
            summary["service_chooses"] = ", ".join(compiled.service_chooses) + " (unset in the spec: the service's recommended values)"
        if spec.job.method.objective == "preference":
            summary["client"] = "google-genai tunings.tune(method=PREFERENCE_TUNING) sends this body"
        if compiled.staged_splits:
            records = "Gemini preference JSONL" if spec.job.method.objective == "preference" else "Gemini JSONL"
            summary["staging"] = f"{', '.join(compiled.staged_splits)} converted to {records} and uploaded to {config.staging_bucket}"
        if data is not None:
            est = "~" if data.tokens_estimated else ""
            summary["trained_tokens"] = f"{est}{data.trained_tokens:,} ({data.trained_tokens_basis})"
            val = data.splits.get("validation")
            epochs_known = "epochs" not in compiled.service_chooses
            if not epochs_known:
                summary["trained_tokens"] += f"; an estimate at {spec.job.hyperparameters.epochs} epochs: the service chooses the number"
            if val is not None and val.examples:
                # Google's estimator bills validation tokens too, once per epoch.
                billable = data.trained_tokens + val.tokens_total * spec.job.hyperparameters.epochs
                summary["billable_tokens"] = f"{est}{billable:,} (trained tokens + validation tokens x epochs)"
        return Plan(
            backend=self.name,
            spec_name=spec.name,
            summary=summary,
            job={
                "request": f"POST {endpoint.rstrip('/')}/v1beta1/{compiled.parent}/tuningJobs",
                "parent": compiled.parent,
                "body": compiled.body,
                # What apply and status need besides the body (no secrets: credentials come from ADC).
                "staged_splits": compiled.staged_splits,
                "connection": conn.to_json(),
                # For continued tuning: the catalog model under the tuned one (what a later run: spec continues from).
                "pre_tuned_base_model": compiled.base_id if "preTunedModel" in compiled.body else None,
                # The model's sequence limit, for hints about what the service truncated.
                "max_tokens_per_example": self._token_limit(spec, compiled.entry),
            },
            mappings=compiled.mappings,
            billable=True,
            warnings=[d.to_json() for d in diagnostics],
        )

    def _token_limit(self, spec: ResolvedSpec, entry: Any) -> int | None:
        limit = entry.sequence_limit(spec.job.method.type) if entry is not None else None
        rules = self.data_rules(spec)
        return limit or (rules.max_tokens_per_example if rules is not None else None)

    # -- apply / status / cancel: google clients, imported lazily ------------------------
    def apply(self, ctx: RunContext) -> RunResult:
        from tunespec_vertex import jobs
        from tunespec_vertex.clients import Connection, storage_client, tuning_client
        from tunespec_vertex.staging import Stager

        config: VertexConfig = ctx.spec.config  # type: ignore[assignment]
        conn = Connection.from_config(config)
        where = ctx.spec.locate("backend")
        client = tuning_client(conn, where)
        staging: dict[str, Any] = {}
        job = jobs.find_job(client, conn.parent, L.run_label_value(ctx.run_id), conn.timeout)
        if job is not None:  # an earlier attempt of this run created it: follow that one
            ctx.progress.log(f"resuming: this run's tuning job already exists: {job.name}")
        else:
            job = jobs.find_live_job(client, conn.parent, ctx.spec.fingerprint[: L.FINGERPRINT_CHARS], conn.timeout)
            if job is not None:
                ctx.progress.log(f"adopting {job.name}: a tuning job of this same spec and data is still "
                                 f"{jobs.state_name(job).removeprefix('JOB_STATE_').lower()} (run label {job.labels.get(L.RUN_LABEL)})")
        if job is None:
            body = self.request_body(ctx)
            if ctx.plan.job["staged_splits"]:
                limit = self.data_rules(ctx.spec).max_file_bytes  # type: ignore[union-attr]
                stager = Stager(storage_client(conn, where), config, ctx.spec, ctx.progress, limit)
                keys = {"train": "trainingDatasetUri", "validation": "validationDatasetUri"}
                spec_key = SPEC_KEYS[ctx.spec.job.method.objective]
                for split in ctx.plan.job["staged_splits"]:
                    body[spec_key][keys[split]] = stager.stage_split(split)
                staging = {"uploaded": len(stager.uploaded), "already_staged": len(stager.reused)}
            # The body as sent, with interpolated values kept as their ${env:...} references.
            (ctx.run_dir.path / "request.json").write_bytes(orjson.dumps(ctx.spec.redact(body), option=orjson.OPT_INDENT_2) + b"\n")
            if "preferenceOptimizationSpec" in body:  # google-genai sends it (see the module docstring)
                from tunespec_vertex.clients import genai_client

                create = jobs.genai_create(genai_client(conn, where), body)
                job, _ = jobs.submit(client, conn.parent, None, L.run_label_value(ctx.run_id), conn.timeout, create=create, log=ctx.progress.log)
            else:
                job, _ = jobs.submit(client, conn.parent, to_proto(body), L.run_label_value(ctx.run_id), conn.timeout,
                                     log=ctx.progress.log)
        if ctx.record_remote_id is not None:
            ctx.record_remote_id(job.name)
        ctx.progress.log(f"vertex tuning job: {job.name}")
        if not config.wait and jobs.state_name(job) not in jobs.TERMINAL:
            result = jobs.result_of(job)
            result.message = f"submitted {job.name}; follow it with `tunespec status`"
        else:
            try:
                job = jobs.wait_for(client, job.name, config.poll_interval, conn.timeout, ctx.progress)
            except DiagnosticError as exc:
                return self._lost_sight(job, exc, ctx)
            result = self._finished(job, ctx.progress, ctx.plan.job.get("max_tokens_per_example"))
        _describe_request(result, ctx.plan.job, ctx.run_dir.path)
        if staging:
            result.outputs["staging"] = staging  # objects uploaded now vs found already there
        return result

    @staticmethod
    def _lost_sight(job: Any, exc: DiagnosticError, ctx: RunContext) -> RunResult:
        """A poll failed (credentials expired, an outage longer than the retry window) while
        the job exists: the job is billed and goes on, so the run stays in flight with its
        job name. `status` keeps asking, `cancel` stops it, `apply` does not start another."""
        first = exc.diagnostics[0]
        ctx.progress.log(f"warning {first.code}: {first.message}")
        hint = f" ({first.hint})" if first.hint else ""
        return RunResult(status="running", remote_id=job.name, outputs={"tuning_job": job.name},  # type: ignore[arg-type]
                         message=f"{job.name} keeps running, but its status could not be read: {first.code} {first.message}{hint}; "
                         "`tunespec status` follows it, `tunespec cancel` stops it")

    def request_body(self, ctx: RunContext) -> dict[str, Any]:
        """The plan's body with this run's id in the run label."""
        body = copy.deepcopy(ctx.plan.job["body"])
        body["labels"][L.RUN_LABEL] = L.run_label_value(ctx.run_id)
        return body

    @staticmethod
    def _finished(job: Any, progress: Any = None, token_limit: int | None = None) -> RunResult:
        from tunespec_vertex import jobs

        result = jobs.result_of(job, token_limit)
        if progress is not None:
            for warning in result.outputs.get("warnings", []):
                progress.log(f"warning {warning['code']}: {warning['message']}")
        return result

    def status(self, run: "RunRecord") -> RunResult:
        """The job's current state. When the service cannot be asked (no credentials, no
        network, a missing environment variable), the run keeps its recorded status and
        the message says why: a status check never marks a run failed."""
        try:
            return self._status(run)
        except DiagnosticError as exc:
            first = exc.diagnostics[0]
            hint = f" ({first.hint})" if first.hint else ""
            return RunResult(status=run.status, remote_id=run.remote_id,  # type: ignore[arg-type]
                             message=f"status unknown: {first.code} {first.message}{hint}")

    def _status(self, run: "RunRecord") -> RunResult:
        from tunespec_vertex import jobs
        from tunespec_vertex.clients import expand_env, tuning_client

        conn = _connection(run)
        client = tuning_client(conn)
        if run.remote_id:
            job = jobs.get_job(client, expand_env(run.remote_id), conn.timeout)
        else:  # apply was interrupted before it recorded the job name
            job = jobs.find_job(client, conn.parent, L.run_label_value(run.run_id), conn.timeout)
            if job is None:
                return RunResult(status=run.status, message="no tuning job found for this run")  # type: ignore[arg-type]
        planned = (run.plan or {}).get("job", {})
        return _describe_request(self._finished(job, None, planned.get("max_tokens_per_example")), planned, run.where)

    def cancel(self, run: "RunRecord") -> RunResult:
        from tunespec_vertex import jobs
        from tunespec_vertex.clients import expand_env, tuning_client

        conn = _connection(run)
        client = tuning_client(conn)
        name = expand_env(run.remote_id) if run.remote_id else None
        if not name:
            found = jobs.find_job(client, conn.parent, L.run_label_value(run.run_id), conn.timeout)
            if found is None:
                return RunResult(status="cancelled", message="no tuning job was created for this run")
            name = found.name
        job = jobs.cancel_job(client, name, conn.timeout)
        result = self._finished(job)
        if result.status == "running":
            result.message = f"cancel requested for {name} (state {jobs.state_name(job).removeprefix('JOB_STATE_')})"
        return result

    # -- using a published run: the tuned endpoint answers (`tunespec predict`) -------------

    def predictor(self, run, options):
        from tunespec_vertex.predict import EndpointPredictor

        return EndpointPredictor(run, options)


def _describe_request(result: RunResult, job: dict[str, Any], run_folder: Any) -> RunResult:
    """What the request said that aiplatform's view of the job does not show: the datasets
    of a preference job (its spec is unknown to that client), and the catalog id the job
    tuned from, which a spec building on this run (`run:`) continues from. The request as
    sent is the run's request.json (staged dataset URIs filled in); else the plan's body."""
    from pathlib import Path

    from tunespec import secrets

    try:
        body = orjson.loads(secrets.expand((Path(run_folder) / "request.json").read_text())[0])
    except (OSError, ValueError):
        body = job.get("body") or {}
    spec = body.get("preferenceOptimizationSpec")
    if spec and not result.outputs.get("datasets"):
        result.outputs["datasets"] = {k: v for k, v in (("train", spec.get("trainingDatasetUri")), ("validation", spec.get("validationDatasetUri"))) if v}
    base = body.get("baseModel") or job.get("pre_tuned_base_model")
    if base:
        result.outputs["base_model"] = base
    return result


def to_proto(body: dict[str, Any]) -> Any:
    """The request body as the v1beta1 TuningJob message; an unknown field is an error."""
    from google.cloud.aiplatform_v1beta1.types import TuningJob
    from google.protobuf import json_format

    pb = TuningJob.pb()()
    json_format.ParseDict(body, pb, ignore_unknown_fields=False)
    return TuningJob.wrap(pb)


def _connection(run: "RunRecord") -> Any:
    """How to reach the run's job: the connection stored in its plan, with the project and
    location of the job's own name when it has one."""
    from tunespec_vertex.clients import ENV_REFERENCE, Connection

    plan = run.plan
    if isinstance(plan, (str, bytes)):
        plan = orjson.loads(plan)
    stored = (plan or {}).get("job", {}).get("connection", {})
    conn = Connection.for_job(run.remote_id, stored) if run.remote_id else Connection.from_json(stored)
    unresolved = ENV_REFERENCE.search(" ".join(str(v) for v in conn.to_json().values()))
    if unresolved:  # the spec took it from the environment, which this shell lacks
        raise DiagnosticError(Diagnostic(
            "TS106", f"environment variable {unresolved.group(1)} is not set; run {run.run_id} needs it to reach its job",
            Location(run.spec_file), "set the same environment variables as when the run was applied",
        ))
    return conn
