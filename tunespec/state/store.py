"""An embedded SQLite store of runs and data hashes: one per project, `.tunespec/state.db`.

It answers the question `apply` asks before starting anything: has this exact job (same
fingerprint) already succeeded, is it running right now, was it interrupted (resume it),
or is it new? `claim` answers and records the answer in one write transaction, so two
concurrent `apply` of one spec start one run.

Where it is (`find_state_path`): the nearest `.tunespec/` folder from the specs' folder
upwards, not past the top of the git work tree; when there is none, a new one is made at
the top of the git work tree, or beside the first spec outside git. Only `apply` (and
`cancel` of a run it must publish) creates or writes it; read-only commands open an
existing one or work without it.

It is never silently wrong: a truncated, garbage or half-written file is detected on
opening (SQLite's header, `PRAGMA quick_check`, tunespec's own `meta` table) and named as
a TS402 diagnostic with the path and what to do; `apply` keeps a copy of the last good
database as `state.db.bak`. Every text it stores passes through `tunespec.secrets.redact`
and is `expand`ed again on reading, so `${env:...}` values are never on disk.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Literal

from tunespec import secrets
from tunespec.diagnostics import Diagnostic, DiagnosticError, Location

STATE_DIR = ".tunespec"
STATE_FILE = "state.db"
BACKUP_SUFFIX = ".bak"
SCHEMA_VERSION = 2
SQLITE_HEADER = b"SQLite format 3\x00"

# A run is in flight while one of these; `cancelling` is a local run whose owner was
# asked to stop and has not yet published it as cancelled.
IN_FLIGHT = ("pending", "running", "interrupted", "cancelling")
FINISHED = ("succeeded", "failed", "cancelled")
# Columns that may hold a path or name built from an interpolated value. tunespec needs
# the first two itself; a remote id is the backend's to resolve (it says what is missing).
RESOLVED_AT_USE = ("output_root", "run_dir", "remote_id")
NEEDED_PATHS = ("output_root", "run_dir")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id        TEXT PRIMARY KEY,
    spec_name     TEXT NOT NULL,
    spec_file     TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    backend       TEXT NOT NULL,
    status        TEXT NOT NULL,
    remote_id     TEXT,
    output_root   TEXT NOT NULL,
    run_dir       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    owner_host    TEXT,
    owner_pid     INTEGER,
    owner_started TEXT,
    message       TEXT,
    spec          TEXT,
    plan          TEXT,
    data          TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_spec ON runs (spec_name, created_at);
CREATE TABLE IF NOT EXISTS file_hashes (
    path     TEXT PRIMARY KEY,
    inode    INTEGER,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER,
    ctime_ns INTEGER,
    sha256   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS token_counts (
    key    TEXT PRIMARY KEY,
    counts BLOB NOT NULL
);
"""

# Schema 1 (user_version 0, written by tunespec 0.1 before this one) had no meta table,
# no owner_started, and a file_hashes cache keyed on (path, size, mtime) only, which could
# go stale: opening one migrates it in place.


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# Processes ------------------------------------------------------------------------------


