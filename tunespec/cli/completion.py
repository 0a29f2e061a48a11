"""Shell completion (bash, zsh, fish) through argcomplete: commands, options, spec files and
folders, run ids and spec names from the project's state database.

The shell asks by running `tunespec` with argcomplete's environment set (`_ARGCOMPLETE`);
`hook` answers then and exits, before anything else runs, so completing costs only the
parser. `tunespec completion SHELL` prints the script to source, made by argcomplete.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

SHELLS = ("bash", "zsh", "fish")


def hook(parser: "argparse.ArgumentParser") -> None:
    """Answer a completion request and exit, when this process is one (else do nothing)."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    argcomplete.autocomplete(parser)


def spec_paths() -> Any:
    """Spec files (*.yaml, *.yml) and folders."""
    from argcomplete.completers import FilesCompleter

    return FilesCompleter(allowednames=("yaml", "yml"), directories=True)


def run_folders() -> Any:
    from argcomplete.completers import DirectoriesCompleter

    return DirectoriesCompleter()


def runs_and_specs(prefix: str, parsed_args: "argparse.Namespace", **_: Any) -> list[str]:
    """Run ids and spec names recorded in the state database (never created here); run
    folders as well where the argument may be one."""
    from tunespec.pipeline import state_for

    try:
        state = state_for([], getattr(parsed_args, "state", None), create=False)
        records = state.runs(limit=1000) if state is not None else []
    except Exception:  # noqa: BLE001 - a completion never shows a traceback in the shell
        return []
    names = {r.spec_name for r in records} | {r.run_id for r in records}
    return sorted(n for n in names if n.startswith(prefix))


def spec_names(prefix: str, parsed_args: "argparse.Namespace", **_: Any) -> list[str]:
    from tunespec.pipeline import state_for

    try:
        state = state_for([], getattr(parsed_args, "state", None), create=False)
        records = state.runs(limit=1000) if state is not None else []
    except Exception:  # noqa: BLE001
        return []
    return sorted({r.spec_name for r in records if r.spec_name.startswith(prefix)})


def script(shell: str) -> str:
    """The completion script for `shell`, registering `tunespec` (argcomplete's own)."""
    import argcomplete

    return argcomplete.shellcode(["tunespec"], shell=shell)
