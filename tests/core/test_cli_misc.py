"""plugins, schema and init: what a user sees when exploring tunespec."""

from __future__ import annotations

import json

from tunespec.plugins.host import reset_plugin_host


def test_broken_plugin_is_listed_and_not_fatal(cli, project, monkeypatch):
    monkeypatch.setenv("TUNESPEC_PLUGINS", "tests.core.echo_plugin,tests.core.no_such_plugin_module")
    reset_plugin_host()
    listed = {p["name"]: p for p in cli("plugins", "--output", "json").json["plugins"]}
    broken = listed["tests.core.no_such_plugin_module"]
    assert broken["status"] == "broken" and "No module named" in broken["error"]
    assert listed["tests.core.echo_plugin"]["status"] == "ok"
    assert listed["tests.core.echo_plugin"]["registers"] == {"backends": ["echo"]}
    assert cli("validate", project.spec()).code == 0  # other commands still work


def test_unavailable_backend_validates_and_plans_but_apply_says_what_to_install(cli, project, monkeypatch):
    monkeypatch.setenv("TUNESPEC_PLUGINS", "tests.core.needy_plugin")
    reset_plugin_host()
    needy = next(p for p in cli("plugins", "--output", "json").json["plugins"] if p["name"] == "tests.core.needy_plugin")
    assert needy["status"] == "unavailable"
    assert needy["missing"] == ["tunespec_surely_missing_module"] and needy["install_hint"] == "pip install tunespec-surely-missing"
    spec = project.spec()
    spec.write_text(spec.read_text().replace("name: echo", "name: needy"))
    assert cli("plan", spec).code == 2
    applied = cli("apply", spec)
    assert applied.code == 1
    assert "TS300" in applied.err and "pip install tunespec-surely-missing" in applied.err


def test_disabled_plugin_is_reported_as_disabled(cli, project, monkeypatch):
    monkeypatch.setenv("TUNESPEC_DISABLE_PLUGINS", "tests.core.echo_plugin")
    reset_plugin_host()
    result = cli("validate", project.spec())
    assert result.code == 1
    assert "plugin 'tests.core.echo_plugin'" not in result.err  # the backend name differs from the plugin name
    assert "unknown backend 'echo'" in result.err


def test_schema_includes_each_backends_options(cli, tmp_path):
    out = tmp_path / "schema.json"
    assert cli("schema", "--write", out).code == 0
    schema = json.loads(out.read_text())
    variants = {v["properties"]["name"]["const"]: v for v in schema["properties"]["backend"]["oneOf"]}
    assert variants["echo"]["properties"]["outcome"]["enum"] == ["succeeded", "failed"]
    assert variants["echo"]["additionalProperties"] is False
    hyper = schema["$defs"]["Hyperparameters"]["properties"]
    assert hyper["epochs"]["description"] and hyper["epochs"]["minimum"] == 1


def test_init_writes_a_commented_spec_that_passes_the_schema(cli, tmp_path):
    path = tmp_path / "tunespec.yaml"
    assert cli("init", path, "--backend", "echo").code == 0
    text = path.read_text()
    assert text.count("#") > 10
    result = cli("validate", path, "--output", "json", "--state", tmp_path / "s.db")
    codes = {d["code"] for s in result.json["specs"] for d in s["diagnostics"]} | {d["code"] for d in result.json["diagnostics"]}
    assert codes == {"TS200"}  # only the data it points at is missing
    assert cli("init", path).code == 1  # never overwrites


def test_schema_accepts_the_shorthands_the_loader_accepts(cli, tmp_path):
    """What validates must not be flagged by an editor using `tunespec schema`."""
    jsonschema = __import__("pytest").importorskip("jsonschema")
    out = tmp_path / "schema.json"
    cli("schema", "--write", out)
    schema = json.loads(out.read_text())
    spec = {
        "apiVersion": "tunespec.dev/v1", "kind": "TuningJob", "metadata": {"name": "short"},
        "model": {"base": "m"}, "data": {"train": "a.jsonl", "validation": ["b.jsonl", {"path": "c.jsonl"}]},
        "method": "full", "backend": {"name": "echo"},
    }
    jsonschema.validate(spec, schema)
    spec["method"] = "qlora"
    with __import__("pytest").raises(jsonschema.ValidationError):
        jsonschema.validate(spec, schema)


def test_status_of_a_spec_whose_variable_is_unset_says_so(cli, project, monkeypatch):
    monkeypatch.delenv("TS_STATUS_UNSET", raising=False)
    spec = project.spec()
    spec.write_text(spec.read_text().replace("base: tiny-model", "base: ${env:TS_STATUS_UNSET}"))
    result = cli("status", spec)
    assert result.code == 1
    assert "TS106" in result.err and "TS_STATUS_UNSET" in result.err
    assert "no runs recorded" not in result.out


def test_status_of_a_folder_lists_only_the_specs_in_it(cli, project, monkeypatch):
    (project.root / "a").mkdir()
    (project.root / "b").mkdir()
    first = project.spec(name="spec-a", file="a/spec.yaml")
    second = project.spec(name="spec-b", file="b/spec.yaml")
    for folder in ("a", "b"):
        (project.root / folder / "data").symlink_to(project.root / "data")
    monkeypatch.chdir(project.root)
    state = project.root / ".tunespec" / "state.db"
    assert cli("apply", first, "--state", state).code == 0 and cli("apply", second, "--state", state).code == 0
    only_a = cli("status", project.root / "a", "--state", state, "--output", "json").json["runs"]
    assert [r["spec_name"] for r in only_a] == ["spec-a"]
    both = cli("status", "--state", state, "--output", "json").json["runs"]
    assert sorted(r["spec_name"] for r in both) == ["spec-a", "spec-b"]


def test_a_problem_in_no_file_names_what_it_concerns(cli, project, monkeypatch):
    monkeypatch.chdir(project.root)
    result = cli("cancel", "no-such-spec")
    assert result.code == 1
    assert result.err.startswith("cancel no-such-spec: error TS401")
    assert "<input>" not in result.err


def test_plugins_show_their_distribution_version_and_are_listed_once(cli, monkeypatch):
    from importlib.metadata import version

    monkeypatch.setenv("TUNESPEC_PLUGINS", "tests.core.echo_plugin,tunespec_kubeflow.plugin")
    reset_plugin_host()
    listed = cli("plugins", "--output", "json").json["plugins"]
    kubeflow = [p for p in listed if "kubeflow" in p["name"]]
    assert len(kubeflow) == 1 and kubeflow[0]["status"] == "ok"  # its entry point and the variable name one plugin
    assert kubeflow[0]["version"] == version("tunespec-kubeflow")
    echo = next(p for p in listed if p["name"] == "tests.core.echo_plugin")
    assert echo["version"] is None and "not packaged" in cli("plugins").out


def test_init_help_says_what_path_is_with_plugin(cli):
    import contextlib
    import io

    from tunespec.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), __import__("pytest").raises(SystemExit):
        main(["init", "--help"])
    assert "with --plugin, the folder" in " ".join(out.getvalue().split())
