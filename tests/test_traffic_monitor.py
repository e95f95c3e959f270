"""TrafficMonitor, the monitor as a pipeline component: logged traffic against a run's training digits,
written as TFX's statistics and anomalies artifacts; nothing logged, nothing compared."""

import os

import numpy as np
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.utils.anomalies_util import load_anomalies_binary
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils, path_utils

from components import traffic_monitor
from components.anomaly_gate import STATISTICS_FILE
from monitoring import shifts
from pipeline import configs, kubeflow_runner, mnist
from serving.config import RequestLogging, ServerOptions
from serving.request_log import PREDICT, Entry, RequestLogger
from tests import kfp_launcher


def _artifact(kind, uri: str):
    artifact = kind()
    artifact.uri = uri
    os.makedirs(uri, exist_ok=True)
    return artifact


def _run(smoke_run, tmp_path, prefix: str):
    _, run = smoke_run
    examples = _artifact(standard_artifacts.Examples, run.examples_uri)
    baseline = _artifact(standard_artifacts.Model, str(tmp_path / "baseline"))
    io_utils.copy_dir(run.pushed_to, path_utils.serving_model_path(baseline.uri))
    statistics = _artifact(standard_artifacts.ExampleStatistics, str(tmp_path / "statistics"))
    anomalies = _artifact(standard_artifacts.ExampleAnomalies, str(tmp_path / "anomalies"))
    executor = traffic_monitor.TrafficMonitor.EXECUTOR_SPEC.executor_class()
    executor.Do(
        {"examples": [examples], "baseline": [baseline]},
        {"statistics": [statistics], "anomalies": [anomalies]},
        {"request_log_prefix": prefix, "window": 300, "min_requests": 200},
    )
    return statistics, anomalies


@pytest.mark.component
def test_shifted_traffic_is_written_as_tfx_anomalies(smoke_run, tmp_path):
    prefix = str(tmp_path / "logs" / "requests")
    pixels, labels = mnist.load(mnist.TEST, 300)
    thick = shifts.thick(pixels, np.random.default_rng(0))
    answers = np.eye(10, dtype=np.float32)[labels]
    logger = RequestLogger(ServerOptions(), lambda name: None)
    for start in range(0, 300, 50):
        logger.add(
            Entry(
                PREDICT,
                "digits",
                1,
                "predict_images",
                RequestLogging(prefix, 1.0),
                {"images": thick[start : start + 50]},
                {"probabilities": answers[start : start + 50]},
            )
        )
    logger.stop()
    statistics, anomalies = _run(smoke_run, tmp_path, prefix)
    assert artifact_utils.decode_split_names(statistics.split_names) == ["traffic", "training"]
    window = tfdv.load_stats_binary(os.path.join(statistics.uri, "Split-traffic", STATISTICS_FILE))
    assert window.datasets[0].num_examples == 300
    found = load_anomalies_binary(os.path.join(anomalies.uri, "Split-traffic", "SchemaDiff.pb"))
    assert "stroke_thickness" in found.anomaly_info
    assert anomalies.get_int_custom_property(traffic_monitor.RETRAIN) == 1
    assert "stroke_thickness" in anomalies.get_string_custom_property(traffic_monitor.MOVED).split(",")


@pytest.mark.component
def test_without_logged_requests_nothing_is_compared(smoke_run, tmp_path):
    statistics, anomalies = _run(smoke_run, tmp_path, str(tmp_path / "nothing" / "requests"))
    assert anomalies.get_int_custom_property(traffic_monitor.RETRAIN) == 0
    assert not os.path.exists(os.path.join(statistics.uri, "Split-traffic"))


def test_request_logs_add_the_monitor_uncached_and_on_the_state_volume(tmp_path):
    """Only with request logs; never from a cache; on a cluster, it mounts the volume the logs are on."""
    prefix = f"{configs.KUBEFLOW_STATE_MOUNT}/request_logs/digits/requests"
    for logs in (None, prefix):
        settings = configs.settings("smoke", request_log_prefix=logs)
        path = kubeflow_runner.compile_pipeline(
            settings, str(tmp_path / "spec.yaml"), "kubeflow", configs.KUBEFLOW_PIPELINE_ROOT, "registry.example/d:1"
        )
        spec, _ = kfp_launcher.load(path)
        tasks = spec["root"]["dag"]["tasks"]
        assert ("TrafficMonitor" in tasks) == (logs is not None)
    assert not tasks["TrafficMonitor"].get("cachingOptions", {}).get("enableCache")
    assert "TrafficMonitor" in kubeflow_runner.state_tasks(spec)
    parameters = tasks["TrafficMonitor"]["inputs"]["parameters"]
    assert parameters["request_log_prefix"]["runtimeValue"]["constant"] == prefix
