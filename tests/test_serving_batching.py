"""`serving.batching`: TF Serving's server-side batching, on a signature that records its batches."""

import concurrent.futures
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from serving import config, errors
from serving.batching import BatchScheduler
from serving.servable import Servable, Signature


class _Recording:
    """A signature that doubles its input, refuses negative values, and records each batch's size."""

    def __init__(self, seconds: float = 0.0):
        self.sizes = []
        self.seconds = seconds

    def __call__(self, x):
        self.sizes.append(int(x.shape[0]))
        time.sleep(self.seconds)
        tf.debugging.assert_non_negative(x, message="no negative values")
        return {"y": x * 2}


def _servable(function) -> tuple:
    signature = Signature("s", "tensorflow/serving/predict", {"x": tf.TensorSpec([None, 2], tf.float32)}, function)
    return Servable("m", 1, {"s": signature}, {}), signature


def test_concurrent_requests_ride_together_and_each_gets_its_own_answer():
    recording = _Recording(seconds=0.02)
    servable, signature = _servable(recording)
    scheduler = BatchScheduler(config.BatchingOptions(max_batch_size=8, num_batch_threads=1, max_enqueued_batches=100))
    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            futures = list(
                pool.map(
                    lambda i: scheduler.submit(servable, signature, {"x": np.full((1, 2), i, np.float32)}, 1), range(40)
                )
            )
            answers = [f.result(timeout=30)["y"] for f in futures]
    finally:
        scheduler.stop()
    assert [a.tolist() for a in answers] == [[[2.0 * i, 2.0 * i]] for i in range(40)]
    assert sum(recording.sizes) == 40 and max(recording.sizes) > 1 and max(recording.sizes) <= 8


def test_one_bad_request_does_not_fail_the_others_in_its_batch():
    recording = _Recording(seconds=0.05)
    servable, signature = _servable(recording)
    scheduler = BatchScheduler(config.BatchingOptions(max_batch_size=8, num_batch_threads=1))
    try:
        first = scheduler.submit(servable, signature, {"x": np.ones((1, 2), np.float32)}, 1)  # Keeps the thread busy.
        batch = [scheduler.submit(servable, signature, {"x": np.full((1, 2), v, np.float32)}, 1) for v in (1, -1, 3)]
        assert first.result(timeout=30)["y"].tolist() == [[2, 2]]
        assert batch[0].result(timeout=30)["y"].tolist() == [[2, 2]]
        assert batch[2].result(timeout=30)["y"].tolist() == [[6, 6]]
        with pytest.raises(errors.InvalidArgument, match="no negative values"):
            batch[1].result(timeout=30)
    finally:
        scheduler.stop()
    assert max(recording.sizes) > 1 and recording.sizes[-3:] == [1, 1, 1]  # Together first, then each alone.


def test_a_full_queue_is_unavailable_and_an_oversized_request_invalid():
    release = threading.Event()
    servable, signature = _servable(lambda x: (release.wait(30), {"y": x})[1])
    scheduler = BatchScheduler(config.BatchingOptions(max_batch_size=2, num_batch_threads=1, max_enqueued_batches=2))
    try:
        with pytest.raises(errors.InvalidArgument, match="Task size 3 is larger than maximum input batch size 2"):
            scheduler.submit(servable, signature, {"x": np.ones((3, 2), np.float32)}, 3)
        running = scheduler.submit(servable, signature, {"x": np.ones((2, 2), np.float32)}, 2)
        time.sleep(0.2)  # The batch thread is now inside the model.
        queued = [scheduler.submit(servable, signature, {"x": np.ones((2, 2), np.float32)}, 2) for _ in range(2)]
        with pytest.raises(
            errors.Unavailable, match="The batch scheduling queue to which this task was submitted is full"
        ):
            scheduler.submit(servable, signature, {"x": np.ones((2, 2), np.float32)}, 2)
        release.set()
        assert all(f.result(timeout=30)["y"].shape == (2, 2) for f in [running, *queued])
    finally:
        release.set()
        scheduler.stop()


def test_batches_are_padded_to_an_allowed_size():
    recording = _Recording()
    servable, signature = _servable(recording)
    scheduler = BatchScheduler(config.BatchingOptions(max_batch_size=8, allowed_batch_sizes=(4, 8)))
    try:
        answer = scheduler.submit(servable, signature, {"x": np.ones((3, 2), np.float32)}, 3).result(timeout=30)
    finally:
        scheduler.stop()
    assert recording.sizes == [4] and answer["y"].shape == (3, 2)


def test_a_model_whose_answers_do_not_split_by_example_is_refused_as_tf_serving_refuses_it():
    """Inputs of an undeclared shape reach the model; a batch whose outputs cannot be split back per
    request is an error, never a misattributed answer."""
    servable, signature = _servable(lambda x: {"y": tf.reduce_sum(x, axis=0, keepdims=True)})
    scheduler = BatchScheduler(config.BatchingOptions(max_batch_size=8, num_batch_threads=1))
    try:
        future = scheduler.submit(servable, signature, {"x": np.ones((3, 2), np.float32)}, 3)
        with pytest.raises(errors.InvalidArgument, match="Batched output tensor's 0th dimension does not equal"):
            future.result(timeout=30)
    finally:
        scheduler.stop()
