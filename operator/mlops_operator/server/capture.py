"""Production data capture: the rows a server predicted on and the labels posted back, kept in the
artifact store for training (a Dataset source `capture` joins them by receipt id, data/sources.py).

Off the request path and bounded: a request only appends to a list in memory (at most `max_pending`
records; beyond that new ones are dropped and counted), and a background task writes what is pending
as one batch — a write-once version of the store, `records.jsonl`, named `<time>-<pod>-<seq>` — in a
worker thread, every `flush_seconds` or as soon as `batch_rows` records are pending (small batches:
serialising one holds the interpreter, and a large one would stall the requests behind it). Several
replicas never clash (the pod is in the name), and a crash loses at most the batch not yet written.
At most every `prune_seconds`, after a write, the server applies the retention to the whole capture
prefix of its ModelDeployment: batches older than `max_age_seconds` go, then the oldest until all of
them fit in `max_bytes` (several replicas may prune the same batch: deleting is idempotent).

Records, one JSON object per line:
- `{"kind": "prediction", "receipt", "row", "version", "time", "features": {...}, "prediction"}` per row
  of a sampled request (requests are sampled whole, with `sample_rate`); `receipt` is the id of the
  receipt the server issued (null on a server without a receipt key: such rows are never labelled). The
  client's own request id is not kept: clients choose it, so it names nothing reliably;
- `{"kind": "label", "receipt", "labels": [...], "version", "issued", "time", "max_age"}` per feedback the
  server accepted, on whichever pod it reached, written only after the receipt was verified: `version`
  and `issued` are the receipt's, `max_age` the bound the server applied (the join uses it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from typing import Any

import numpy as np

from ..data.capture import RECORDS_FILE, batch_time
from ..storage import ArtifactStore, StoreError

log = logging.getLogger("mlops_operator.server")


class CaptureWriter:
    def __init__(
        self,
        store: ArtifactStore,
        prefix: str,
        *,
        version: str,
        pod: str,
        features: list[str],
        sample_rate: float = 1.0,
        max_age_seconds: float = 7 * 86400,
        max_bytes: int = 1 << 30,
        flush_seconds: float = 5.0,
        batch_rows: int = 1000,
        prune_seconds: float = 60.0,
        max_pending: int = 20_000,
        clock: Any = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store, self.prefix = store, prefix.strip("/")
        self.version, self.pod, self.features = version, pod, features
        self.sample_rate, self.max_age_seconds, self.max_bytes = sample_rate, max_age_seconds, max_bytes
        self.flush_seconds, self.max_pending = flush_seconds, max_pending
        self.batch_rows, self.prune_seconds = batch_rows, prune_seconds
        self._last_prune: float | None = None
        self._clock, self._rng = clock, rng or random.Random()
        self._pending: list[dict[str, Any]] = []
        self._sequence = 0
        self.dropped = 0  # records refused because too many were pending (the store slow or down)
        self.written = 0  # records written
        self._task: asyncio.Task | None = None
        self._lock = threading.Lock()  # requests append on the event loop, the batch is taken in a worker thread

    # ------------------------------------------------------------------------ on the request path

    def _keep(self, records: list[dict[str, Any]]) -> None:
        with self._lock:
            room = max(self.max_pending - len(self._pending), 0)
            self._pending.extend(records[:room])
            self.dropped += max(len(records) - room, 0)

    def predicted(self, receipt_id: str | None, rows: np.ndarray, predictions: np.ndarray) -> None:
        if self._rng.random() >= self.sample_rate:
            return
        now = self._clock()
        values = predictions.tolist()
        self._keep(
            [
                {
                    "kind": "prediction",
                    "receipt": receipt_id,
                    "row": i,
                    "version": self.version,
                    "time": now,
                    "features": dict(zip(self.features, row, strict=True)),
                    "prediction": values[i],
                }
                for i, row in enumerate(rows.tolist())
            ]
        )

    def labelled(self, receipt_id: str, labels: list, *, version: str, issued: float, max_age: float) -> None:
        """Labels for a verified receipt: of `version` (the receipt's, maybe not this pod's), issued at `issued`."""
        self._keep(
            [
                {
                    "kind": "label",
                    "receipt": receipt_id,
                    "labels": labels,
                    "version": version,
                    "issued": issued,
                    "time": self._clock(),
                    "max_age": max_age,
                }
            ]
        )

    # ----------------------------------------------------------------------------- in the background

    def flush(self) -> int:
        """Write what is pending as one batch, then apply the retention; the records written. On a store
        error the batch is kept for the next try (up to max_pending) and the error logged."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0
        started = self._clock()
        name = f"{int(started * 1000):015d}-{self.pod}-{self._sequence:06d}"
        body = "".join(json.dumps(record, separators=(",", ":")) + "\n" for record in batch).encode()
        try:
            self.store.write_version(f"{self.prefix}/{name}" if self.prefix else name, {RECORDS_FILE: body})
        except StoreError as error:
            log.warning("capture: cannot write %d records to %s: %s", len(batch), self.store.root_uri, error)
            with self._lock:
                self._pending = (batch + self._pending)[: self.max_pending]
            return 0
        self._sequence += 1
        self.written += len(batch)
        if self._last_prune is None or started - self._last_prune >= self.prune_seconds:
            self._last_prune = started
            self.prune(now=started)
        return len(batch)

    def prune(self, *, now: float) -> list[str]:
        """Apply the retention to every batch of the prefix (all versions, all pods); the batches removed."""
        try:
            batches = self.store.versions_under(self.prefix)
        except StoreError as error:
            log.warning("capture: cannot list %s for the retention: %s", self.store.root_uri, error)
            return []
        doomed = [path for path, _ in batches if now - batch_time(path) > self.max_age_seconds]
        kept = [(path, size) for path, size in batches if path not in doomed]
        total = sum(size for _, size in kept)
        for path, size in sorted(kept, key=lambda item: batch_time(item[0])):
            if total <= self.max_bytes:
                break
            doomed.append(path)
            total -= size
        for path in doomed:
            try:
                self.store.delete_version(path)
            except StoreError as error:
                log.warning("capture: cannot remove %s: %s", path, error)
        return doomed

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(min(0.5, self.flush_seconds))
            if len(self._pending) >= self.batch_rows or loop.time() - last >= self.flush_seconds:
                last = loop.time()
                await loop.run_in_executor(None, self.flush)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the timer and write what is pending: a server shut down in order loses nothing."""
        if self._task:
            self._task.cancel()
        await asyncio.get_running_loop().run_in_executor(None, self.flush)
