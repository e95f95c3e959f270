"""Running signatures: directly on a thread pool, or batched across concurrent requests as TF Serving's
`--enable_batching` does.

Batching follows TF Serving's shared batch scheduler: one queue per (version, signature, input shapes);
requests join the queue's open batch up to `max_batch_size` examples; a batch runs when a batch thread
is free and the batch is full or its oldest request has waited `batch_timeout_micros` (so with the
default timeout of 0, requests that arrive while the model is busy ride together in the next batch);
at most `max_enqueued_batches` batches wait per queue, beyond which requests are refused as UNAVAILABLE.
A batch is padded up to the next of `allowed_batch_sizes`, if given, by repeating its first example.
"""

import collections
import concurrent.futures
import dataclasses
import logging
import threading
import time
from typing import Deque, Dict, List, Optional, Tuple

import numpy as np

from serving.config import BatchingOptions
from serving.errors import InvalidArgument, Unavailable
from serving.servable import Servable, Signature

log = logging.getLogger(__name__)

Arrays = Dict[str, np.ndarray]


class DirectRunner:
    """Each request's signature call on a pool of threads (TensorFlow releases the GIL while it runs)."""

    def __init__(self, threads: int):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="model")

    def submit(
        self, servable: Servable, signature: Signature, arrays: Arrays, size: int
    ) -> "concurrent.futures.Future[Arrays]":
        del servable, size  # Unbatched: nothing to group by.
        return self._pool.submit(signature.run, arrays)

    def stop(self) -> None:
        self._pool.shutdown(wait=True)


@dataclasses.dataclass
class _Task:
    arrays: Arrays
    size: int
    future: "concurrent.futures.Future[Arrays]"
    arrived: float


@dataclasses.dataclass
class _Batch:
    tasks: List[_Task] = dataclasses.field(default_factory=list)
    size: int = 0


class _Queue:
    def __init__(self, signature: Signature):
        self.signature = signature
        self.batches: Deque[_Batch] = collections.deque([_Batch()])
        """Closed batches first; the last one is open (may still grow)."""


QueueKey = Tuple[str, int, str, Tuple[Tuple[str, Tuple[int, ...], str], ...]]


class BatchScheduler:
    """TF Serving's batching, shared by every model and signature."""

    def __init__(self, options: BatchingOptions):
        self.options = options
        self._queues: Dict[QueueKey, _Queue] = {}
        self._condition = threading.Condition()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
            for i in range(options.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self, servable: Servable, signature: Signature, arrays: Arrays, size: int
    ) -> "concurrent.futures.Future[Arrays]":
        if size > self.options.max_batch_size:
            raise InvalidArgument(
                f"Task size {size} is larger than maximum input batch size {self.options.max_batch_size}"
            )
        shapes = tuple(sorted((name, a.shape[1:], a.dtype.str) for name, a in arrays.items()))
        key = (servable.model_name, servable.version, signature.name, shapes)
        future: concurrent.futures.Future[Arrays] = concurrent.futures.Future()
        with self._condition:
            if self._stopping:
                raise Unavailable("The server is shutting down")
            queue = self._queues.setdefault(key, _Queue(signature))
            open_batch = queue.batches[-1]
            if open_batch.size + size > self.options.max_batch_size:
                if len(queue.batches) >= self.options.max_enqueued_batches:
                    raise Unavailable(
                        "The batch scheduling queue to which this task was submitted is full; "
                        f"currently {len(queue.batches)} batches enqueued and max_enqueued_batches "
                        f"is {self.options.max_enqueued_batches}"
                    )
                open_batch = _Batch()
                queue.batches.append(open_batch)
            open_batch.tasks.append(_Task(arrays, size, future, time.monotonic()))
            open_batch.size += size
            self._condition.notify()
        return future

    def _ready(self, now: float) -> Tuple[Optional[Tuple[Signature, _Batch]], float]:
        """The batch to run now (a closed one first, then the open batch that is full or old enough),
        or how long to wait for one."""
        timeout = self.options.batch_timeout_micros / 1e6
        wait = 3600.0
        for key, queue in list(self._queues.items()):
            first = queue.batches[0]
            if not first.tasks:
                if len(queue.batches) == 1:
                    del self._queues[key]  # Idle queue: forgotten (new versions make new ones).
                continue
            due = first.tasks[0].arrived + timeout
            if len(queue.batches) > 1 or first.size >= self.options.max_batch_size or due <= now:
                queue.batches.popleft()
                if not queue.batches:
                    queue.batches.append(_Batch())
                return (queue.signature, first), 0.0
            wait = min(wait, due - now)
        return None, wait

    def _work(self) -> None:
        while True:
            with self._condition:
                while True:
                    if self._stopping and not self._queues:
                        return
                    chosen, wait = self._ready(time.monotonic())
                    if chosen:
                        break
                    if self._stopping:
                        return
                    self._condition.wait(timeout=wait)
            self._run(*chosen)

    def _padded_size(self, size: int) -> int:
        return next((s for s in self.options.allowed_batch_sizes if s >= size), size)

    def _run(self, signature: Signature, batch: _Batch) -> None:
        tasks = [t for t in batch.tasks if t.future.set_running_or_notify_cancel()]
        if not tasks:
            return
        try:
            self._run_together(signature, tasks)
        except InvalidArgument:
            # One request's bad values fail the whole batch in the model: run each on its own, so
            # that only the bad ones get the error.
            for task in tasks:
                try:
                    self._run_together(signature, [task])
                except Exception as e:
                    task.future.set_exception(e)
        except Exception as e:
            for task in tasks:
                task.future.set_exception(e)

    def _run_together(self, signature: Signature, tasks: List[_Task]) -> None:
        size = sum(t.size for t in tasks)
        merged = {name: np.concatenate([t.arrays[name] for t in tasks]) for name in tasks[0].arrays}
        padding = self._padded_size(size) - size
        if padding:
            merged = {n: np.concatenate([a, np.repeat(a[:1], padding, axis=0)]) for n, a in merged.items()}
        outputs = signature.run(merged)
        padded = size + padding
        for name, value in outputs.items():
            if value.ndim == 0 or value.shape[0] != padded:
                raise InvalidArgument(
                    f"Batched output tensor's 0th dimension does not equal the sum of the 0th dimension "
                    f"sizes of the input tensors (output '{name}' has shape {list(value.shape)}, the batch {padded})"
                )
        start = 0
        for task in tasks:
            task.future.set_result({k: v[start : start + task.size] for k, v in outputs.items()})
            start += task.size

    def stop(self) -> None:
        """Runs what is queued, then ends the batch threads."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
