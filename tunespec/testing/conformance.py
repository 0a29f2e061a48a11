"""The backend conformance kit: the contract every backend is tested against.

A backend plugin's test suite subclasses `BackendConformance` and overrides one fixture,
``conformance_case``, that says which backend to test and with what spec and environment::

    import pytest
    from tunespec.testing import BackendConformance, ConformanceCase, InvalidCase

    class TestMyBackend(BackendConformance):
        @pytest.fixture(scope="class")
        @classmethod
        def conformance_case(cls, tmp_path_factory):
            return ConformanceCase(
                backend="mybackend",
                model="my-base-model",
                options={"region": "eu"},
                invalid=[InvalidCase("unsupported-model", {"model": {"base": "nope"}}, "TS301", "model.base")],
            )

pytest then runs, against that backend, the same tests tunespec runs against its built-in
``local``, ``ray`` and ``vertex`` backends:

- the config model exports to JSON Schema, every option documented, and `tunespec schema`
  includes it (and accepts the valid spec, when ``jsonschema`` is installed);
- `tunespec validate` reports located diagnostics (code, file, line) for bad specs: the
  kit's own (an unknown option, a wrongly typed option) and the case's ``invalid`` ones;
- `validate` and `plan` import no heavy library (torch, ray, google.cloud, ...);
- compile is deterministic: the same spec gives the same plan and fingerprint;
- `apply` produces a run that passes `tunespec verify`; applying again is a no-op;
- `status` reports the run; `cancel` refuses a finished run (and, with
  ``in_flight_options``, cancels one in flight: the remote id is recorded before `apply`
  returns, and the cancelled run is published with its manifest);
- a run that fails (``failing``) is published with its manifest and error; the files a
  finished run publishes (``outputs``) are in it (a remote backend collected them);
- a secret given through ``${env:...}`` never reaches an artifact file, the state store,
  or the output of `validate`, `plan`, `apply` and `status`.

The spec is applied once per class (the expensive part), so the whole kit costs one run.
Set ``apply=False`` in the case to run only the cheap parts. The kit imports pytest; it is
not imported by tunespec's pytest plugin, only by test modules that use it.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tunespec.testing.cli import CliResult, run_cli

if int(pytest.__version__.split(".")[0]) < 9:  # class-scoped fixtures as classmethods need pytest 9
    raise ImportError(f"tunespec's conformance kit needs pytest 9 or newer (found {pytest.__version__})")

SECRET_ENV = "TUNESPEC_CONFORMANCE_SECRET"
"""The kit sets this variable to a fresh secret; the spec references it as ``${env:...}``."""

SECRET_REFERENCE = "${env:" + SECRET_ENV + "}"

HEAVY_MODULES = ("torch", "transformers", "peft", "ray", "google.cloud.aiplatform", "google.cloud.storage", "google.protobuf", "tensorflow", "jax")
"""Modules `validate` and `plan` must never import."""

DELETE = object()
"""Use as a value in `InvalidCase.change` to remove that key from the spec."""

TERMINAL = ("succeeded", "failed", "cancelled")

TRAIN_RECORDS: list[dict[str, Any]] = [
    {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
    for q, a in [
        ("Printer on floor 3 is jammed again.", '{"team": "it", "priority": "low"}'),
        ("I was charged twice for my subscription.", '{"team": "billing", "priority": "high"}'),
        ("The VPN drops every ten minutes.", '{"team": "it", "priority": "medium"}'),
        ("Please update my invoice address.", '{"team": "billing", "priority": "low"}'),
        ("Production database is down!", '{"team": "oncall", "priority": "urgent"}'),
        ("Can I get a refund for last month?", '{"team": "billing", "priority": "medium"}'),
        ("My laptop will not boot.", '{"team": "it", "priority": "high"}'),
        ("The status page shows an outage.", '{"team": "oncall", "priority": "high"}'),
    ]
]
"""The kit's default training data (OpenAI `messages` format). Pass its texts as the
tokenizer corpus when building a tiny model (see `tunespec.testing.make_tiny_model`)."""


def train_texts() -> list[str]:
    """Every message text of `TRAIN_RECORDS`, e.g. as a tokenizer corpus."""
    return [m["content"] for r in TRAIN_RECORDS for m in r["messages"]]


@dataclass
class InvalidCase:
    """A bad spec the backend must reject with a located diagnostic.

    id:     names the test case.
    change: deep-merged into the valid spec (``{"model": {"base": "nope"}}``); a value of
            `DELETE` removes that key.
    code:   the diagnostic code expected (e.g. ``TS301``; ``TS11*`` accepts any TS11x).
    path:   the spec field the diagnostic must point at (``model.base``): its file and line.
    """

    id: str
    change: dict[str, Any]
    code: str
    path: str


@dataclass
class ConformanceCase:
    """What the kit needs to test one backend."""

    backend: str
    """The backend's name, as written in `backend.name`."""
    model: str
    """`model.base` of the valid spec: a model this backend can tune."""
    options: dict[str, Any] = field(default_factory=dict)
    """The backend's own options in the valid spec's `backend` block."""
    spec: dict[str, Any] = field(default_factory=dict)
    """Deep-merged into the kit's default spec (e.g. ``{"hyperparameters": {"max_steps": 2}}``)."""
    train: list[dict[str, Any]] = field(default_factory=lambda: list(TRAIN_RECORDS))
    """Training records written to ``data/train.jsonl``."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment variables set while the kit runs (emulator addresses, credentials)."""
    plugin_module: str | None = None
    """Import path of the plugin module (``my_pkg.plugin``). Loaded through
    ``TUNESPEC_PLUGINS`` when the backend is not installed through its entry point yet."""
    invalid: list[InvalidCase] = field(default_factory=list)
    """Bad specs only this backend rejects (from `Backend.validate`). At least one."""
    apply: bool = True
    """False: run only the cheap parts (schema, validate, plan), not apply/status/cancel."""
    in_flight_options: dict[str, Any] | None = None
    """Options that make `apply` return a run still in flight (remote backends), so the kit
    can cancel it. None: only cancelling a finished run is tested."""
    outputs: list[str] = field(default_factory=list)
    """Files (run-folder relative paths) every finished run of the valid spec publishes,
    e.g. ``["adapter/adapter_config.json"]``. For a remote backend this checks that `status`
    collected the job's files into the published run."""
    failing: dict[str, Any] | None = None
    """A change to the valid spec (deep-merged) that makes its run fail, so the kit can check
    that a failed run is published with its manifest. None: not checked."""
    timeout: float = 300.0
    """Seconds to wait for a submitted run to finish (polling `tunespec status`)."""
    poll_interval: float = 0.5
    heavy_modules: tuple[str, ...] = HEAVY_MODULES


