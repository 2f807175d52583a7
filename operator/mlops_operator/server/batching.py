"""Adaptive micro-batching: concurrent requests share one `predict` call.

A scikit-learn `predict` costs about the same for 1 row as for 64, so under load the batcher takes
what is waiting (up to `max_batch_size` rows), waits at most `max_delay` for more, and runs one call.
Slow models (a forest: ~10 ms) predict in a worker thread so the event loop keeps accepting requests;
fast ones (a linear model: ~0.1 ms) predict inline, where a thread hop would cost more than the call.
A lone request is never delayed by more than `max_delay`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable

import numpy as np


class MicroBatcher:
    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], *, max_batch_size: int, max_delay: float) -> None:
        self._predict = predict
        self._max_rows = max_batch_size
        self._max_delay = max_delay
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future]] = asyncio.Queue()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._task: asyncio.Task | None = None
        self._predict_seconds = 0.0  # moving average of one predict call
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
            matrix = np.vstack([rows for rows, _ in batch]) if len(batch) > 1 else batch[0][0]
            try:
                started = time.perf_counter()
                if self._predict_seconds < self.inline_below:
                    predictions = self._predict(matrix)
                else:
                    predictions = await loop.run_in_executor(self._executor, self._predict, matrix)
                self._predict_seconds = 0.8 * self._predict_seconds + 0.2 * (time.perf_counter() - started)
            except Exception as error:  # the model failed: every waiting request gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.on_batch(size)
            start = 0
            for rows, future in batch:
                end = start + rows.shape[0]
                if not future.done():
                    future.set_result(predictions[start:end])
                start = end