def process_started(pid: int) -> str | None:
    """When process `pid` started (its start time in clock ticks since boot, from
    /proc), or None where that cannot be read. With the pid it names one process even after
    the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def this_process() -> tuple[str, int, str | None]:
    return socket.gethostname(), os.getpid(), process_started(os.getpid())


# Records --------------------------------------------------------------------------------


@dataclass
class RunRecord:
    """One run as the state database records it: what `Backend.status` and
    `Backend.cancel` receive, and what `tunespec runs` lists."""

    run_id: str
    """`<UTC time>-<fingerprint[:8]>-<random>`; names the run's folder."""
    spec_name: str
    """`metadata.name` of the spec it ran."""
    spec_file: str
    """The spec file it was applied from."""
    fingerprint: str
    """sha256 of the resolved spec, interpolated values, data content and backend options."""
    backend: str
    """The backend's name."""
    status: str
    """`pending`, `running`, `interrupted`, `cancelling` (in flight) or `succeeded`, `failed`, `cancelled`."""
    remote_id: str | None
    """What `RunContext.record_remote_id` (or `RunResult.remote_id`) recorded: the remote job's id."""
    output_root: str
    """`output.path`, resolved (a local folder or `gs://...`)."""
    run_dir: str
    """Where the run is published, `<output_root>/<spec_name>/<run_id>`; while it is in
    flight its files are in `staging_dir` (see `where`)."""
    created_at: str
    """ISO 8601 UTC."""
    updated_at: str
    """ISO 8601 UTC."""
    owner_host: str | None
    """The host of the process driving a local run."""
    owner_pid: int | None
    """That process (None once the run is finished)."""
    owner_started: str | None
    """That process's start time, so a reused pid is not taken for it."""
    message: str | None
    """The last message the backend gave (`RunResult.message`)."""
    spec: dict[str, Any] | None
    """The resolved spec as applied, `${env:...}` references kept."""
    plan: dict[str, Any] | None
    """The compiled `Plan`, as JSON (`plan["job"]` is what `compile` returned)."""
    data: dict[str, Any] | None
    """The data report, as JSON."""
    unresolved: list[str] = field(default_factory=list)
    """Environment variables its stored paths reference that are not set now."""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "RunRecord":
        values = dict(row)
        for key in ("spec", "plan", "data"):
            values[key] = json.loads(values[key]) if values[key] else None
        unresolved: list[str] = []
        for key in RESOLVED_AT_USE:
            if values[key]:
                values[key], missing = secrets.expand(values[key])
                if key in NEEDED_PATHS:
                    unresolved += missing
        return cls(**values, unresolved=sorted(set(unresolved)))

    @property
    def finished(self) -> bool:
        """True once the run succeeded, failed or was cancelled (it is published)."""
        return self.status in FINISHED

    @property
    def local_owner(self) -> bool:
        return self.owner_pid is not None and self.owner_host == socket.gethostname()

    @property
    def owner_alive(self) -> bool:
        """True while the process that runs this locally is still alive on this host (the
        same process: a reused pid has another start time)."""
        if not self.local_owner or not pid_alive(self.owner_pid):  # type: ignore[arg-type]
            return False
        return self.owner_started is None or process_started(self.owner_pid) in (None, self.owner_started)  # type: ignore[arg-type]

    @property
    def staging_dir(self) -> str:
        """The hidden folder the run is written into before it is published."""
        if "://" in self.run_dir:
            return self.run_dir  # remote outputs are staged beside the state database
        final = Path(self.run_dir)
        return str(final.with_name(f".{final.name}.partial"))

    @property
    def where(self) -> str:
        """The run's folder as it exists now: the published folder once it finished, the
        staging folder while it is in flight."""
        return self.run_dir if self.finished else self.staging_dir

    def require_resolved(self) -> None:
        """Raise TS106 when a stored path references a variable that is not set now."""
        if self.unresolved:
            names = ", ".join(self.unresolved)
            raise DiagnosticError(Diagnostic(
                "TS106", f"run {self.run_id} of {self.spec_name} is stored under ${{env:...}} references to {names}, which are not set",
                Location(self.spec_file), f"export {names} as when the run was applied",
            ))

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("spec", "plan", "unresolved")}
        out["where"] = self.where
        return out


@dataclass
class Claim:
    """What `apply` should do for a spec: start a new run, resume one, or nothing."""

    action: Literal["create", "resume", "noop", "in_flight"]
    run: RunRecord


