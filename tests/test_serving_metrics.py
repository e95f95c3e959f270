"""`serving.metrics`: Prometheus metrics under TF Serving's names and bucket limits."""

import grpc

from serving.metrics import Metrics


def test_metrics_use_tf_servings_names():
    metrics = Metrics()
    metrics.record("digits", "predict", "REST", grpc.StatusCode.OK, 0.002)
    metrics.record("digits", "predict", "REST", grpc.StatusCode.INVALID_ARGUMENT, 0.001)
    text = metrics.exposition().decode()
    assert ':tensorflow:serving:request_count{model_name="digits",status="OK"} 1.0' in text
    assert ':tensorflow:serving:request_count{model_name="digits",status="INVALID_ARGUMENT"} 1.0' in text
    bucket = (
        ':tensorflow:serving:request_latency_bucket{API="predict",entrypoint="REST",le="%s",model_name="digits"} %s'
    )
    assert bucket % ("1983.59", "0.0") in text and bucket % ("3570.47", "1.0") in text  # TF Serving's limits, in µs
    assert ':tensorflow:serving:request_latency_count{API="predict",entrypoint="REST",model_name="digits"} 1.0' in text
    assert "_created" not in text
