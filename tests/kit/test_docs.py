"""The hand-written docs stay in step with the code they describe."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunespec.cli.main import build_parser
from tunespec.testing import BackendConformance

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_cli_doc_covers_every_command_and_option():
    text = (DOCS / "cli.md").read_text()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        assert f"### `tunespec {name}" in text, f"docs/cli.md does not document `tunespec {name}`"
        for action in parser._actions:
            long = [o for o in action.option_strings if o.startswith("--") and o not in ("--help", "--output")]
            for option in long:
                assert option in text, f"docs/cli.md does not mention `tunespec {name} {option}`"


def test_plugins_doc_lists_every_conformance_test():
    text = (DOCS / "plugins.md").read_text()
    tests = [name.removeprefix("test_conformance_") for name in dir(BackendConformance) if name.startswith("test_conformance_")]
    missing = [t for t in tests if f"`{t}`" not in text]
    assert not missing, f"docs/plugins.md's conformance table lacks {missing}"
