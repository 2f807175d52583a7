"""Whether reconciles still finish: the reconciles running now and since when, and the liveness probe
(kopf's /healthz) that fails while one is stuck, so the kubelet restarts a replica that serves nobody."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..config import OperatorConfig

# A reconcile reads the cache, writes a few objects and starts measurements in their own pool: it takes
# milliseconds, seconds on a slow API server. One running longer than this is stuck (a request that
# never returns, a deadlock), and a replica whose reconcile threads are stuck serves nobody: the
# liveness probe then fails and the kubelet restarts it. Default: twice kopf's API request timeout
# (60 s, settings.py); the reconcilers' API client gives up on a request after 30 s (adapters/kube.py),
# so what trips it is a reconcile that waits on something no timeout covers (a lock, a bug).
# MLOPS_STUCK_RECONCILE_SECONDS sets it (config.py).
STUCK_RECONCILE_SECONDS = OperatorConfig.from_env().stuck_reconcile_seconds


@dataclass(frozen=True)
class RunningReconcile:
    key: tuple[str, str, str]  # (plural, namespace, name)
    seconds: float  # how long it has been running


class RunningReconciles:
    """When each running reconcile started; thread-safe (reconciles run in RECONCILE_THREADS, the probe
    reads from the event loop). A monotonic clock: a change of the wall clock is no age."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._started: dict[int, tuple[tuple[str, str, str], float]] = {}
        self._tokens = itertools.count()

    @contextmanager
    def running(self, key: tuple[str, str, str]) -> Iterator[None]:
        """Record a reconcile of `key` while the block runs (however it ends)."""
        token = next(self._tokens)
        with self._lock:
            self._started[token] = (key, self._clock())
        try:
            yield
        finally:
            with self._lock:
                del self._started[token]

    def oldest(self) -> RunningReconcile | None:
        """The reconcile running longest, and for how long; None when none runs."""
        with self._lock:
            started = list(self._started.values())
        if not started:
            return None
        key, since = min(started, key=lambda entry: entry[1])
        return RunningReconcile(key=key, seconds=max(0.0, self._clock() - since))

    def __len__(self) -> int:
        with self._lock:
            return len(self._started)


RUNNING = RunningReconciles()
HANG_FOR_TESTS = OperatorConfig.from_env().test_hang_reconcile


def stuck_reconcile(running: RunningReconciles, *, bound: float = STUCK_RECONCILE_SECONDS) -> str | None:
    """Why the reconciles are stuck, in words; None while the oldest running one is within `bound`."""
    oldest = running.oldest()
    if oldest is None or oldest.seconds <= bound:
        return None
    plural, namespace, name = oldest.key
    return (
        f"the reconcile of {plural} {namespace}/{name} has run for {oldest.seconds:.0f}s "
        f"(more than {bound:.0f}s): reconciles are stuck"
    )


_probe_registered = False


def register_liveness_probe() -> None:
    """Make kopf's /healthz (`--liveness-port`) fail while a reconcile is stuck, not only when the event
    loop is: kopf answers /healthz by running the probe handlers, and a handler raising PermanentError
    fails the activity, which its HTTP server answers with 500. (A plain exception would be retried
    after kopf's backoff, 60 s, holding the request unanswered meanwhile: a failure only by the
    kubelet's timeout.) Registered once, with the first reconcile loop."""
    global _probe_registered
    if _probe_registered:
        return
    import kopf

    @kopf.on.probe(id="reconciles")
    async def reconciles(**_: Any) -> dict[str, Any]:  # async: no thread needed to answer
        problem = stuck_reconcile(RUNNING)
        if problem is not None:
            raise kopf.PermanentError(problem)
        oldest = RUNNING.oldest()
        return {"running": len(RUNNING), "oldestSeconds": round(oldest.seconds, 1) if oldest else 0.0}

    _probe_registered = True
