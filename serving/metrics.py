"""Prometheus metrics under TF Serving's names, so that dashboards and alerts written for TF Serving
work unchanged: `:tensorflow:serving:request_count{model_name, status}` and the histogram
`:tensorflow:serving:request_latency{model_name, API, entrypoint}` in microseconds, with TF Serving's
bucket limits. Requests are counted whatever their outcome; latency is recorded for successes only.

prometheus-client writes a counter's series as `<name>_total`; TF Serving writes `<name>`. The request
count is therefore exposed under TF Serving's exact series name as an untyped metric (Prometheus
stores and rates it the same way).
"""

import threading
from typing import Dict, Iterator, Tuple

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
REQUEST_LOG_DROPPED = "digits_serving_request_log_dropped"
"""Sampled requests not logged because the log writer was behind (TF Serving has no such metric)."""
LATENCY_BUCKETS_MICROS = tuple(float(f"{10 * 1.8**i:.6g}") for i in range(33))
"""TF Serving's `Exponential(10, 1.8, 33)` bucket limits (10 µs to about 25 minutes)."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _RequestCounts(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Dict[Tuple[str, str], int] = {}

    def increment(self, model_name: str, status: str) -> None:
        with self._lock:
            self._counts[(model_name, status)] = self._counts.get((model_name, status), 0) + 1

    def collect(self) -> Iterator[Metric]:
        metric = Metric(REQUEST_COUNT, "The total number of requests.", "unknown")
        with self._lock:
            counts = dict(self._counts)
        for (model_name, status), count in sorted(counts.items()):
            metric.add_sample(REQUEST_COUNT, {"model_name": model_name, "status": status}, count)
        yield metric


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # `_created` series are prometheus-client's own; TF Serving has none.
        self.registry = CollectorRegistry()
        self._counts = _RequestCounts()
        self.registry.register(self._counts)
        self._latency = Histogram(
            REQUEST_LATENCY,
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint"],
            buckets=LATENCY_BUCKETS_MICROS,
            registry=self.registry,
        )

        self._log_dropped = Counter(
            REQUEST_LOG_DROPPED,
            "Sampled requests not logged because the request log writer was behind.",
            ["model_name"],
            registry=self.registry,
        )

    def request_log_dropped(self, model_name: str) -> None:
        self._log_dropped.labels(model_name).inc()

    def record(self, model_name: str, api: str, entrypoint: str, code: grpc.StatusCode, seconds: float) -> None:
        """One request: `api` as TF Serving names it (REST: predict/classify/regress/""; gRPC: Predict...),
        `entrypoint` REST or GRPC."""
        self._counts.increment(model_name, code.name)
        if code == grpc.StatusCode.OK:
            self._latency.labels(model_name, api, entrypoint).observe(seconds * 1e6)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
