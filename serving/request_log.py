"""Request logging as TF Serving configures it (`ModelConfig.logging_config`): a sampled request and its
answer become one `PredictionLog` (PredictLog, ClassifyLog or RegressLog, with the model's name, the
version and signature that answered, and the sampling rate) in a TFRecord file.

A request only decides whether it is sampled and, once answered, puts its arrays on a queue bounded in
bytes (`request_log_queue_bytes`); one writer thread per server builds the protos and writes them, so
that neither the encoding nor a slow disk is ever on a request's path: when the queue is full the record
is dropped and counted. Files are written as `<prefix>-<start time>-<pid>-<n>.tfrecord.inprogress`,
renamed to `.tfrecord` when closed (at `--request_log_file_bytes`, after `--request_log_file_seconds`,
and on shutdown), so a reader only ever sees whole files; the oldest closed files of a prefix are
deleted beyond `--request_log_max_bytes`.
"""

import dataclasses
import glob
import logging
import os
import queue
import random
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    input_pb2,
    logging_pb2,
    prediction_log_pb2,
)
from tensorflow_serving.config import logging_config_pb2

from serving.config import RequestLogging, ServerOptions
from serving.servable import classification_result

log = logging.getLogger(__name__)

Arrays = Dict[str, np.ndarray]
SUFFIX = ".tfrecord"
IN_PROGRESS = ".inprogress"
PREDICT, CLASSIFY, REGRESS = "predict", "classify", "regress"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One sampled request, answered: what the writer turns into a PredictionLog."""

    kind: str
    """PREDICT, CLASSIFY or REGRESS."""
    model_name: str
    version: int
    signature_name: str
    config: RequestLogging
    request: Union[Arrays, List[bytes]]
    """Predict's input arrays; Classify's and Regress's serialized tf.Examples."""
    outputs: Arrays

    @property
    def nbytes(self) -> int:
        """What the entry holds in memory, near enough: its arrays' and serialized examples' bytes."""
        arrays = [*(self.request.values() if isinstance(self.request, dict) else []), *self.outputs.values()]
        examples = self.request if isinstance(self.request, list) else []
        return sum(np.asarray(a).nbytes for a in arrays) + sum(len(e) for e in examples)


def prediction_log(entry: Entry) -> prediction_log_pb2.PredictionLog:
    """The entry as TF Serving's `PredictionLog`."""
    record = prediction_log_pb2.PredictionLog(
        log_metadata=logging_pb2.LogMetadata(
            sampling_config=logging_config_pb2.SamplingConfig(sampling_rate=entry.config.sampling_rate)
        )
    )
    spec = record.log_metadata.model_spec
    spec.name, spec.signature_name = entry.model_name, entry.signature_name
    spec.version.value = entry.version
    if entry.kind == PREDICT:
        assert isinstance(entry.request, dict)
        predict = record.predict_log
        predict.request.model_spec.CopyFrom(spec)
        predict.response.model_spec.CopyFrom(spec)
        for name, array in entry.request.items():
            predict.request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
        for name, array in entry.outputs.items():
            predict.response.outputs[name].CopyFrom(tf.make_tensor_proto(array))
        return record
    examples = input_pb2.Input(
        example_list=input_pb2.ExampleList(examples=[tf.train.Example.FromString(e) for e in entry.request])
    )
    if entry.kind == CLASSIFY:
        record.classify_log.request.model_spec.CopyFrom(spec)
        record.classify_log.request.input.CopyFrom(examples)
        record.classify_log.response.model_spec.CopyFrom(spec)
        record.classify_log.response.result.CopyFrom(classification_result(entry.outputs))
        return record
    record.regress_log.request.model_spec.CopyFrom(spec)
    record.regress_log.request.input.CopyFrom(examples)
    record.regress_log.response.model_spec.CopyFrom(spec)
    for value in np.asarray(next(iter(entry.outputs.values()))).reshape(-1):
        record.regress_log.response.result.regressions.add(value=float(value))
    return record


