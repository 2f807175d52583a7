"""The control loop: one loop per object that reconciles it when something it depends on changes, at the
deadline its last reconcile named, and at a slow safety resync; it writes the status patch, the labels
and the Events the reconcile returned, once.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel

from ..adapters import kube
from ..api.clock import utc_now
from ..operator_metrics import RECONCILE_ERRORS, RECONCILE_SECONDS, RECONCILES
from ..resources.ownership import NameConflict
from .cache import CACHE, WAKERS
from .contract import (
    Observed,
    invalid_spec_outcome,
    name_conflict_outcome,
    now_iso,
    parse_spec,
    plain_status,
    status_patch,
)
from .liveness import HANG_FOR_TESTS, RUNNING, register_liveness_probe

LOG = logging.getLogger("mlops_operator.reconcile")

MIN_WAKE_SECONDS = 0.05  # a deadline already past is looked at again after this, never in a busy loop
SAFETY_RESYNC_SECONDS = 600.0  # a settled object is looked at this often, in case an event was missed
ERROR_RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # after an unexpected failure, then steady
# Reconciles run in these threads: the API client and Prometheus client are synchronous.
RECONCILE_THREADS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="reconcile")


def seconds_until(moment: dt.datetime | None, *, now: dt.datetime, cap: float) -> float:
    """How long to sleep before `moment` (at most `cap`; no moment: `cap`)."""
    if moment is None:
        return cap
    return min(cap, max(MIN_WAKE_SECONDS, (moment - now).total_seconds()))


def register_reconciler(plural: str, spec_model: type[BaseModel], reconcile: Any) -> None:
    """Run one kind's reconcile when something it depends on changes, and at the deadline it names.

    Each object gets one loop (a kopf daemon; with HA only the replica holding the Lease runs kopf): it
    reconciles, then sleeps until it is woken (a watch event that concerns it, see watches.py), or
    until the moment the reconcile returned in `Outcome.wake_at` (a pause ending, the next
    measurement, a wait timing out), or the slow safety resync. A settled object sleeps for the
    resync: no timer, no poll. Reconciles of one object never overlap; the reconcile reads from the
    cache and writes status once, only if it changed.
    `reconcile(spec, observed, logger)` gets a valid spec and returns an Outcome (the whole desired
    status).
    """
    import kopf

    from ..api import GROUP, VERSION

    register_liveness_probe()

    async def run(name: str, namespace: str, logger: Any, stopped: Any, **_: Any) -> None:
        key = (plural, namespace, name)
        woken = WAKERS.register(key)
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()  # kopf's Event posting works from the threads too
        failures, trigger = 0, "start"
        try:
            while not stopped:
                woken.clear()  # before reading: an event during the reconcile wakes it again
                RECONCILES.labels(plural, trigger).inc()
                try:
                    wake_at = await loop.run_in_executor(
                        RECONCILE_THREADS,
                        context.copy().run,
                        reconcile_once,
                        plural,
                        spec_model,
                        reconcile,
                        namespace,
                        name,
                        logger,
                    )
                    failures, delay = 0, seconds_until(wake_at, now=utc_now(), cap=SAFETY_RESYNC_SECONDS)
                except Exception as error:  # reported and retried; the operator keeps serving the others
                    RECONCILE_ERRORS.labels(plural).inc()
                    delay = ERROR_RETRY_SECONDS[min(failures, len(ERROR_RETRY_SECONDS) - 1)]
                    failures += 1
                    logger.error(f"reconcile failed, retrying in {delay:.0f}s: {type(error).__name__}: {error}")
                trigger = await _sleep(woken, stopped, delay)
        finally:
            WAKERS.unregister(key, woken)

    kopf.daemon(GROUP, VERSION, plural, id=f"reconcile-{plural}", cancellation_timeout=10)(run)


def reconcile_once(
    plural: str, spec_model: type[BaseModel], reconcile: Any, namespace: str, name: str, logger: Any
) -> dt.datetime | None:
    """One reconcile of one object, from the cache: parse, decide (`reconcile`), then write what changed —
    the status, the object's labels — and only then post the Events the outcome carries. What to wake at."""
    import kopf

    with RUNNING.running((plural, namespace, name)), RECONCILE_SECONDS.labels(plural).time():
        if HANG_FOR_TESTS and f"{namespace}/{name}" == HANG_FOR_TESTS:
            threading.Event().wait()  # fault injection (config.test_hang_reconcile): a stuck reconcile
        fresh = CACHE.get(plural, namespace, name)
        if fresh is None:  # not delivered by the watch yet: read it once
            fresh = kube.get_custom(plural, namespace, name)
            if fresh is not None:
                CACHE.observe(plural, fresh)
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return None
        observed = Observed(
            body=fresh, status=plain_status(fresh), generation=fresh["metadata"].get("generation"), now=now_iso()
        )
        spec, error = parse_spec(spec_model, fresh)
        try:
            outcome = invalid_spec_outcome(observed, error) if spec is None else reconcile(spec, observed, logger)
        except NameConflict as conflict:  # a child's name is held by an object that is not ours: left untouched
            outcome = name_conflict_outcome(observed, conflict)
        patch = status_patch(observed.status, outcome.status)
        if patch:
            CACHE.observe(plural, kube.patch_status(plural, namespace, name, patch))
            # Not kopf's per-object logger: that one posts every INFO line as an Event (a write).
            LOG.info(f"[{namespace}/{name}] {plural} reconciled: status.{{{','.join(sorted(patch))}}} written")
        current = fresh["metadata"].get("labels") or {}
        labels = {k: v for k, v in outcome.labels.items() if current.get(k) != v}
        if labels:
            CACHE.observe(plural, kube.patch_labels(plural, namespace, name, labels))
        for event in outcome.events:  # once what they report is written
            (kopf.warn if event.warning else kopf.info)(fresh, reason=event.reason, message=event.message)
        return outcome.wake_at


async def _sleep(woken: asyncio.Event, stopped: Any, delay: float) -> str:
    """Wait for a wake-up, the operator stopping this object's loop, or `delay`; say which it was."""

    async def until_stopped() -> None:
        await stopped.wait()

    waits = [asyncio.ensure_future(woken.wait()), asyncio.ensure_future(until_stopped())]
    try:
        done, _ = await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    if waits[0] in done:
        return "event"
    return "deadline" if delay < SAFETY_RESYNC_SECONDS else "resync"
