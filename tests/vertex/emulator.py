"""A Vertex AI tuning-service emulator speaking the v1beta1 REST API the real client uses.

The real `GenAiTuningServiceClient` (transport="rest", anonymous credentials,
api_endpoint=http://127.0.0.1:PORT) talks to it:

    POST /v1beta1/{parent}/tuningJobs              create (body: TuningJob JSON)
    GET  /v1beta1/{parent}/tuningJobs              list (filter, pageSize, pageToken)
    GET  /v1beta1/{name}                           get
    POST /v1beta1/{name}:cancel                    cancel
    POST /v1beta1/{endpoint}:generateContent       a succeeded job's tuned endpoint answers

Every create body is parsed into `google.cloud.aiplatform_v1beta1.types.TuningJob` with
`json_format.Parse(..., ignore_unknown_fields=False)`; what does not parse (an unknown
field, a wrong type, an unknown enum) is a 400, as the real service answers. The installed
aiplatform's TuningJob predates preference tuning, which google-genai sends
(`preferenceOptimizationSpec`, in the same `tuning_spec` oneof as `supervisedTuningSpec`):
the emulator parses bodies into that TuningJob descriptor extended with the preference
messages as google-genai's types describe them (`PreferenceOptimizationSpec`,
`PreferenceOptimizationHyperParameters`), so a preference body is held to the same
strictness; beyond the schema it refuses what the service documents it cannot do (a base
model without preference tuning, an adapter size other than 1/2/4/8/16, a non-positive
beta, multiplier or epoch count). Jobs go through the states a real job does: created
PENDING, then QUEUED, RUNNING, and SUCCEEDED / FAILED (with a google.rpc.Status error) /
PARTIALLY_SUCCEEDED / EXPIRED, one step per `get`, so a test decides the outcome up front
(`outcome_for[display_name]`); a cancel moves a live job to CANCELLING, and the next `get`
to CANCELLED. Tests can also make the emulator accept a create
and drop the connection before answering (`drop_create_responses`) or answer after the
client gave up (`slow_create_responses`), answer 503 for a while (`unavailable`), answer
any call with 403/404/429/400 as Google words them (`failing`), enforce the concurrent
tuning-job quota (`concurrent_jobs_quota`), refuse label filters (`reject_label_filter`),
and read every request it received (`requests`).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from google.cloud.aiplatform_v1beta1.types import TuningJob
from google.protobuf import json_format

PARENT = r"projects/[^/]+/locations/[^/]+"
JOBS = re.compile(rf"^/v1beta1/({PARENT})/tuningJobs$")
JOB = re.compile(rf"^/v1beta1/({PARENT}/tuningJobs/[^/:]+)$")
CANCEL = re.compile(rf"^/v1beta1/({PARENT}/tuningJobs/[^/:]+):cancel$")
GENERATE = re.compile(rf"^/v1beta1/({PARENT}/endpoints/[^/:]+):generateContent$")
LABEL_FILTER = re.compile(r'^labels\.([a-z][a-z0-9_-]*)\s*=\s*"?([a-z0-9_-]*)"?$')
STATUS_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED",
                500: "INTERNAL", 503: "UNAVAILABLE"}
LIVE = ("JOB_STATE_PENDING", "JOB_STATE_QUEUED", "JOB_STATE_RUNNING", "JOB_STATE_CANCELLING")
PERMISSIONS = {"create": "create", "list": "list", "get": "get", "cancel": "cancel"}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class Failure:
    """How a job fails: the google.rpc.Status the service reports."""

    code: int = 3
    message: str = "Dataset validation failed: line 1: contents[0].role must be user or model"


@dataclass
class TuningEmulator:
    steps_to_finish: int = 2
    """Gets a job answers in RUNNING before it reaches its outcome."""
    default_outcome: str = "succeeded"
    outcome_for: dict[str, str] = field(default_factory=dict)
    """tunedModelDisplayName -> "succeeded" | "failed" | "partially_succeeded" | "expired"."""
    failure: Failure = field(default_factory=Failure)
    truncated: dict[str, list[int]] = field(default_factory=dict)
    """tunedModelDisplayName -> indices of examples the 'service' truncates (reported in stats)."""
    dropped: dict[str, list[str]] = field(default_factory=dict)
    """tunedModelDisplayName -> reasons of examples the 'service' drops (reported in stats)."""
    drop_create_responses: int = 0
    """Creates still to accept and then answer by dropping the connection."""
    slow_create_responses: int = 0
    """Creates still to accept and then answer only after `slow_seconds` (past the client's timeout)."""
    slow_seconds: float = 2.0
    unavailable: dict[str, int] = field(default_factory=dict)
    """Operation ("create", "list", "get", "cancel") -> how many more calls answer 503 first."""
    failing: dict[str, list[int]] = field(default_factory=dict)
    """Operation -> HTTP codes (403, 404, 429, 400) the next calls answer, in order, before
    serving again; the message is the one Google's service gives (`google_error`)."""
    concurrent_jobs_quota: int | None = None
    """When set, a create while this many jobs are live in the region is answered 429."""
    refuse_creates: str | None = None
    """When set, every create is answered 400 with this message (a permanent error)."""
    reject_label_filter: bool = False
    page_size: int = 2
    cancel_steps: int = 1
    """Gets a cancelled job answers in CANCELLING before it is CANCELLED."""
    exact_match_score: float = 0.75
    """The exact-match average a job with an `evaluationConfig` reports."""
    jobs: dict[str, TuningJob] = field(default_factory=dict)
    preference_specs: dict[str, dict] = field(default_factory=dict)
    """Job name -> the `preferenceOptimizationSpec` it was created with (JSON)."""
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1000)
        self._gets: dict[str, int] = {}
        self._cancel_gets: dict[str, int] = {}
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> "TuningEmulator":
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                emulator._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                emulator._handle(self, "POST")

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def creates(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and JOBS.match(r.path)]

    # -- HTTP ----------------------------------------------------------------------------
    def _handle(self, http: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(http.path)
        query = parse_qs(url.query)
        length = int(http.headers.get("Content-Length") or 0)
        raw = http.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append(Request(method, url.path, query, json.loads(raw) if raw else None))
            try:
                status, payload = self._route(method, url.path, query, raw)
            except _Drop:
                http.close_connection = True
                return  # no answer at all: the client sees the connection drop
            slow = isinstance(payload, dict) and payload.pop("_slow", False)
        if slow:  # outside the lock: the client's retry must be served meanwhile
            time.sleep(self.slow_seconds)
        data = json.dumps(payload).encode()
        try:
            http.send_response(status)
            http.send_header("Content-Type", "application/json")
            http.send_header("Content-Length", str(len(data)))
            http.end_headers()
            http.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test)

    def _route(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> tuple[int, Any]:
        operation = _operation(method, path)
        if self.unavailable.get(operation, 0) > 0:
            self.unavailable[operation] -= 1
            return _error(503, "The service is currently unavailable.")
        if self.failing.get(operation):
            return google_error(self.failing[operation].pop(0), operation, path.removeprefix("/v1beta1/").split(":")[0])
        if method == "POST" and (m := JOBS.match(path)):
            return self._create(m.group(1), raw)
        if method == "GET" and (m := JOBS.match(path)):
            return self._list(m.group(1), query)
        if method == "GET" and (m := JOB.match(path)):
            return self._get(m.group(1))
        if method == "POST" and (m := CANCEL.match(path)):
            return self._cancel(m.group(1))
        if method == "POST" and (m := GENERATE.match(path)):
            return self._generate(m.group(1), raw)
        return _error(404, f"no route for {method} {path}")

    # -- the API -------------------------------------------------------------------------
    def _create(self, parent: str, raw: bytes) -> tuple[int, Any]:
        extended = EXTENDED_TUNING_JOB()
        try:
            json_format.Parse(raw.decode() or "{}", extended, ignore_unknown_fields=False)
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            return _error(400, f"Invalid JSON payload received. {exc}")
        # The parsed message as JSON; the preference spec is kept aside, the rest is the
        # aiplatform TuningJob the emulator's state machine works on.
        parsed = json_format.MessageToDict(extended)
        preference = parsed.pop("preferenceOptimizationSpec", None)
        pb = TuningJob.pb()()
        json_format.ParseDict(parsed, pb)
        job = TuningJob.wrap(pb)
        problem = self.refuse_creates or _invalid(job, preference, parent.split("/")[3])
        if problem:
            return _error(400, problem)
        live = [j for n, j in self.jobs.items() if n.startswith(parent + "/") and j.state.name in LIVE]
        if self.concurrent_jobs_quota is not None and len(live) >= self.concurrent_jobs_quota:
            return google_error(429, "create", parent)
        job.name = f"{parent}/tuningJobs/{next(self._ids)}"
        if preference is not None:
            self.preference_specs[job.name] = preference
        job.state = "JOB_STATE_PENDING"
        self.jobs[job.name] = job
        self._gets[job.name] = 0
        if self.drop_create_responses > 0:
            self.drop_create_responses -= 1
            raise _Drop()
        if self.slow_create_responses > 0:
            self.slow_create_responses -= 1
            return 200, {**self._json(job), "_slow": True}
        return 200, self._json(job)

    def _list(self, parent: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        jobs = [j for name, j in self.jobs.items() if name.startswith(parent + "/")]
        flt = (query.get("filter") or [""])[0].strip()
        if flt:
            match = LABEL_FILTER.match(flt)
            if self.reject_label_filter or match is None:
                return _error(400, f"Unsupported filter: {flt}")
            key, value = match.groups()
            jobs = [j for j in jobs if j.labels.get(key) == value]
        size = int((query.get("pageSize") or [self.page_size])[0]) or self.page_size
        start = int((query.get("pageToken") or ["0"])[0] or 0)
        page = jobs[start : start + size]
        payload: dict[str, Any] = {"tuningJobs": [self._json(j) for j in page]}
        if start + size < len(jobs):
            payload["nextPageToken"] = str(start + size)
        return 200, payload

    def _get(self, name: str) -> tuple[int, Any]:
        job = self.jobs.get(name)
        if job is None:
            return _error(404, f"TuningJob {name} not found")
        self._advance(job)
        return 200, self._json(job)

    def _cancel(self, name: str) -> tuple[int, Any]:
        job = self.jobs.get(name)
        if job is None:
            return _error(404, f"TuningJob {name} not found")
        if job.state.name in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_QUEUED"):
            job.state = "JOB_STATE_CANCELLING"  # the service stops it asynchronously
        return 200, {}

    def _generate(self, endpoint: str, raw: bytes) -> tuple[int, Any]:
        """generateContent on a tuned endpoint: only one a succeeded job created answers, the
        body is held to the GenerateContentRequest message, and the answer is deterministic
        (`<endpoint id> says: <last user text, upper-cased>`), so tests can tell which
        endpoint answered which prompt."""
        from google.cloud.aiplatform_v1beta1.types import GenerateContentRequest

        if not any(j.tuned_model.endpoint == endpoint for j in self.jobs.values() if j.state.name == "JOB_STATE_SUCCEEDED"):
            return _error(404, f"Endpoint {endpoint} not found")
        request = GenerateContentRequest.pb()()
        try:
            json_format.Parse(raw.decode() or "{}", request, ignore_unknown_fields=False)
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            return _error(400, f"Invalid JSON payload received. {exc}")
        if not request.contents or request.contents[-1].role != "user":
            return _error(400, "contents must end with a user turn")
        text = " ".join(p.text for p in request.contents[-1].parts).upper()
        answer = f"{endpoint.rsplit('/', 1)[1]} says: {text}"
        if request.generation_config.max_output_tokens:
            answer = " ".join(answer.split()[: request.generation_config.max_output_tokens])
        return 200, {"candidates": [{"content": {"role": "model", "parts": [{"text": answer}]}, "finishReason": "STOP"}],
                     "usageMetadata": {"promptTokenCount": len(text.split()), "candidatesTokenCount": len(answer.split())}}

    def _json(self, job: TuningJob) -> Any:
        return _json(job, self.preference_specs.get(job.name))

    def _advance(self, job: TuningJob) -> None:
        state = job.state.name
        if state == "JOB_STATE_PENDING":
            job.state = "JOB_STATE_QUEUED"
            return
        if state == "JOB_STATE_QUEUED":
            job.state = "JOB_STATE_RUNNING"
            return
        if state == "JOB_STATE_CANCELLING":
            self._cancel_gets[job.name] = self._cancel_gets.get(job.name, 0) + 1
            if self._cancel_gets[job.name] >= self.cancel_steps:  # google.rpc.Code.CANCELLED, as the API reference says
                job.state = "JOB_STATE_CANCELLED"
                job.error = {"code": 1, "message": "CANCELED"}
            return
        if state != "JOB_STATE_RUNNING":
            return
        self._gets[job.name] += 1
        if self._gets[job.name] < self.steps_to_finish:
            return
        outcome = self.outcome_for.get(job.tuned_model_display_name, self.default_outcome)
        if outcome == "failed":
            job.state = "JOB_STATE_FAILED"
            job.error = {"code": self.failure.code, "message": self.failure.message}
            return
        if outcome == "expired":
            job.state = "JOB_STATE_EXPIRED"
            return
        model_id = job.name.rsplit("/", 1)[1]
        parent = job.name.split("/tuningJobs/")[0]
        preference = self.preference_specs.get(job.name)
        epochs = int((preference or {}).get("hyperParameters", {}).get("epochCount", 0)) or job.supervised_tuning_spec.hyper_parameters.epoch_count or 3
        job.tuned_model = {
            "model": f"{parent}/models/{model_id}@1",
            "endpoint": f"{parent}/endpoints/{model_id}",
            "checkpoints": [
                {"checkpoint_id": str(e), "epoch": e, "step": 10 * e, "endpoint": f"{parent}/endpoints/{model_id}"}
                for e in range(1, epochs + 1)
            ],
        }
        truncated = self.truncated.get(job.tuned_model_display_name, [])
        job.tuning_data_stats = {"supervised_tuning_data_stats": {
            "tuning_dataset_example_count": 3,
            "tuning_step_count": 10 * epochs,
            "total_billable_token_count": 1234,
            "total_truncated_example_count": len(truncated),
            "truncated_example_indices": truncated,
            "dropped_example_reasons": self.dropped.get(job.tuned_model_display_name, []),
        }}
        evaluation = job.supervised_tuning_spec.evaluation_config
        if evaluation.metrics:  # the Gen AI evaluation service scores the last checkpoint
            out = evaluation.output_config.gcs_destination.output_uri_prefix
            job.evaluate_dataset_runs = [{
                "operation_name": f"{parent}/operations/{model_id}", "checkpoint_id": str(epochs),
                "evaluate_dataset_response": {
                    "aggregation_output": {"aggregation_results": [
                        {"exact_match_metric_value": {"score": self.exact_match_score}, "aggregation_metric": "AVERAGE"}]},
                    "output_info": {"gcs_output_directory": f"{out}{model_id}"},
                },
            }]
        job.state = "JOB_STATE_PARTIALLY_SUCCEEDED" if outcome == "partially_succeeded" else "JOB_STATE_SUCCEEDED"


def _with_preference_spec() -> Any:
    """The v1beta1 TuningJob message class with `preference_optimization_spec` added to its
    `tuning_spec` oneof (field names and types from google-genai; numbers unused elsewhere)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    original = TuningJob.pb().DESCRIPTOR.file
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: Any) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        if file.name == original.name:
            _extend(proto)
        pool.Add(proto)
        added.add(file.name)

    add(original)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{original.package}.TuningJob"))


def _extend(proto: Any) -> None:
    from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F

    package = proto.package
    hp = proto.message_type.add(name="PreferenceOptimizationHyperParameters")
    hp.field.add(name="epoch_count", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL, json_name="epochCount")
    hp.field.add(name="learning_rate_multiplier", number=2, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL, json_name="learningRateMultiplier")
    hp.field.add(name="adapter_size", number=3, type=F.TYPE_ENUM, label=F.LABEL_OPTIONAL, json_name="adapterSize",
                 type_name=f".{package}.SupervisedHyperParameters.AdapterSize")
    hp.field.add(name="beta", number=4, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL, json_name="beta")
    spec = proto.message_type.add(name="PreferenceOptimizationSpec")
    spec.field.add(name="training_dataset_uri", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, json_name="trainingDatasetUri")
    spec.field.add(name="validation_dataset_uri", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, json_name="validationDatasetUri")
    spec.field.add(name="hyper_parameters", number=3, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL, json_name="hyperParameters",
                   type_name=f".{package}.PreferenceOptimizationHyperParameters")
    spec.field.add(name="export_last_checkpoint_only", number=4, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL, json_name="exportLastCheckpointOnly")
    job = next(m for m in proto.message_type if m.name == "TuningJob")
    oneof = next(i for i, o in enumerate(job.oneof_decl) if o.name == "tuning_spec")
    job.field.add(name="preference_optimization_spec", number=1000, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL, oneof_index=oneof,
                  json_name="preferenceOptimizationSpec", type_name=f".{package}.PreferenceOptimizationSpec")


EXTENDED_TUNING_JOB = _with_preference_spec()


def _operation(method: str, path: str) -> str:
    if JOBS.match(path):
        return "create" if method == "POST" else "list"
    return "cancel" if CANCEL.match(path) else "get"


class _Drop(Exception):
    """Raised inside a handler to answer by closing the connection."""


def _invalid(job: TuningJob, preference: dict | None = None, location: str = "us-central1") -> str | None:
    """The service's own checks beyond the schema (the few that tests rely on)."""
    if job.name or job.state:
        return "name and state are output only"
    if not job.base_model and not job.pre_tuned_model.tuned_model_name:
        return "one of base_model or pre_tuned_model is required"
    uri = preference.get("trainingDatasetUri", "") if preference is not None else job.supervised_tuning_spec.training_dataset_uri
    if not uri.startswith("gs://"):
        return f"training_dataset_uri must be a gs:// URI, got {uri!r}"
    if preference is not None:
        problem = _invalid_preference(job, preference)
        if problem:
            return problem
    for key, value in job.labels.items():
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key) or not re.fullmatch(r"[a-z0-9_-]{0,63}", value):
            return f"invalid label {key}={value}"
    return _against_google_tables(job, location, preference)


ADAPTER_SIZE = {"ADAPTER_SIZE_ONE": 1, "ADAPTER_SIZE_TWO": 2, "ADAPTER_SIZE_FOUR": 4, "ADAPTER_SIZE_EIGHT": 8,
                "ADAPTER_SIZE_SIXTEEN": 16, "ADAPTER_SIZE_THIRTY_TWO": 32}


def _against_google_tables(job: TuningJob, location: str, preference: dict | None) -> str | None:
    """The service's model rules, from Google's published tables (tests/vertex/google_tables.py,
    written down independently of the backend's catalog.yaml): retired models, regions,
    adapter sizes, open-model tuning modes. A model the tables do not know is let through
    (a catalog override may add one)."""
    from tests.vertex import google_tables as G

    base = job.base_model
    if not base:
        return None
    if any(base.startswith(retired.rsplit("-", 1)[0]) for retired in G.RETIRED):
        return f"Base model {base} is not supported for tuning."
    if base in G.GEMINI:
        table = G.GEMINI[base]
        if location not in table["regions"]:
            return f"Tuning {base} is not supported in {location}."
        size = job.supervised_tuning_spec.hyper_parameters.adapter_size.name
        if preference is None and size in ADAPTER_SIZE and ADAPTER_SIZE[size] not in table["adapter_sizes"]:
            return f"adapter size {ADAPTER_SIZE[size]} is not supported for {base}."
    if base in G.OPEN_MODELS:
        if location not in G.OPEN_MODEL_REGIONS:
            return f"Tuning {base} is not supported in {location}."
        mode = {"TUNING_MODE_FULL": "full", "TUNING_MODE_PEFT_ADAPTER": "peft"}.get(job.supervised_tuning_spec.tuning_mode.name)
        if mode is not None and mode not in G.OPEN_MODELS[base]["modes"]:
            return f"Tuning mode {job.supervised_tuning_spec.tuning_mode.name} is not supported for {base}."
        if not job.output_uri:
            return "output_uri is required for open model tuning."
    return None


PREFERENCE_MODELS = ("gemini-2.5-flash", "gemini-2.5-flash-lite")
"""Base models Google documents for preference tuning ("About preference tuning for Gemini models")."""
PREFERENCE_ADAPTER_SIZES = ("ADAPTER_SIZE_ONE", "ADAPTER_SIZE_TWO", "ADAPTER_SIZE_FOUR", "ADAPTER_SIZE_EIGHT", "ADAPTER_SIZE_SIXTEEN")
"""Adapter sizes 1, 2, 4, 8 and 16, the ones documented for preference tuning."""


def _invalid_preference(job: TuningJob, preference: dict) -> str | None:
    """The service's checks of a preference tuning request (values the proto lets through)."""
    if job.base_model and job.base_model.removeprefix("publishers/google/models/") not in PREFERENCE_MODELS:
        return f"base model {job.base_model} does not support preference tuning"
    validation = preference.get("validationDatasetUri")
    if validation is not None and not validation.startswith("gs://"):
        return f"validation_dataset_uri must be a gs:// URI, got {validation!r}"
    hp = preference.get("hyperParameters", {})
    if hp.get("adapterSize", "ADAPTER_SIZE_FOUR") not in PREFERENCE_ADAPTER_SIZES:
        return f"adapter size {hp['adapterSize']} is not supported for preference tuning"
    for name in ("beta", "learningRateMultiplier", "epochCount"):
        if name in hp and float(hp[name]) <= 0:
            return f"hyper_parameters.{name} must be positive, got {hp[name]}"
    return None


def _json(job: TuningJob, preference: dict | None = None) -> Any:
    body = json_format.MessageToDict(TuningJob.pb(job))
    return {**body, "preferenceOptimizationSpec": preference} if preference is not None else body


def google_error(code: int, operation: str, resource: str) -> tuple[int, Any]:
    """The error Google's service answers, worded as it words them (tests/vertex/google_tables.py)."""
    from tests.vertex.google_tables import ERROR_TEXT, QUOTA

    if code == 429:
        details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED", "domain": "googleapis.com",
                    "metadata": {"service": "aiplatform.googleapis.com", "quota_metric": QUOTA["metric"], "quota_limit": QUOTA["limit"],
                                 "consumer": "projects/123456789"}}]
        return code, {"error": {"code": code, "message": ERROR_TEXT[429].format(**QUOTA), "status": STATUS_NAMES[code], "details": details}}
    text = ERROR_TEXT[code].format(permission=f"aiplatform.tuningJobs.{PERMISSIONS[operation]}", resource=resource)
    return _error(code, text)


def _error(code: int, message: str) -> tuple[int, Any]:
    return code, {"error": {"code": code, "message": message, "status": STATUS_NAMES.get(code, "UNKNOWN")}}


if __name__ == "__main__":  # python -m tests.vertex.emulator: run it by hand
    running = TuningEmulator(steps_to_finish=3).start()
    print(f"tuning-service emulator at {running.endpoint} (Ctrl-C stops it)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        running.stop()