def default_spec(case: ConformanceCase) -> dict[str, Any]:
    """The valid spec the kit applies: small, with a secret in a free-text field and a label."""
    spec: dict[str, Any] = {
        "apiVersion": "tunespec.dev/v1",
        "kind": "TuningJob",
        "metadata": {
            "name": "conformance",
            "description": f"conformance run {SECRET_REFERENCE}",
            "labels": {"purpose": "conformance", "token": SECRET_REFERENCE},
        },
        "model": {"base": case.model},
        "data": {"train": [{"path": "data/train.jsonl"}], "max_seq_length": 128},
        "method": {"type": "peft", "lora": {"rank": 4, "alpha": 8, "dropout": 0.0}},
        "hyperparameters": {"epochs": 1, "batch_size": 4, "learning_rate": 0.001, "warmup_ratio": 0.0, "seed": 7},
        "evaluation": {"metrics": [], "compare_base": False, "validation_loss": False},
        "backend": {"name": case.backend, **case.options},
    }
    return merge(spec, case.spec)


def merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """`base` deep-merged with `change` (a new dict); `DELETE` values remove keys."""
    out = copy.deepcopy(base)
    for key, value in change.items():
        if value is DELETE:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class Project:
    """A folder holding the spec, its data, state (.tunespec/) and runs (runs/)."""

    root: Path
    case: ConformanceCase
    secret: str
    outputs: list[CliResult] = field(default_factory=list)

    @property
    def spec_file(self) -> Path:
        return self.root / "spec.yaml"

    @property
    def state_db(self) -> Path:
        return self.root / ".tunespec" / "state.db"

    def write_spec(self, spec: dict[str, Any], name: str = "spec.yaml") -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    def cli(self, *argv: Any) -> CliResult:
        """Run a CLI command and keep its output (scanned for the secret at the end)."""
        result = run_cli(*argv)
        self.outputs.append(result)
        return result