class _File:
    """The open log file of one prefix."""

    def __init__(self, prefix: str, number: int):
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self.path = f"{prefix}-{stamp}-{os.getpid()}-{number:05d}{SUFFIX}"
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self.writer = tf.io.TFRecordWriter(self.path + IN_PROGRESS)
        self.opened = time.monotonic()
        self.bytes = 0

    def write(self, record: bytes) -> None:
        self.writer.write(record)
        self.bytes += len(record) + 16  # TFRecord framing: length, its CRC, the data's CRC.

    def close(self) -> None:
        self.writer.close()
        os.replace(self.path + IN_PROGRESS, self.path)


def closed_files(prefix: str) -> List[str]:
    """A prefix's complete log files, oldest first (their names start with their start time)."""
    return sorted(glob.glob(f"{glob.escape(prefix)}-*{SUFFIX}"))


class RequestLogger:
    """The server's request logs: `sampled` and `add` on the request path, one writer thread behind."""

    def __init__(self, options: ServerOptions, on_drop: Callable[[str], None]):
        self.options = options
        self._queue: queue.Queue[Tuple[Entry, int]] = queue.Queue()
        """Entries for the writer, with their `nbytes` (counted in `_queued_bytes` until taken)."""
        self._queued_bytes = 0
        self._files: Dict[str, _File] = {}
        self._opened = 0
        self._on_drop = on_drop
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @staticmethod
    def sampled(config: Optional[RequestLogging]) -> bool:
        """Whether this request is logged (TF Serving's uniform sampler)."""
        return config is not None and random.random() < config.sampling_rate

    def add(self, entry: Entry) -> None:
        """Queues an answered request for the writer; drops it (counted) when the writer is behind or
        the server is stopping."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopping.is_set():
                    self._thread = threading.Thread(target=self._write_all, name="request-log", daemon=True)
                    self._thread.start()
        size = entry.nbytes
        with self._lock:
            if not self._stopping.is_set() and self._queued_bytes + size <= self.options.request_log_queue_bytes:
                self._queued_bytes += size
                self._queue.put_nowait((entry, size))
                return
        self._on_drop(entry.model_name)

    def _write_all(self) -> None:
        while True:
            try:
                entry: Optional[Entry]
                entry, size = self._queue.get(timeout=0.5)
            except queue.Empty:
                entry = None
            if entry is not None:
                with self._lock:
                    self._queued_bytes -= size
                try:
                    self._write(entry)
                except Exception:  # A full disk or an odd answer must not end logging for everyone.
                    log.exception("Could not log a request to %s", entry.config.filename_prefix)
            if self._queue.empty():
                stopping = self._stopping.is_set()
                self._close_due(everything=stopping)
                if stopping:
                    return
                for file in self._files.values():
                    file.writer.flush()

    def _write(self, entry: Entry) -> None:
        prefix = entry.config.filename_prefix
        file = self._files.get(prefix)
        if file is None:
            self._opened += 1
            file = self._files[prefix] = _File(prefix, self._opened)
        file.write(prediction_log(entry).SerializeToString())
        if file.bytes >= self.options.request_log_file_bytes:
            self._close(prefix)

    def _close_due(self, everything: bool) -> None:
        now = time.monotonic()
        for prefix, file in list(self._files.items()):
            if everything or now - file.opened >= self.options.request_log_file_seconds:
                self._close(prefix)

    def _close(self, prefix: str) -> None:
        """Closes the prefix's file, then deletes its oldest files while they use too much disk."""
        self._files.pop(prefix).close()
        files = closed_files(prefix)
        sizes = [os.path.getsize(f) for f in files]
        while len(files) > 1 and sum(sizes) > self.options.request_log_max_bytes:
            os.remove(files.pop(0))
            sizes.pop(0)

    def stop(self) -> None:
        """Writes what is queued, closes every file, and stops the writer (requests answered from now
        on are not logged)."""
        with self._lock:
            self._stopping.set()
            thread = self._thread
        if thread is not None:
            thread.join()
