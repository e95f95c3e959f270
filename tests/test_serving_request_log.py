"""`serving.request_log`: TF Serving's request logging (sampling, PredictionLog records), size and age
rotation, the disk bound, flushing on shutdown, and a slow disk never slowing a request."""

import dataclasses
import os
import random
import re
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from serving import config, request_log
from serving.config import RequestLogging, ServerOptions
from serving.request_log import Entry, RequestLogger


def _entry(prefix: str, value: float = 1.0, rate: float = 1.0, kind: str = request_log.PREDICT) -> Entry:
    request = {"images": np.full((1, 28, 28), value, np.float32)}
    return Entry(kind, "digits", 3, "predict_images", RequestLogging(prefix, rate), request, {"digit": np.array([7])})


def _records(prefix: str):
    return [
        prediction_log_pb2.PredictionLog.FromString(r.numpy())
        for r in tf.data.TFRecordDataset(request_log.closed_files(prefix))
    ]


def _logger(**options) -> RequestLogger:
    drops = []
    logger = RequestLogger(ServerOptions(**options), drops.append)
    logger.drops = drops  # type: ignore[attr-defined]
    return logger


def test_logging_config_parsed_and_checked(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(
        'model_config_list { config { name: "digits" base_path: "/models/digits" logging_config {\n'
        f'  log_collector_config {{ type: "tfrecord" filename_prefix: "{tmp_path}/logs/digits" }}\n'
        "  sampling_config { sampling_rate: 0.25 } } } }"
    )
    (model,) = config.read_model_config(str(path))
    assert model.logging == RequestLogging(f"{tmp_path}/logs/digits", 0.25)
    for collector, rate, message in [
        ('type: "kafka" filename_prefix: "/x"', 1.0, "no log collector of type 'kafka'"),
        ('filename_prefix: ""', 1.0, "log_collector_config has no filename_prefix"),
        ('filename_prefix: "/x"', 1.5, "sampling_rate 1.5 is outside [0, 1]"),
    ]:
        path.write_text(
            'model_config_list { config { name: "m" base_path: "/m" logging_config { '
            f"log_collector_config {{ {collector} }} sampling_config {{ sampling_rate: {rate} }} }} }} }}"
        )
        with pytest.raises(config.ConfigError, match=re.escape(message)) as error:
            config.read_model_config(str(path))
        assert str(error.value).startswith(f"{path}: model m: logging_config: ")


def test_sampling_is_uniform_at_the_configured_rate():
    random.seed(0)
    assert not any(RequestLogger.sampled(None) for _ in range(100))
    assert not any(RequestLogger.sampled(RequestLogging("/x", 0.0)) for _ in range(1000))
    assert all(RequestLogger.sampled(RequestLogging("/x", 1.0)) for _ in range(1000))
    share = np.mean([RequestLogger.sampled(RequestLogging("/x", 0.1)) for _ in range(20_000)])
    assert 0.09 < share < 0.11


def test_records_are_tf_servings_prediction_logs(tmp_path):
    prefix = str(tmp_path / "digits")
    logger = _logger()
    example = tf.train.Example()
    example.features.feature["image"].int64_list.value.extend([0] * 784)
    logger.add(_entry(prefix, 5.0, rate=0.5))
    logger.add(
        Entry(
            request_log.CLASSIFY,
            "digits",
            3,
            "classification",
            RequestLogging(prefix, 0.5),
            [example.SerializeToString()],
            {"classes": np.array([[b"0", b"1"]]), "scores": np.array([[0.25, 0.75]], np.float32)},
        )
    )
    logger.stop()
    predict, classify = _records(prefix)
    assert predict.log_metadata.model_spec.name == "digits" and predict.log_metadata.model_spec.version.value == 3
    assert predict.log_metadata.model_spec.signature_name == "predict_images"
    assert predict.log_metadata.sampling_config.sampling_rate == 0.5
    assert tf.make_ndarray(predict.predict_log.request.inputs["images"]).tolist() == np.full((1, 28, 28), 5.0).tolist()
    assert tf.make_ndarray(predict.predict_log.response.outputs["digit"]).tolist() == [7]
    assert classify.classify_log.request.input.example_list.examples[0] == example
    assert [c.label for c in classify.classify_log.response.result.classifications[0].classes] == ["0", "1"]


def test_files_rotate_by_size_and_only_whole_files_are_seen(tmp_path):
    prefix = str(tmp_path / "logs" / "digits")
    logger = _logger(request_log_file_bytes=10_000)  # about three records a file
    for i in range(20):
        logger.add(_entry(prefix, float(i)))
    logger.stop()
    files = request_log.closed_files(prefix)
    assert len(files) >= 5 and not [f for f in os.listdir(tmp_path / "logs") if f.endswith(request_log.IN_PROGRESS)]
    values = [tf.make_ndarray(r.predict_log.request.inputs["images"])[0, 0, 0] for r in _records(prefix)]
    assert values == list(range(20))  # nothing lost, in order across files


def test_files_close_after_their_age_so_readers_see_recent_requests(tmp_path):
    prefix = str(tmp_path / "digits")
    logger = _logger(request_log_file_seconds=0.2)
    logger.add(_entry(prefix))
    deadline = time.monotonic() + 10
    while not request_log.closed_files(prefix) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_records(prefix)) == 1  # closed while the server still runs
    logger.add(_entry(prefix))
    logger.stop()
    assert len(_records(prefix)) == 2


