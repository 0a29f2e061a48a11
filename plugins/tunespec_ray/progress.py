"""Training progress from the workers to the `apply` display.

Rank 0 sends each step's metrics to a small actor (fire and forget: it never waits on the
driver); a thread on the driver polls the actor and moves tunespec's progress bar. Ray
Train itself only hears from the workers at checkpoints, so per-step progress costs no
cross-worker sync.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

POLL_SECONDS = 0.5
SHOWN = ("train_loss", "eval_loss", "tokens_per_s")


class ProgressSink:
    """Holds the newest metrics record rank 0 sent (a Ray actor on the driver's node)."""

    def __init__(self) -> None:
        self.latest: dict[str, Any] | None = None

    def put(self, metrics: dict[str, Any]) -> None:
        self.latest = metrics

    def get(self) -> dict[str, Any] | None:
        return self.latest


@contextmanager
def followed(task: Any) -> Iterator[Any]:
    """Start a sink actor, yield its handle for the workers, and mirror what it receives on
    `task` (a tunespec.progress.Task) until the block ends."""
    import ray

    sink = ray.remote(num_cpus=0)(ProgressSink).remote()
    stop = threading.Event()

    def follow() -> None:
        shown_step = None
        while not stop.wait(POLL_SECONDS):
            try:
                metrics = ray.get(sink.get.remote(), timeout=5)
            except Exception:  # the cluster is going away; the fit result will say why
                return
            if metrics and metrics.get("step") != shown_step:
                shown_step = metrics.get("step")
                task.update(completed=shown_step, total=metrics.get("total_steps"),
                            **{k: metrics[k] for k in SHOWN if metrics.get(k) is not None})

    thread = threading.Thread(target=follow, name="tunespec-ray-progress", daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        stop.set()
        thread.join(timeout=5)
        ray.kill(sink)