class BackendConformance:
    """Subclass it and override the ``conformance_case`` fixture (class- or session-scoped).

    Test names start with ``test_conformance_`` so a suite can select or skip them with
    ``-k conformance``; all carry the ``tunespec_conformance`` marker.
    """

    pytestmark = [pytest.mark.tunespec_conformance]

    # Fixtures ---------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_case(cls) -> ConformanceCase:
        raise NotImplementedError("override the `conformance_case` fixture (scope='class') to return a ConformanceCase")

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_project(cls, conformance_case: ConformanceCase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
        """The environment for the whole class: secret and case env set, plugin loaded,
        a project folder with the valid spec and its data."""
        from tunespec.plugins.host import LOAD_ENV, PluginHost, reset_plugin_host

        case = conformance_case
        secret = f"conformance-secret-{uuid.uuid4().hex[:16]}"
        root = tmp_path_factory.mktemp(f"conformance-{case.backend}")
        (root / "data").mkdir()
        (root / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in case.train))
        project = Project(root, case, secret)
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("TUNESPEC_STATE", raising=False)
            mp.setenv(SECRET_ENV, secret)
            for name, value in case.env.items():
                mp.setenv(name, value)
            if case.plugin_module and case.backend not in PluginHost().backends():
                loaded = [m for m in os.environ.get(LOAD_ENV, "").split(",") if m.strip()]
                mp.setenv(LOAD_ENV, ",".join([*loaded, case.plugin_module]))
            reset_plugin_host()
            project.write_spec(default_spec(case))
            try:
                yield project
            finally:
                reset_plugin_host()

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_run(cls, conformance_project: Project) -> dict[str, Any]:
        """Apply the valid spec once (waiting for a submitted run to finish) and return the
        finished run's record from `tunespec status`."""
        project = conformance_project
        if not project.case.apply:
            pytest.skip("this conformance case runs only the cheap checks (apply=False)")
        plan = project.cli("plan", project.spec_file, "--output", "json")
        assert plan.code == 2, f"plan of a new spec must report changes (exit 2), got {plan.code}:\n{plan.text}"
        fingerprint = plan.json["specs"][0]["fingerprint"]
        applied = project.cli("apply", project.spec_file, "--yes", "--output", "json")
        assert applied.code == 0, f"apply failed (exit {applied.code}):\n{applied.text}"
        outcome = applied.json["runs"][0]
        assert outcome["action"] in ("started", "submitted"), outcome
        run = _wait_for_run(project, outcome["run"]["run_id"])
        assert run["status"] == "succeeded", f"run ended {run['status']}: {run.get('message')}"
        return {"run": run, "fingerprint": fingerprint, "apply": outcome}

    # Schema -----------------------------------------------------------------------------

    def test_conformance_config_model_exports_json_schema(self, conformance_project: Project) -> None:
        backend = _backend(conformance_project.case.backend)
        schema = backend.config_model.model_json_schema()
        undocumented = sorted(_undocumented(schema))
        assert not undocumented, f"options without Field(description=...): {undocumented}"
        assert _forbids_extra(backend.config_model), "config_model must forbid unknown keys: model_config = ConfigDict(extra='forbid')"

        plugins = conformance_project.cli("plugins", "--output", "json").json["plugins"]
        owners = [p for p in plugins if backend.name in p["registers"].get("backends", [])]
        assert len(owners) == 1, f"exactly one plugin must register backend {backend.name!r}: {owners}"
        assert owners[0]["status"] == "ok", f"`tunespec plugins` shows it {owners[0]['status']}: {owners[0]['error'] or owners[0]['missing']}"

        shown = conformance_project.cli("schema")
        assert shown.code == 0
        full = shown.json
        variants = full["properties"]["backend"]["oneOf"]
        mine = [v for v in variants if v["properties"]["name"].get("const") == backend.name]
        assert len(mine) == 1, f"`tunespec schema` has no variant for backend {backend.name!r}"
        assert set(schema.get("properties", {})) <= set(mine[0]["properties"])
        jsonschema = pytest.importorskip("jsonschema")
        document = yaml.safe_load(conformance_project.spec_file.read_text())
        jsonschema.validate(document, full)  # the valid spec is valid for editors too

    # Validate ---------------------------------------------------------------------------

    def test_conformance_valid_spec_validates(self, conformance_project: Project) -> None:
        result = conformance_project.cli("validate", conformance_project.spec_file, "--output", "json")
        errors = [d for s in result.json["specs"] for d in s["diagnostics"] if d["severity"] == "error"]
        assert result.code == 0 and not errors, f"the case's valid spec does not validate:\n{result.text}"

    def test_conformance_unknown_option_is_located(self, conformance_project: Project) -> None:
        case = InvalidCase("unknown-option", {"backend": {"definitely_not_an_option": 1}}, "TS110", "backend.definitely_not_an_option")
        _assert_rejected(conformance_project, case)

    def test_conformance_wrongly_typed_option_is_located(self, conformance_project: Project) -> None:
        backend = _backend(conformance_project.case.backend)
        scalar = _scalar_option(backend.config_model)
        if scalar is None:
            pytest.skip("the config model has no scalar option to mistype")
        case = InvalidCase("wrong-type", {"backend": {scalar: {"not": "a scalar"}}}, "TS11*", f"backend.{scalar}")
        _assert_rejected(conformance_project, case)

    def test_conformance_backend_rejects_bad_specs(self, conformance_project: Project) -> None:
        cases = conformance_project.case.invalid
        assert cases, "give ConformanceCase.invalid at least one bad spec that Backend.validate rejects"
        failures = []
        for case in cases:
            try:
                _assert_rejected(conformance_project, case)
            except AssertionError as exc:
                failures.append(f"[{case.id}] {exc}")
        assert not failures, "\n\n".join(failures)

    def test_conformance_validate_and_plan_import_nothing_heavy(self, conformance_project: Project) -> None:
        from tunespec.plugins.host import DISABLE_ENV

        script = (
            "import json, sys\n"
            "from tunespec.cli.main import main\n"
            "codes = [main(['validate', sys.argv[1], '-o', 'json']), main(['plan', sys.argv[1], '-o', 'json'])]\n"
            "heavy = sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)\n"
            "print('\\nRESULT ' + json.dumps({'codes': codes, 'heavy': heavy}))\n"
        )
        # Only this backend's plugin is loaded, so another installed plugin's imports are not blamed on it.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), DISABLE_ENV: _other_plugins(conformance_project.case.backend)}
        proc = subprocess.run(
            [sys.executable, "-c", script, str(conformance_project.spec_file), json.dumps(conformance_project.case.heavy_modules)],
            capture_output=True, text=True, env=env, cwd=conformance_project.root, timeout=120,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        assert lines, f"validate/plan did not finish:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        result = json.loads(lines[-1].removeprefix("RESULT "))
        assert result["codes"][0] == 0 and result["codes"][1] in (0, 2), proc.stderr[-4000:]
        assert not result["heavy"], f"validate/plan imported {result['heavy']}: import them inside apply/status/cancel"

    # Compile ----------------------------------------------------------------------------

    def test_conformance_compile_is_deterministic(self, conformance_project: Project) -> None:
        from tunespec.plugins.host import reset_plugin_host

        first = conformance_project.cli("plan", conformance_project.spec_file, "--output", "json")
        reset_plugin_host()  # a fresh process would start from a fresh host
        second = conformance_project.cli("plan", conformance_project.spec_file, "--output", "json")
        assert first.code in (0, 2) and second.code in (0, 2), first.text + second.text
        a, b = first.json["specs"][0], second.json["specs"][0]
        assert a["plan"]["backend"] == conformance_project.case.backend
        assert a["plan"]["spec_name"] == "conformance"
        assert a["fingerprint"] == b["fingerprint"], "the same spec must give the same fingerprint"
        assert a["plan"] == b["plan"], "the same spec must compile to the same plan (no timestamps, random ids or set order in it)"

    def test_conformance_plan_changes_when_the_spec_changes(self, conformance_project: Project) -> None:
        """Every spec field reaches the job (honoured or mapped): changing `epochs` changes
        the compiled job, not only the fingerprint."""
        base = yaml.safe_load(conformance_project.spec_file.read_text())
        changed = conformance_project.write_spec(merge(base, {"hyperparameters": {"epochs": base["hyperparameters"]["epochs"] + 1}}), "changed.yaml")
        try:
            a = conformance_project.cli("plan", conformance_project.spec_file, "--output", "json").json["specs"][0]
            b = conformance_project.cli("plan", changed, "--output", "json").json["specs"][0]
        finally:
            changed.unlink()
        assert b["ok"], f"the spec with one more epoch does not plan: {b['diagnostics']}"
        assert a["fingerprint"] != b["fingerprint"], "a changed hyperparameter must change the fingerprint"
        assert a["plan"]["job"] != b["plan"]["job"], "`hyperparameters.epochs` changed but the compiled job did not: is it ignored?"

    # Apply, verify, re-apply ------------------------------------------------------------

    def test_conformance_apply_produces_a_verified_run(self, conformance_project: Project, conformance_run: dict[str, Any]) -> None:
        run = conformance_run["run"]
        run_dir = run["run_dir"]
        verified = conformance_project.cli("verify", run_dir, "--output", "json")
        assert verified.code == 0, f"`tunespec verify {run_dir}` failed:\n{verified.text}"
        if "://" not in run_dir:
            manifest = json.loads((Path(run_dir) / "manifest.json").read_text())
            assert manifest["backend"] == conformance_project.case.backend
            assert manifest["spec_name"] == "conformance" and manifest["run_id"] == run["run_id"]
            assert manifest["fingerprint"] == conformance_run["fingerprint"], "the run must carry the planned fingerprint"
            assert manifest["status"] == "succeeded"
            listed = {f["path"] for f in manifest["files"]}
            assert "spec.yaml" in listed
            missing = [path for path in conformance_project.case.outputs if path not in listed]
            assert not missing, f"the published run lacks {missing}: were the job's files collected into the run folder?"
            assert not list(Path(run_dir).parent.glob(".*.partial")), "a finished run leaves no staging folder"

    def test_conformance_reapply_is_a_noop(self, conformance_project: Project, conformance_run: dict[str, Any]) -> None:
        plan = conformance_project.cli("plan", conformance_project.spec_file, "--output", "json")
        assert plan.code == 0, f"plan after a successful apply must report no changes (exit 0):\n{plan.text}"
        assert plan.json["specs"][0]["change"]["action"] == "no-op"
        again = conformance_project.cli("apply", conformance_project.spec_file, "--yes", "--output", "json")
        assert again.code == 0
        outcome = again.json["runs"][0]
        assert outcome["action"] == "no-op" and outcome["run"]["run_id"] == conformance_run["run"]["run_id"]
        runs = conformance_project.cli("runs", "conformance", "--state", conformance_project.state_db, "--output", "json").json["runs"]
        assert len(runs) == 1, "re-applying an unchanged spec must not start a run"

    # Status and cancel ------------------------------------------------------------------

    def test_conformance_status_reports_the_run(self, conformance_project: Project, conformance_run: dict[str, Any]) -> None:
        shown = conformance_project.cli("status", conformance_project.spec_file, "--output", "json")
        assert shown.code == 0, shown.text
        [run] = shown.json["runs"]
        assert run["run_id"] == conformance_run["run"]["run_id"] and run["status"] == "succeeded"
        human = conformance_project.cli("status", conformance_project.spec_file)
        assert human.code == 0 and human.out.strip(), "human `status` prints a table of runs"

    def test_conformance_cancel_refuses_a_finished_run(self, conformance_project: Project, conformance_run: dict[str, Any]) -> None:
        refused = conformance_project.cli("cancel", "conformance", "--state", conformance_project.state_db)
        assert refused.code == 1 and "TS401" in refused.err, refused.text
        [run] = conformance_project.cli("status", conformance_project.spec_file, "--output", "json").json["runs"]
        assert run["status"] == "succeeded", "cancelling a finished run must not change it"

    def test_conformance_cancel_stops_a_run_in_flight(self, conformance_project: Project, conformance_run: dict[str, Any]) -> None:
        options = conformance_project.case.in_flight_options
        if options is None:
            pytest.skip("no in_flight_options: this backend's runs finish inside apply")
        spec = merge(yaml.safe_load(conformance_project.spec_file.read_text()), {"metadata": {"name": "conformance-cancel"}, "backend": options})
        path = conformance_project.write_spec(spec, "cancel.yaml")
        with _remote_id_checked(conformance_project) as recorded:
            applied = conformance_project.cli("apply", path, "--yes", "--output", "json")
        assert applied.code == 0, applied.text
        outcome = applied.json["runs"][0]
        assert outcome["action"] == "submitted", f"in_flight_options must leave the run in flight, got {outcome['action']}"
        assert recorded == [True], (
            "apply returned a run in flight without calling ctx.record_remote_id first: a crash between starting the job "
            "and returning would leave a job nobody can find, follow or cancel"
        )
        run_id = outcome["run"]["run_id"]
        cancelled = conformance_project.cli("cancel", run_id, "--state", conformance_project.state_db, "--output", "json")
        assert cancelled.code == 0, cancelled.text
        run = _wait_for_run(conformance_project, run_id, path)
        assert run["status"] == "cancelled", f"a cancelled run must end cancelled, got {run['status']}"
        _assert_published(conformance_project, run, "cancelled")

    def test_conformance_a_failed_run_is_published(self, conformance_project: Project) -> None:
        """A run that fails is a complete record like any other: its folder, its manifest
        with the error, verifiable."""
        change = conformance_project.case.failing
        if change is None or not conformance_project.case.apply:
            pytest.skip("no `failing` change in the case: a failed run is not checked")
        spec = merge(yaml.safe_load(conformance_project.spec_file.read_text()), merge({"metadata": {"name": "conformance-fail"}}, change))
        path = conformance_project.write_spec(spec, "fail.yaml")
        applied = conformance_project.cli("apply", path, "--yes", "--output", "json")
        outcome = applied.json["runs"][0]
        run = _wait_for_run(conformance_project, outcome["run"]["run_id"], path)
        assert run["status"] == "failed", f"the `failing` change must make the run fail, got {run['status']}"
        manifest = _assert_published(conformance_project, run, "failed")
        assert manifest.get("error"), "a failed run's manifest says why it failed (RunResult.error)"

    # Secrets ----------------------------------------------------------------------------

    def test_conformance_secrets_never_reach_artifacts_state_or_output(self, conformance_project: Project, request: pytest.FixtureRequest) -> None:
        project = conformance_project
        # With apply=False, the cheap half: validate/plan/status output and whatever they wrote.
        conformance_run = request.getfixturevalue("conformance_run") if project.case.apply else None
        secret = project.secret.encode()
        for command in (("validate",), ("plan",), ("plan", "--output", "json"), ("status",), ("status", "--output", "json")):
            project.cli(command[0], project.spec_file, *command[1:])
        leaks = [f"`tunespec {' '.join(r.argv)}` output" for r in project.outputs if project.secret in r.text]
        for file in sorted(p for p in project.root.rglob("*") if p.is_file()):
            if secret in file.read_bytes():
                leaks.append(str(file.relative_to(project.root)))
        assert not leaks, f"the secret from ${{env:{SECRET_ENV}}} leaked into: {leaks}"
        run_dir = conformance_run["run"]["run_dir"] if conformance_run else "://no run"
        if "://" not in run_dir:
            stored = yaml.safe_load((Path(run_dir) / "spec.yaml").read_text())
            assert stored["metadata"]["labels"]["token"] == SECRET_REFERENCE, "spec.yaml keeps the reference, not the value"


# Helpers -------------------------------------------------------------------------------


def _backend(name: str) -> Any:
    from tunespec.plugins.host import plugin_host

    host = plugin_host()
    backends = host.backends()
    if name not in backends:
        broken = [f"{p.name}: {p.status} {p.error or ''}" for p in host.plugins if p.status != "ok"]
        raise AssertionError(f"backend {name!r} is not registered; installed: {sorted(backends)}; problems: {broken}")
    return backends[name]


def _other_plugins(backend: str) -> str:
    """Names of the installed plugins other than the one providing `backend` (comma-separated)."""
    from tunespec.plugins.host import BUILTIN_MODULES, plugin_host

    plugins = plugin_host().plugins
    return ",".join(p.name for p in plugins if p.name not in BUILTIN_MODULES and backend not in p.registers.get("backends", []))


def _undocumented(schema: dict[str, Any]) -> Iterator[str]:
    """Options (in the model and its nested models) that have no description."""
    for prefix, node in [("", schema), *((f"{k}.", v) for k, v in schema.get("$defs", {}).items())]:
        for name, prop in node.get("properties", {}).items():
            if not prop.get("description"):
                yield prefix + name


def _forbids_extra(model: Any) -> bool:
    return model.model_config.get("extra") == "forbid"


def _scalar_option(model: Any) -> str | None:
    """The first option whose JSON type is a plain scalar (so a mapping is a type error)."""
    for name, prop in model.model_json_schema().get("properties", {}).items():
        types = {prop.get("type")} | {p.get("type") for p in prop.get("anyOf", [])}
        types.discard("null")
        if types and types <= {"string", "integer", "number", "boolean"} and "enum" not in prop and "const" not in prop:
            return model.model_fields[name].alias or name
    return None


def _assert_rejected(project: Project, case: InvalidCase) -> None:
    """Write the valid spec with `case.change`, validate it, and check the diagnostic."""
    from tunespec.spec.loader import load_documents

    spec = merge(yaml.safe_load(project.spec_file.read_text()), case.change)
    path = project.write_spec(spec, f"invalid-{case.id}.yaml")
    try:
        result = project.cli("validate", path, "--output", "json")
        human = project.cli("validate", path)
        documents, _ = load_documents(path)
    finally:
        path.unlink()
    assert result.code == 1, f"validate must exit 1 for a bad spec, got {result.code}:\n{result.text}"
    found = [d for s in result.json["specs"] for d in s["diagnostics"]] + result.json["diagnostics"]
    matching = [d for d in found if _code_matches(d["code"], case.code) and d["severity"] == "error"]
    assert matching, f"expected {case.code} at {case.path}; got {[(d['code'], d['message']) for d in found]}"
    keys = tuple(int(p) if p.isdigit() else p for p in case.path.replace("[", ".").replace("]", "").split(".") if p)
    doc = documents[0]
    lines = {pos[0] for pos in (doc.key_positions.get(keys), doc.positions.get(keys)) if pos}
    assert lines, f"{case.path} is not in the bad spec: fix InvalidCase.path"
    located = [d for d in matching if d["location"]["file"] == str(path) and d["location"]["line"] in lines]
    assert located, (
        f"{case.code} must point at {path.name}:{min(lines)} ({case.path}); got "
        f"{[(d['location']['file'], d['location']['line'], d['location']['path']) for d in matching]}"
    )
    assert all(d["message"] for d in located)
    assert case.code.rstrip("*") in human.err + human.out, "the human output names the code"


def _assert_published(project: Project, run: dict[str, Any], status: str) -> dict[str, Any]:
    """The run's folder exists, verifies, and its manifest says `status`; returns it."""
    run_dir = run["run_dir"]
    verified = project.cli("verify", run_dir, "--output", "json")
    assert verified.code == 0, f"a {status} run is published like any other, but `tunespec verify {run_dir}` failed:\n{verified.text}"
    if "://" in run_dir:
        return {}
    manifest = json.loads((Path(run_dir) / "manifest.json").read_text())
    assert manifest["status"] == status
    return manifest


class _remote_id_checked:
    """While active, each `apply` of the case's backend records whether the run's remote id
    was already in the state database when `apply` returned (True) or not (False)."""

    def __init__(self, project: Project):
        self.project = project
        self.recorded: list[bool] = []
        self.patch = pytest.MonkeyPatch()

    def __enter__(self) -> list[bool]:
        backend = _backend(self.project.case.backend)
        original = backend.apply

        def apply(ctx: Any) -> Any:
            result = original(ctx)
            if result.status in ("pending", "running"):
                from tunespec.state import StateStore

                store = StateStore(self.project.state_db, create=False)
                try:
                    run = store.get_run(ctx.run_id)
                    self.recorded.append(bool(run and run.remote_id))
                finally:
                    store.close()
            return result

        self.patch.setattr(backend, "apply", apply)
        return self.recorded

    def __exit__(self, *exc: Any) -> None:
        self.patch.undo()


def _code_matches(code: str, pattern: str) -> bool:
    return code.startswith(pattern[:-1]) if pattern.endswith("*") else code == pattern


def _wait_for_run(project: Project, run_id: str, spec_file: Path | None = None) -> dict[str, Any]:
    """Poll `tunespec status` until the run ends or the case's timeout passes."""
    deadline = time.monotonic() + project.case.timeout
    while True:
        shown = project.cli("status", spec_file or project.spec_file, "--output", "json")
        runs = [r for r in shown.json["runs"] if r["run_id"] == run_id]
        assert runs, f"`tunespec status` does not show run {run_id}:\n{shown.text}"
        if runs[0]["status"] in TERMINAL:
            return runs[0]
        assert time.monotonic() < deadline, f"run {run_id} still {runs[0]['status']} after {project.case.timeout}s"
        time.sleep(project.case.poll_interval)