def new_run_id(fingerprint: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{fingerprint[:8]}-{uuid.uuid4().hex[:4]}"


# Where the database is ----------------------------------------------------------------


def git_top(start: Path) -> Path | None:
    """The top of the git work tree holding `start`, if any (found without running git)."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def find_state_path(start: Path) -> Path:
    """The project's state database for specs in `start`: the nearest `.tunespec/state.db`
    from `start` upwards, not past the top of the git work tree; else where a new one
    belongs, at the top of the git work tree, or in `start` outside git."""
    start = Path(os.path.abspath(start))
    top = git_top(start)
    for folder in (start, *start.parents):
        if (folder / STATE_DIR / STATE_FILE).is_file():
            return folder / STATE_DIR / STATE_FILE
        if folder == top:
            break
    return (top or start) / STATE_DIR / STATE_FILE


# The store ------------------------------------------------------------------------------


def _corrupt(path: Path, problem: str) -> DiagnosticError:
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    if backup.is_file():
        hint = (f"restore the copy the last `tunespec apply` kept: `rm -f {path}-wal {path}-shm && mv {backup} {path}`; "
                f"or move {path} aside to start a new one (published runs keep their manifest.json either way)")
    else:
        hint = f"move {path} aside to start a new one (published runs keep their manifest.json), or restore it from a backup"
    return DiagnosticError(Diagnostic("TS402", f"the state database {path} is damaged: {problem}", Location(str(path)), hint))


class StateStore:
    """The state database at `path`. `create=False` (read-only commands) opens an existing
    database only: a missing one raises FileNotFoundError, and nothing is created."""

    _open: "weakref.WeakSet[StateStore]"

    @classmethod
    def close_all(cls) -> None:
        """Close every store this process opened (the CLI does at the end of a command, so
        nothing holds the database between commands run in one process)."""
        for store in list(cls._open):
            store.close()

    def __init__(self, path: str | Path, create: bool = True):
        self.path = Path(path)
        existed = self.path.exists()
        if not existed and not create:
            raise FileNotFoundError(str(self.path))
        if existed:
            self._check_file()
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DiagnosticError(Diagnostic(
                    "TS405", f"cannot create the state database in {self.path.parent}: {exc.strerror}", Location(str(self.path)),
                    "apply from a folder you can write, or pass --state FILE",
                )) from None
        try:
            # check_same_thread=False: the store is used from one thread, but the garbage
            # collector may drop it (and close the connection) on another.
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        self.db.row_factory = sqlite3.Row
        StateStore._open.add(self)
        with self._errors():
            if existed:
                self._check_contents()
            else:
                self.db.execute("PRAGMA journal_mode=WAL")
                self._create()

    # Opening: integrity first -----------------------------------------------------------

    def _check_file(self) -> None:
        """What a glance at the bytes tells: SQLite's header, and a size SQLite can have."""
        if self.path.is_dir():
            raise _corrupt(self.path, "it is a folder")
        size = self.path.stat().st_size
        wal = self.path.with_name(self.path.name + "-wal")
        if size == 0:
            if not (wal.is_file() and wal.stat().st_size > 0):
                raise _corrupt(self.path, "the file is empty (truncated)")
            return  # a database whose every page is still in its write-ahead log
        with open(self.path, "rb") as f:
            header = f.read(100)
        if not header.startswith(SQLITE_HEADER):
            raise _corrupt(self.path, "it is not an SQLite database")
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        if len(header) < 100 or page_size < 512 or size % page_size:
            raise _corrupt(self.path, f"its size ({size} bytes) is not a whole number of {page_size}-byte pages (truncated)")

    def _check_contents(self) -> None:
        problems = [row[0] for row in self.db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise _corrupt(self.path, "; ".join(problems[:3]))
        tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            self._create()  # created by a process that stopped before writing the schema
            return
        if "runs" not in tables:
            raise _corrupt(self.path, f"it is an SQLite database but not tunespec's (tables: {', '.join(sorted(tables))})")
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise DiagnosticError(Diagnostic(
                "TS402", f"the state database {self.path} was written by a newer tunespec (schema {version})", Location(str(self.path)),
                "upgrade tunespec (`pip install -U tunespec`)",
            ))
        if version < SCHEMA_VERSION:
            with self._write():
                if "owner_started" not in self._columns("runs"):
                    self.db.execute("ALTER TABLE runs ADD COLUMN owner_started TEXT")
                self.db.execute("DROP TABLE IF EXISTS file_hashes")  # a cache: rebuilt on the next validation
                self.db.execute("DROP TABLE IF EXISTS file_hashes_v2")
                self._write_schema()

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}

    def _create(self) -> None:
        with self._write():
            self._write_schema()
        # Checkpoint now: the main file then holds the schema, so an empty state.db
        # without its -wal file can only be a truncated one.
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _write_schema(self) -> None:
        for statement in filter(str.strip, SCHEMA.split(";")):
            self.db.execute(statement)
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('created_by', 'tunespec')")
        self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def backup(self) -> Path:
        """Copy the database (known good: it was checked when opened) to `state.db.bak`,
        written beside it and renamed into place."""
        target = self.path.with_name(self.path.name + BACKUP_SUFFIX)
        partial = target.with_name(f".{target.name}.partial")
        partial.unlink(missing_ok=True)
        with self._errors():
            copy = sqlite3.connect(partial)
            try:
                self.db.backup(copy)
            finally:
                copy.close()
        os.replace(partial, target)
        return target

    def close(self) -> None:
        self.db.close()
        StateStore._open.discard(self)

    def __del__(self) -> None:
        # sqlite3 connections sit in a reference cycle with their statement cache: without
        # this, a dropped store's connection (and its lock on the WAL) lives until the
        # next garbage collection.
        db = getattr(self, "db", None)
        if db is not None:
            try:
                db.close()
            except sqlite3.Error:  # never let a finaliser print: the interpreter may be shutting down
                pass

    # Errors: every SQLite failure is a diagnostic -----------------------------------------

    def _error(self, exc: sqlite3.Error) -> DiagnosticError:
        text = str(exc)
        if "readonly" in text or "read-only" in text:
            return DiagnosticError(Diagnostic(
                "TS405", f"the state database {self.path} cannot be written: {text}", Location(str(self.path)),
                "apply from a checkout you can write, or pass --state FILE on a writable disk",
            ))
        if "unable to open" in text:
            return DiagnosticError(Diagnostic("TS405", f"cannot open the state database {self.path}: {text}", Location(str(self.path))))
        return _corrupt(self.path, text)

    def _errors(self) -> "_SQLiteErrors":
        return _SQLiteErrors(self)

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._errors():
            return self.db.execute(sql, params).fetchall()

    # Runs ------------------------------------------------------------------------------

    def latest_run(self, spec_name: str) -> RunRecord | None:
        rows = self._query("SELECT * FROM runs WHERE spec_name = ? ORDER BY created_at DESC, rowid DESC LIMIT 1", (spec_name,))
        return RunRecord.from_row(rows[0]) if rows else None

    def latest_succeeded(self, spec_name: str) -> RunRecord | None:
        """The newest run of `spec_name` that succeeded (what another spec builds on)."""
        rows = self._query(
            "SELECT * FROM runs WHERE spec_name = ? AND status = 'succeeded' ORDER BY created_at DESC, rowid DESC LIMIT 1", (spec_name,)
        )
        return RunRecord.from_row(rows[0]) if rows else None

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._query("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return RunRecord.from_row(rows[0]) if rows else None

    def runs(self, spec_name: str | None = None, limit: int = 100) -> list[RunRecord]:
        if spec_name:
            rows = self._query("SELECT * FROM runs WHERE spec_name = ? ORDER BY created_at DESC, rowid DESC LIMIT ?", (spec_name, limit))
        else:
            rows = self._query("SELECT * FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))
        return [RunRecord.from_row(r) for r in rows]

    def claim(
        self,
        *,
        spec_name: str,
        spec_file: str,
        fingerprint: str,
        backend: str,
        output_root: str,
        run_dir_for: Any,
        spec: dict,
        plan: dict,
        data: dict,
        force: bool = False,
        published: Callable[[RunRecord], bool] = lambda run: True,
    ) -> Claim:
        """Decide, atomically, what `apply` does for this spec and record it.

        - the same fingerprint already succeeded and its run is still `published` (and
          not `force`): noop;
        - the same fingerprint is in flight in a live process or remotely: in_flight;
        - the same fingerprint was interrupted (its process is gone): resume it;
        - otherwise: create a new run, owned by this process.
        `run_dir_for(run_id)` gives the final run directory of a new run.
        """
        host, pid, started = this_process()
        with self._write():
            rows = self.db.execute(
                "SELECT * FROM runs WHERE spec_name = ? AND fingerprint = ? ORDER BY created_at DESC, rowid DESC",
                (spec_name, fingerprint),
            ).fetchall()
            for run in map(RunRecord.from_row, rows):
                if run.status == "succeeded" and not force and published(run):
                    return Claim("noop", run)
                if run.status == "cancelling":
                    if run.owner_alive:
                        return Claim("in_flight", run)
                    continue  # asked to stop: never resumed
                if run.status in IN_FLIGHT:
                    if run.owner_alive or (run.remote_id and run.status != "interrupted"):
                        return Claim("in_flight", run)
                    self.db.execute(
                        "UPDATE runs SET status='running', owner_host=?, owner_pid=?, owner_started=?, updated_at=? WHERE run_id=?",
                        (host, pid, started, now_iso(), run.run_id),
                    )
                    return Claim("resume", self.get_run(run.run_id))  # type: ignore[arg-type]
            run_id = new_run_id(fingerprint)
            stamp = now_iso()
            values = secrets.redact([
                run_id, spec_name, spec_file, fingerprint, backend, output_root, str(run_dir_for(run_id)),
                stamp, stamp, host, pid, started, *(json.dumps(secrets.redact(v)) for v in (spec, plan, data)),
            ])
            self.db.execute(
                "INSERT INTO runs (run_id, spec_name, spec_file, fingerprint, backend, status, output_root, run_dir,"
                " created_at, updated_at, owner_host, owner_pid, owner_started, spec, plan, data)"
                " VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                tuple(values),
            )
            return Claim("create", self.get_run(run_id))  # type: ignore[arg-type]

    def update_run(self, run_id: str, **fields: Any) -> RunRecord:
        fields["updated_at"] = now_iso()
        for key in ("spec", "plan", "data"):
            if key in fields and not isinstance(fields[key], str):
                fields[key] = json.dumps(secrets.redact(fields[key]))
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._write():
            self.db.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", (*secrets.redact(list(fields.values())), run_id))
        return self.get_run(run_id)  # type: ignore[return-value]

    def take_over(self, run_id: str) -> RunRecord:
        """Record this process as the run's owner (it now drives the run)."""
        host, pid, started = this_process()
        return self.update_run(run_id, owner_host=host, owner_pid=pid, owner_started=started)

    def _write(self) -> "_Transaction":
        return _Transaction(self)

    # Data hashes (the cache data validation uses so unchanged files are not re-hashed) --

    # An entry holds only while path, size, mtime, inode and ctime all match: a file
    # rewritten in place with its mtime set back still has a new ctime. (`IS` compares
    # NULLs too, for sources that know no inode or ctime.) Best effort both ways: a cache
    # that cannot be read or written (a read-only checkout) only costs a re-hash.

    def lookup(self, stat: Any) -> str | None:
        try:
            rows = self._query(
                "SELECT sha256 FROM file_hashes WHERE path = ? AND size = ? AND mtime_ns IS ? AND inode IS ? AND ctime_ns IS ?",
                (secrets.redact(stat.path), stat.size, stat.mtime_ns, stat.inode, stat.ctime_ns),
            )
        except DiagnosticError:
            return None
        return rows[0][0] if rows else None

    def store(self, stat: Any, digest: str) -> None:
        try:
            with self._write():
                self.db.execute(
                    "INSERT OR REPLACE INTO file_hashes (path, size, mtime_ns, inode, ctime_ns, sha256) VALUES (?, ?, ?, ?, ?, ?)",
                    (secrets.redact(stat.path), stat.size, stat.mtime_ns, stat.inode, stat.ctime_ns, digest),
                )
        except DiagnosticError:
            pass


    # Token counts (the cache data validation uses so unchanged data is not tokenised again):
    # keyed by content hash, format and tokenizer (see tunespec.data.reuse); best effort too.

    def lookup_counts(self, key: str) -> bytes | None:
        try:
            rows = self._query("SELECT counts FROM token_counts WHERE key = ?", (secrets.redact(key),))
        except DiagnosticError:
            return None
        return bytes(rows[0][0]) if rows else None

    def store_counts(self, key: str, packed: bytes) -> None:
        try:
            with self._write():
                self.db.execute("INSERT OR REPLACE INTO token_counts (key, counts) VALUES (?, ?)", (secrets.redact(key), packed))
        except DiagnosticError:
            pass


StateStore._open = weakref.WeakSet()


class _SQLiteErrors:
    """Turns any SQLite error inside the block into the store's diagnostic."""

    def __init__(self, store: StateStore):
        self.store = store

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is not None and issubclass(exc_type, sqlite3.Error):
            raise self.store._error(exc) from None
        return False


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so read-decide-write is atomic
    across processes. Retries while another writer holds the lock; any other SQLite error is
    the store's diagnostic."""

    def __init__(self, store: StateStore):
        self.store = store
        self.db = store.db

    def __enter__(self) -> None:
        for _ in range(600):
            try:
                self.db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise self.store._error(exc) from None
                time.sleep(0.05)
        with self.store._errors():
            self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        with self.store._errors():
            if exc_type is not None:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
            else:
                self.db.execute("COMMIT")
        if exc_type is not None and issubclass(exc_type, sqlite3.Error):
            raise self.store._error(exc) from None
        return False
