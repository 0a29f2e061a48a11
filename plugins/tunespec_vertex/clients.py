"""The Google clients the backend talks through, and how their errors become diagnostics.

Everything from google.* is imported inside these functions, so importing this module
costs nothing: only `apply`, `status` and `cancel` call them.

Connection settings come from the spec's backend block at apply time and from the plan
stored with the run for `status`/`cancel` (which run without the spec); the environment
variables TUNESPEC_VERTEX_API_ENDPOINT and TUNESPEC_VERTEX_ANONYMOUS override both, so a
test or a private-endpoint setup can point every command at the same service.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from typing import Any, Callable

from tunespec import Diagnostic, DiagnosticError, Location

from tunespec_vertex.config import ENV_ANONYMOUS, ENV_API_ENDPOINT, VertexConfig

ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

ADC_HINT = (
    "run `gcloud auth application-default login` (laptop), or set GOOGLE_APPLICATION_CREDENTIALS to a "
    "service-account key file (CI), or run where a service account is attached; see docs/vertex.md"
)


@dataclass(frozen=True)
class Connection:
    """Where the tuning service is and how to authenticate; stored in the plan (no secrets)."""

    project: str
    location: str
    api_endpoint: str | None = None
    anonymous: bool = False
    timeout: float = 60.0

    @classmethod
    def from_config(cls, config: VertexConfig) -> "Connection":
        return cls(config.project, config.location, config.api_endpoint, config.credentials == "anonymous", config.timeout)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Connection":
        """From a stored plan, where tunespec keeps interpolated values as `${env:...}`."""
        fields = {k: data[k] for k in ("project", "location", "api_endpoint", "anonymous", "timeout") if k in data}
        return cls(**{k: expand_env(v) if isinstance(v, str) else v for k, v in fields.items()})

    @classmethod
    def for_job(cls, job_name: str, stored: dict[str, Any]) -> "Connection":
        """The connection of an existing job: its project and location come from its name."""
        conn = cls.from_json(stored)
        parts = expand_env(job_name).split("/")
        if len(parts) >= 4 and parts[0] == "projects" and parts[2] == "locations":
            conn = cls(parts[1], parts[3], conn.api_endpoint, conn.anonymous, conn.timeout)
        return conn

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    @property
    def endpoint(self) -> str:
        return os.environ.get(ENV_API_ENDPOINT) or self.api_endpoint or f"{self.location}-aiplatform.googleapis.com"

    @property
    def use_anonymous(self) -> bool:
        return self.anonymous or os.environ.get(ENV_ANONYMOUS, "").lower() in ("1", "true", "yes")


def expand_env(text: str) -> str:
    """`${env:NAME}` / `${env:NAME:-default}` references (as stored by tunespec in place of
    interpolated values) expanded from the current environment."""
    return ENV_REFERENCE.sub(lambda m: os.environ.get(m.group(1), m.group(2) if m.group(2) is not None else m.group(0)), text)


def credentials(conn: Connection, where: Location | None = None) -> Any:
    """Application Default Credentials, or anonymous ones for an emulator. No credentials is
    a TS307 diagnostic, never a traceback."""
    if conn.use_anonymous:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except DefaultCredentialsError as exc:
        raise DiagnosticError(
            Diagnostic("TS307", f"no Google Cloud credentials found: {str(exc).splitlines()[0]}", where or Location(subject="Vertex AI"), ADC_HINT)
        ) from None
    return creds


def tuning_client(conn: Connection, where: Location | None = None) -> Any:
    """A v1beta1 GenAiTuningServiceClient over REST (the same transport in tests and in production)."""
    from google.api_core.client_options import ClientOptions
    from google.cloud.aiplatform_v1beta1 import GenAiTuningServiceClient

    return GenAiTuningServiceClient(
        credentials=credentials(conn, where),
        transport="rest",
        client_options=ClientOptions(api_endpoint=conn.endpoint),
    )


def genai_client(conn: Connection, where: Location | None = None) -> Any:
    """A google-genai client on Vertex AI (v1beta1 REST): the supported Google client that
    creates preference tuning jobs (`tunings.tune` with `method: PREFERENCE_TUNING`), which
    google-cloud-aiplatform's TuningJob message does not know yet. It never retries on its
    own (no `retry_options`): `jobs.submit` decides when a create may be tried again."""
    import warnings

    from google import genai
    from google.genai import types

    warnings.filterwarnings("ignore", message=".*tuning implementation is experimental.*")
    if conn.use_anonymous:
        # google-genai always sends a bearer token on Vertex; an emulator ignores it.
        from google.oauth2.credentials import Credentials

        creds: Any = Credentials(token="anonymous")
    else:
        creds = credentials(conn, where)
    endpoint = conn.endpoint if "://" in conn.endpoint else f"https://{conn.endpoint}"
    return genai.Client(vertexai=True, project=conn.project, location=conn.location, credentials=creds,
                        http_options=types.HttpOptions(base_url=endpoint, api_version="v1beta1", timeout=int(conn.timeout * 1000)))


def storage_client(conn: Connection, where: Location | None = None) -> Any:
    """A Cloud Storage client (STORAGE_EMULATOR_HOST, when set, points it at an emulator)."""
    from google.cloud import storage

    return storage.Client(project=conn.project, credentials=credentials(conn, where))


def transient(exc: BaseException) -> bool:
    """Worth retrying: the service was busy, or the request's fate is unknown (timeout,
    dropped connection). A create retried after such an error first looks for the job it
    may already have made."""
    import requests
    from google.api_core import exceptions as gexc
    from google.api_core.retry import if_transient_error

    if if_transient_error(exc):
        return True
    if _genai_error(exc) is not None:  # google-genai: an HTTP status, or httpx's network errors
        return _genai_error(exc) in (429, 500, 502, 503, 504)
    if type(exc).__module__.startswith("httpx") and isinstance(exc, Exception) and any(
            cls.__name__ in ("TransportError", "TimeoutException") for cls in type(exc).__mro__):
        return True
    return isinstance(exc, (gexc.DeadlineExceeded, gexc.GatewayTimeout, requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError))


def _genai_error(exc: BaseException) -> int | None:
    """The HTTP status of a google-genai APIError, else None."""
    try:
        from google.genai import errors
    except ImportError:
        return None
    return int(exc.code) if isinstance(exc, errors.APIError) else None


def retry_policy(deadline: float = 600.0, initial: float = 1.0, maximum: float = 30.0) -> Any:
    """Exponential backoff for idempotent calls (get, list, cancel, uploads)."""
    from google.api_core.retry import Retry

    return Retry(predicate=transient, initial=initial, maximum=maximum, multiplier=2.0, timeout=deadline)


def service_error(exc: BaseException, what: str, where: Location | None = None) -> DiagnosticError:
    """A permanent API error as a TS308 diagnostic (or TS307 for missing permission)."""
    from google.api_core import exceptions as gexc

    message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, (gexc.PermissionDenied, gexc.Unauthenticated)):
        return DiagnosticError(Diagnostic(
            "TS307", f"{what}: permission denied: {message}", where or Location(subject="Vertex AI"),
            "the credentials need roles/aiplatform.user on the project and storage access to the staging bucket",
        ))
    hint = None
    if isinstance(exc, gexc.NotFound):
        hint = "check `backend.project`, `backend.location` and the resource name"
    elif isinstance(exc, gexc.InvalidArgument):
        hint = "the service refused the request; `tunespec plan` shows the exact body sent"
    elif isinstance(exc, gexc.ResourceExhausted):
        hint = "quota exhausted (concurrent tuning jobs per project); retry later or request more quota"
    return DiagnosticError(Diagnostic("TS308", f"{what}: {type(exc).__name__}: {message}", where or Location(subject="Vertex AI"), hint))


def call(what: str, fn: Callable[[], Any], where: Location | None = None) -> Any:
    """Run one API call; a google, auth or network error becomes a diagnostic."""
    try:
        return fn()
    except DiagnosticError:
        raise
    except Exception as exc:
        problem = diagnose(exc, what, where)
        if problem is None:
            raise
        raise problem from None


def diagnose(exc: BaseException, what: str, where: Location | None = None) -> DiagnosticError | None:
    """The diagnostic for an error of a call to Google Cloud; None for anything else (a bug)."""
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import GoogleAuthError

    if isinstance(exc, gexc.GoogleAPIError):
        return service_error(exc, what, where)
    code = _genai_error(exc)
    if code is not None and not transient(exc):  # google-genai's errors, as the same diagnostics
        return service_error(gexc.from_http_status(code, getattr(exc, "message", None) or str(exc)), what, where)
    if isinstance(exc, GoogleAuthError):
        return DiagnosticError(Diagnostic("TS307", f"{what}: authentication failed: {exc}", where or Location(subject="Vertex AI"), ADC_HINT))
    if transient(exc):  # retries exhausted
        return DiagnosticError(Diagnostic(
            "TS308", f"{what}: the service did not answer ({type(exc).__name__}: {exc})", where or Location(subject="Vertex AI"),
            "check the network and `backend.api_endpoint`; re-running is safe (no duplicate job is created)",
        ))
    return None
