"""What the reconcilers read instead of asking the API server: objects as the watches last delivered them.

The controller-runtime shape, on kopf's watch streams: our three kinds and the children we own
(selected by our labels, see `watches.py`) are kept here, updated by every watch event and by the
response of every write we make ourselves. A write's response is newer than the event queue may
still be delivering, so an older resourceVersion never replaces a newer one: a reconcile that runs
right after our own status patch sees the patch, not the state before it.

The store is shared between kopf's event loop (which feeds it) and the reconcile threads (which
read it) behind one lock. Bodies are handed out as they are stored: readers must not modify them.

`Wakers` is the other half: the per-object wake-up a reconcile loop waits on; a watch event calls
`wake` for the objects it concerns.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

Key = tuple[str, str, str]  # (plural, namespace, name)


def _version(body: dict[str, Any]) -> int | None:
    try:
        return int(body["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None


def is_newer_or_same(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether `new` may replace `old`. resourceVersions are etcd revisions (integers) on every API
    server we know; if one is not, the later arrival wins, as it would without this check."""
    a, b = _version(new), _version(old)
    return a is None or b is None or a >= b


class ObjectCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: defaultdict[str, dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)

    def observe(self, plural: str, body: dict[str, Any]) -> None:
        """Keep `body` unless a newer version of the object is kept already. managedFields are dropped:
        nothing here reads them, and they are often the larger part of an object."""
        meta = body["metadata"]
        if "managedFields" in meta:
            body = {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
            meta = body["metadata"]
        key = (meta.get("namespace") or "", meta["name"])
        with self._lock:
            kept = self._objects[plural].get(key)
            if kept is None or kept["metadata"].get("uid") != meta.get("uid") or is_newer_or_same(body, kept):
                self._objects[plural][key] = body

    def forget(self, plural: str, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        with self._lock:
            kept = self._objects[plural].get((meta.get("namespace") or "", meta["name"]))
            if kept is not None and kept["metadata"].get("uid") == meta.get("uid"):
                del self._objects[plural][(meta.get("namespace") or "", meta["name"])]

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._objects[plural].get((namespace, name))

    def list(self, plural: str, namespace: str, *, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Objects of a kind in a namespace whose labels include `labels`."""
        wanted = (labels or {}).items()
        with self._lock:
            found = [body for (ns, _), body in self._objects[plural].items() if ns == namespace]
        return [b for b in found if wanted <= (b["metadata"].get("labels") or {}).items()]

    def all(self, plural: str) -> list[dict[str, Any]]:
        """Every object of a kind kept, in all namespaces."""
        with self._lock:
            return list(self._objects[plural].values())

    def count(self, plural: str) -> int:
        with self._lock:
            return len(self._objects[plural])


class Wakers:
    """The wake-up events of the objects' reconcile loops, settable from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[Key, tuple[asyncio.AbstractEventLoop, asyncio.Event]] = {}

    def register(self, key: Key) -> asyncio.Event:
        event = asyncio.Event()
        with self._lock:
            self._events[key] = (asyncio.get_running_loop(), event)
        return event

    def unregister(self, key: Key, event: asyncio.Event) -> None:
        with self._lock:
            if self._events.get(key, (None, None))[1] is event:
                del self._events[key]

    def wake(self, keys: Iterable[Key]) -> None:
        for key in keys:
            with self._lock:
                found = self._events.get(key)
            if found is None:
                continue  # not running here (another replica is active, or it is being deleted)
            loop, event = found
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                event.set()
            else:
                loop.call_soon_threadsafe(event.set)


CACHE = ObjectCache()
WAKERS = Wakers()
