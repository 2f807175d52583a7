"""Adaptive micro-batching: concurrent requests share one `predict` call.

A scikit-learn `predict` costs about the same for 1 row as for 64, so under load the batcher takes
what is waiting (up to `max_batch_size` rows), waits at most `max_delay` for more, and runs one call.
Slow models (a forest: ~10 ms) predict in a worker thread so the event loop keeps accepting requests;
fast ones (a linear model: ~0.1 ms) predict inline, where a thread hop would cost more than the call.
A lone request is never delayed by more than `max_delay`.

Sharing a call must not share a failure: the codec refuses the rows it knows a model cannot take
before they join a batch, and if a batch fails anyway, it is split in halves until each failing
request stands alone (k culprits among n requests cost about 2·k·log2(n) extra calls, on the failure
path only). Everyone else gets their predictions. First the last rows that predicted are tried
again (one call): if the model cannot predict them either, it is broken and every request gets the
error (a 5xx) without bisecting. A request that fails alone while the model predicts other rows is the
input's fault (`RowsRefused`, a 4xx).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable

import numpy as np

# what scikit-learn's input checks and numeric code raise on rows they refuse; anything else
# (AttributeError, MemoryError, ...) is the server's problem even when other rows predict
INPUT_ERRORS = (ValueError, TypeError, ArithmeticError)


class RowsRefused(Exception):
    """The model cannot predict these rows, though it predicts others: the client's input is the cause."""

    def __init__(self, error: Exception) -> None:
        super().__init__(f"{type(error).__name__}: {str(error)[:500]}")
        self.error = error


class MicroBatcher:
    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch_size: int,
        max_delay: float,
        reference: np.ndarray | None = None,
    ) -> None:
        self._predict = predict
        self._max_rows = max_batch_size
        self._max_delay = max_delay
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future]] = asyncio.Queue()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._task: asyncio.Task | None = None
        self._predict_seconds = 0.0  # moving average of one predict call
        self._last_good = reference  # rows the model predicted: tells a refused input from a broken model
        self.inline_below = 0.001  # predict inline while a call takes less than this
        self.on_batch: Callable[[int], None] = lambda rows: None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        self._executor.shutdown(wait=False)

    async def predict(self, rows: np.ndarray) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((rows, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            size = batch[0][0].shape[0]
            deadline = loop.time() + self._max_delay
            while size < self._max_rows:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                batch.append(item)
                size += item[0].shape[0]
            try:
                matrix = np.vstack([rows for rows, _ in batch]) if len(batch) > 1 else batch[0][0]
                started = time.perf_counter()
                if self._predict_seconds < self.inline_below:
                    predictions = self._predict(matrix)
                else:
                    predictions = await loop.run_in_executor(self._executor, self._predict, matrix)
                self._predict_seconds = 0.8 * self._predict_seconds + 0.2 * (time.perf_counter() - started)
            except Exception as error:  # someone's rows, or the model: find out whose, answer the others
                try:
                    requests = [rows for rows, _ in batch]
                    if self._predict_seconds < self.inline_below:
                        outcomes = self._isolate(requests, error)
                    else:
                        outcomes = await loop.run_in_executor(self._executor, self._isolate, requests, error)
                except Exception as fault:  # never leave a request without an answer
                    outcomes = [fault] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                continue
            self._last_good = matrix
            self.on_batch(size)
            start = 0
            for rows, future in batch:
                end = start + rows.shape[0]
                if not future.done():
                    future.set_result(predictions[start:end])
                start = end

    def _isolate(self, requests: list[np.ndarray], error: Exception) -> list[np.ndarray | Exception]:
        """Each request's predictions, or its error, after the batch of all of them failed with `error`."""
        known_good = self._predicts_last_good()
        if known_good is False:  # the model predicts nothing now: a server fault for everyone, no bisecting
            return [error] * len(requests)
        outcomes: list[np.ndarray | Exception] = [error] * len(requests)

        def settle(indices: list[int], failure: Exception | None) -> None:
            if failure is None:
                try:
                    group = [requests[i] for i in indices]
                    predictions = self._predict(np.vstack(group) if len(group) > 1 else group[0])
                except Exception as caught:
                    failure = caught
                else:
                    start = 0
                    for i in indices:
                        end = start + requests[i].shape[0]
                        outcomes[i] = predictions[start:end]
                        start = end
                    return
            if len(indices) == 1:
                outcomes[indices[0]] = failure
                return
            middle = len(indices) // 2
            settle(indices[:middle], None)
            settle(indices[middle:], None)

        settle(list(range(len(requests))), error)
        failed = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, Exception)]
        if known_good or len(failed) < len(requests):  # the model predicts other rows: these rows are the cause
            for i in failed:
                if isinstance(outcomes[i], INPUT_ERRORS):
                    outcomes[i] = RowsRefused(outcomes[i])
        return outcomes

    def _predicts_last_good(self) -> bool | None:
        """Whether the model still predicts rows it predicted before (None: it never predicted any)."""
        if self._last_good is None:
            return None
        try:
            self._predict(self._last_good[:1])
        except Exception:
            return False
        return True
