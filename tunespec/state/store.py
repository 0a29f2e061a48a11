"""An embedded SQLite store of runs and data hashes (default `.tunespec/state.db`).

It answers the question `apply` asks before starting anything: has this exact job (same
fingerprint) already succeeded, is it running right now, was it interrupted (resume it),
or is it new? `claim` answers and records the answer in one write transaction, so two
concurrent `apply` of one spec start one run.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

STATE_DIR = ".tunespec"
STATE_FILE = "state.db"
IN_FLIGHT = ("pending", "running", "interrupted")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    spec_name   TEXT NOT NULL,
    spec_file   TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    backend     TEXT NOT NULL,
    status      TEXT NOT NULL,
    remote_id   TEXT,
    output_root TEXT NOT NULL,
    run_dir     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    owner_host  TEXT,
    owner_pid   INTEGER,
    message     TEXT,
    spec        TEXT,
    plan        TEXT,
    data        TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_spec ON runs (spec_name, created_at);
-- v2: keyed on inode and ctime too (a table of the old shape, if any, is left unused).
CREATE TABLE IF NOT EXISTS file_hashes_v2 (
    path     TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode    INTEGER,
    ctime_ns INTEGER,
    sha256   TEXT NOT NULL
);
"""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunRecord:
    run_id: str
    spec_name: str
    spec_file: str
    fingerprint: str
    backend: str
    status: str
    remote_id: str | None
    output_root: str
    run_dir: str
    created_at: str
    updated_at: str
    owner_host: str | None
    owner_pid: int | None
    message: str | None
    spec: dict[str, Any] | None
    plan: dict[str, Any] | None
    data: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "RunRecord":
        values = dict(row)
        for key in ("spec", "plan", "data"):
            values[key] = json.loads(values[key]) if values[key] else None
        return cls(**values)

    @property
    def owner_alive(self) -> bool:
        """True while the process that runs this locally is still alive on this host."""
        if self.owner_pid is None or self.owner_host != socket.gethostname():
            return False
        try:
            os.kill(self.owner_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out.pop("spec", None)
        out.pop("plan", None)
        return out


@dataclass
class Claim:
    """What `apply` should do for a spec: start a new run, resume one, or nothing."""

    action: Literal["create", "resume", "noop", "in_flight"]
    run: RunRecord


def new_run_id(fingerprint: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{fingerprint[:8]}-{uuid.uuid4().hex[:4]}"


def find_state_path(start: Path) -> Path:
    """The state database for specs under `start`: the nearest `.tunespec/` folder in
    `start` or its parents (like git finds `.git`), else a new one in `start`."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / STATE_DIR).is_dir():
            return folder / STATE_DIR / STATE_FILE
    return start / STATE_DIR / STATE_FILE


class StateStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # Runs ------------------------------------------------------------------------------

    def latest_run(self, spec_name: str) -> RunRecord | None:
        row = self.db.execute(
            "SELECT * FROM runs WHERE spec_name = ? ORDER BY created_at DESC, rowid DESC LIMIT 1", (spec_name,)
        ).fetchone()
        return RunRecord.from_row(row) if row else None

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return RunRecord.from_row(row) if row else None

    def runs(self, spec_name: str | None = None, limit: int = 100) -> list[RunRecord]:
        if spec_name:
            rows = self.db.execute(
                "SELECT * FROM runs WHERE spec_name = ? ORDER BY created_at DESC, rowid DESC LIMIT ?", (spec_name, limit)
            )
        else:
            rows = self.db.execute("SELECT * FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))
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
    ) -> Claim:
        """Decide, atomically, what `apply` does for this spec and record it.

        - the same fingerprint already succeeded (and not `force`): noop;
        - the same fingerprint is in flight in a live process or remotely: in_flight;
        - the same fingerprint was interrupted (its process is gone): resume it;
        - otherwise: create a new run, owned by this process.
        `run_dir_for(run_id)` gives the final run directory of a new run.
        """
        with self._write():
            rows = self.db.execute(
                "SELECT * FROM runs WHERE spec_name = ? AND fingerprint = ? ORDER BY created_at DESC, rowid DESC",
                (spec_name, fingerprint),
            ).fetchall()
            for run in map(RunRecord.from_row, rows):
                if run.status == "succeeded" and not force:
                    return Claim("noop", run)
                if run.status in IN_FLIGHT:
                    if run.owner_alive or (run.remote_id and run.status != "interrupted"):
                        return Claim("in_flight", run)
                    self.db.execute(
                        "UPDATE runs SET status='running', owner_host=?, owner_pid=?, updated_at=? WHERE run_id=?",
                        (socket.gethostname(), os.getpid(), now_iso(), run.run_id),
                    )
                    return Claim("resume", self.get_run(run.run_id))  # type: ignore[arg-type]
            run_id = new_run_id(fingerprint)
            stamp = now_iso()
            self.db.execute(
                "INSERT INTO runs (run_id, spec_name, spec_file, fingerprint, backend, status, output_root, run_dir,"
                " created_at, updated_at, owner_host, owner_pid, spec, plan, data)"
                " VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id, spec_name, spec_file, fingerprint, backend, output_root, str(run_dir_for(run_id)),
                    stamp, stamp, socket.gethostname(), os.getpid(),
                    json.dumps(spec), json.dumps(plan), json.dumps(data),
                ),
            )
            return Claim("create", self.get_run(run_id))  # type: ignore[arg-type]

    def update_run(self, run_id: str, **fields: Any) -> RunRecord:
        fields["updated_at"] = now_iso()
        for key in ("spec", "plan", "data"):
            if key in fields and not isinstance(fields[key], str):
                fields[key] = json.dumps(fields[key])
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._write():
            self.db.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", (*fields.values(), run_id))
        return self.get_run(run_id)  # type: ignore[return-value]

    def _write(self) -> "_Transaction":
        return _Transaction(self.db)

    # Data hashes (the cache data validation uses so unchanged files are not re-hashed) --

    # An entry holds only while path, size, mtime, inode and ctime all match: a file
    # rewritten in place with its mtime set back still has a new ctime. (`IS` compares
    # NULLs too, for sources that know no inode or ctime.)

    def lookup(self, stat: Any) -> str | None:
        row = self.db.execute(
            "SELECT sha256 FROM file_hashes_v2 WHERE path = ? AND size = ? AND mtime_ns = ? AND inode IS ? AND ctime_ns IS ?",
            (stat.path, stat.size, stat.mtime_ns, stat.inode, stat.ctime_ns),
        ).fetchone()
        return row[0] if row else None

    def store(self, stat: Any, digest: str) -> None:
        with self._write():
            self.db.execute(
                "INSERT OR REPLACE INTO file_hashes_v2 (path, size, mtime_ns, inode, ctime_ns, sha256) VALUES (?, ?, ?, ?, ?, ?)",
                (stat.path, stat.size, stat.mtime_ns, stat.inode, stat.ctime_ns, digest),
            )


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so read-decide-write is atomic
    across processes. Retries while another writer holds the lock."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        for attempt in range(600):
            try:
                self.db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                time.sleep(0.05)
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