def test_disk_use_is_bounded_by_deleting_the_oldest_files(tmp_path):
    prefix = str(tmp_path / "digits")
    logger = _logger(request_log_file_bytes=3_000, request_log_max_bytes=20_000)
    for i in range(60):
        logger.add(_entry(prefix, float(i)))
    logger.stop()
    files = request_log.closed_files(prefix)
    assert sum(os.path.getsize(f) for f in files) <= 20_000
    values = [tf.make_ndarray(r.predict_log.request.inputs["images"])[0, 0, 0] for r in _records(prefix)]
    assert values == list(range(60 - len(values), 60))  # the newest requests are the ones kept


def test_a_slow_disk_drops_records_instead_of_slowing_requests(tmp_path, monkeypatch):
    prefix = str(tmp_path / "digits")
    release = threading.Event()
    write = request_log._File.write
    monkeypatch.setattr(request_log._File, "write", lambda self, record: (release.wait(), write(self, record)))
    logger = _logger(request_log_queue_bytes=5 * _entry(prefix).nbytes)
    started = time.perf_counter()
    for _ in range(50):
        logger.add(_entry(prefix))
    elapsed = time.perf_counter() - started
    release.set()
    logger.stop()
    assert elapsed < 0.5
    kept = len(_records(prefix))
    assert 5 <= kept <= 6 and len(logger.drops) == 50 - kept  # type: ignore[attr-defined]
    assert set(logger.drops) == {"digits"}  # type: ignore[attr-defined]


def test_shutdown_writes_everything_queued_then_logs_nothing_more(tmp_path):
    prefix = str(tmp_path / "digits")
    logger = _logger()
    for i in range(200):
        logger.add(_entry(prefix, float(i)))
    logger.stop()
    assert len(_records(prefix)) == 200
    logger.add(_entry(prefix))
    assert len(_records(prefix)) == 200 and logger.drops == ["digits"]  # type: ignore[attr-defined]


def test_an_unwritable_prefix_is_logged_and_does_not_stop_other_models(tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("")
    good = str(tmp_path / "digits")
    logger = _logger()
    logger.add(dataclasses.replace(_entry(good), config=RequestLogging(str(blocked / "sub" / "m"), 1.0)))
    logger.add(_entry(good))
    logger.stop()
    assert len(_records(good)) == 1
    assert "Could not log a request to" in caplog.text
