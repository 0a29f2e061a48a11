"""Reaching a Ray cluster: start an embedded one for a run, or connect to an existing one,
with Ray's own log noise turned down unless the user asked to see it.

Imports Ray inside functions only: this module is used by `apply` and by `validate` when a
cluster address is given, never on the default `validate`/`plan` path.
"""

from __future__ import annotations

import logging
import os
import socket
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import urlparse

from tunespec import Diagnostic, DiagnosticError, Location

# Loggers that print on the driver during start-up and training even when nothing is wrong.
NOISY_LOGGERS = ("ray", "ray.train", "ray.data", "ray.tune", "ray.util", "ray._private")
AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def quiet_environment(env: dict[str, str]) -> None:
    """Set Ray's log environment variables for this process (and the raylets and workers it
    starts) without overriding what the user set."""
    for key, value in env.items():
        os.environ.setdefault(key, value)


def quiet_loggers(verbose: bool) -> None:
    if verbose:
        return
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def verbose_requested(config_verbose: bool) -> bool:
    return config_verbose or os.environ.get("TUNESPEC_VERBOSE", "") not in ("", "0", "false")


@contextmanager
def connected(cluster: dict[str, Any], where: Location | None = None) -> Iterator[None]:
    """Connect to (or start) the cluster a compiled job names; on exit, shut an embedded
    cluster down and disconnect from an existing one. If this process is already connected
    (a test session, a notebook), reuse that connection and leave it open."""
    import ray

    verbose = cluster["init"].get("log_to_driver", False)
    quiet_environment(cluster.get("env", {}))
    if not verbose:
        # A new local cluster enables token auth by default and warns about it on every start.
        logging.getLogger(AUTH_LOGGER).setLevel(logging.ERROR)
    if ray.is_initialized():
        yield
        return
    init = dict(cluster["init"])
    init["logging_level"] = getattr(logging, init.get("logging_level", "ERROR"))
    with python_signal_handlers_kept():
        try:
            ray.init(**init)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            address = None if cluster["mode"] == "embedded" else init.get("address")
            raise DiagnosticError(unreachable(address, exc, where)) from None
    quiet_loggers(verbose)
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def python_signal_handlers_kept() -> Iterator[None]:
    """ray.init installs Ray's C++ handler for SIGTERM, which aborts the process. The CLI's
    own (SIGTERM stops a run as Ctrl-C does, so `tunespec cancel` and CI time-outs end in a
    recorded, published run) is put back afterwards."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if callable(previous):
            signal.signal(signal.SIGTERM, previous)


def unreachable(address: str | None, exc: BaseException, where: Location | None = None) -> Diagnostic:
    what = f"cannot reach the Ray cluster at {address}" if address else "cannot start the embedded Ray cluster"
    return Diagnostic(
        "TS309",
        f"{what}: {exc}".splitlines()[0],
        where or Location(path="backend.address"),
        hint="start it (`ray start --head`), check the address and port (Ray Client listens on 10001), "
        "or remove `address` to run on an embedded local cluster",
    )


def port_open(address: str, timeout: float = 3.0) -> bool:
    """Cheap reachability probe for `ray://host:port` and `http://host:port` before Ray tries
    (and retries for a long time) to connect."""
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    if not parsed.hostname:
        return False
    port = parsed.port or (10001 if parsed.scheme == "ray" else 8265)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False
