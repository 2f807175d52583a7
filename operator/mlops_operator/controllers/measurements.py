"""Measurements run beside the reconciles, never inside them.

A measurement is a few Prometheus queries that take a moment, and up to their deadline against a
Prometheus that misbehaves. Inside a reconcile it would hold that object's manual commands (an abort)
and a reconcile thread hostage, so a reconcile that finds a measurement due starts it here, in a
small pool of its own (bounded concurrency: many slow measurements queue here, not in front of other
objects' reconciles), and goes on deciding without it. A finished measurement wakes its object,
whose next reconcile takes the result. What is in flight lives only in memory: an operator
restarted meanwhile simply measures again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .cache import WAKERS, Key

MEASUREMENT_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="measure")
LOG = logging.getLogger("mlops_operator.measurements")


@dataclass
class _InFlight:
    version: str
    future: Future


_lock = threading.Lock()
_in_flight: dict[Key, _InFlight] = {}


def take_measurement(key: Key, *, version: str, measure: Callable[[], Any], wake: Key | None = None) -> Any | None:
    """The finished measurement of `version` for this object, once; None while one is running (one
    is started when none is: the object — `wake`, when the key names a second measurement of it — is
    woken when it finishes)."""
    with _lock:
        found = _in_flight.get(key)
        if found is not None and found.version == version:
            if not found.future.done():
                return None
            del _in_flight[key]
            try:
                return found.future.result()
            except Exception as error:  # measure() turns outside failures into results; this is a bug
                LOG.error(f"measurement of {key} failed: {type(error).__name__}: {error}")
                return None
        future = MEASUREMENT_THREADS.submit(measure)
        _in_flight[key] = _InFlight(version=version, future=future)  # replaces one of another version
    future.add_done_callback(lambda _: WAKERS.wake([wake or key]))
    return None
