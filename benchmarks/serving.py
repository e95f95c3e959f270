"""Serving latency and throughput of the project's model server, REST and gRPC, on loopback, beside the
same model called in-process; and the first request to a new version with and without warmup.

    .venv/bin/python -m benchmarks.serving [--output output] [--label LABEL]

- Latency: one image per request, sequential requests (p50 / p99), REST, gRPC and in-process.
- Throughput: batched requests (128 images) from several concurrent clients (images/s), REST, gRPC
  and in-process.
- First request: a version freshly loaded by a server with `--enable_model_warmup true` or `false`,
  timed on its first predict request (one image), each signature in turn.

Every loop is bounded in count; traffic stays on 127.0.0.1. Recorded under the topic "serving": "REST",
"gRPC" and "in-process" (p50 and p99 of one image, images per second batched), and "first request
after warmup" and "without warmup" (milliseconds per signature).
"""

import argparse
import concurrent.futures
import contextlib
import os
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np

from benchmarks import report, runs
from models import features
from pipeline import mnist
from serving.client import GrpcClient, RestClient
from serving.config import ServerOptions, single_model
from serving.model_store import publish_version
from serving.server import ModelServer


def _latencies(call: Callable[[], object], requests: int) -> List[float]:
    for _ in range(20):  # Warm-up: first calls trace and allocate.
        call()
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def _summary(times: List[float]) -> Dict[str, float]:
    ms = np.array(times) * 1000
    return {
        "requests": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
    }


def _throughput(call: Callable[[], object], batch: int, clients: int, requests_per_client: int) -> Dict[str, float]:
    call()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda _: [call() for _ in range(requests_per_client)], range(clients)))
    elapsed = time.perf_counter() - started
    images = batch * clients * requests_per_client
    return {
        "batch": batch,
        "clients": clients,
        "images": images,
        "seconds": round(elapsed, 2),
        "images_per_s": round(images / elapsed, 1),
    }


@contextlib.contextmanager
def served(model_dir: str, **options: Any) -> Iterator[ModelServer]:
    """`model_dir` served by the project's server as version 1 of the model, from a temporary folder, REST on
    a free loopback port; `options` are further ServerOptions (gRPC's `port`, warmup)."""
    with tempfile.TemporaryDirectory() as work:
        base = os.path.join(work, features.MODEL_NAME)
        publish_version(model_dir, base, 1)
        server = ModelServer(
            ServerOptions(models=single_model(features.MODEL_NAME, base), rest_api_port=0, **options)
        ).start()
        try:
            yield server
        finally:
            server.stop()


def first_requests(model_dir: str, warmup: bool, image: np.ndarray) -> Dict[str, float]:
    """Milliseconds of the first request to each signature of a version that was just loaded."""
    with served(model_dir, port=None, enable_model_warmup=warmup) as server:
        client = RestClient(server.rest_url)
        png = [mnist_png(image)]
        calls = {
            features.IMAGES_SIGNATURE: lambda: client.classify_pixels(image[None]),
            features.IMAGE_BYTES_SIGNATURE: lambda: client.classify_pictures(png),
            features.CLASSIFY_SIGNATURE: lambda: client.classify(
                [{features.IMAGE_KEY: image.astype(int).ravel().tolist()}]
            ),
        }
        times = {}
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name] = round((time.perf_counter() - started) * 1000, 1)
    return times


def mnist_png(image: np.ndarray) -> bytes:
    import tensorflow as tf

    return tf.io.encode_png(tf.constant(image.astype(np.uint8)[..., None])).numpy()


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    runs.add_output_flag(parser)
    runs.add_label_flag(parser)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batches-per-client", type=int, default=10)
    args = parser.parse_args(argv)
    import tensorflow as tf

    model = runs.pushed_model(args.output)
    images, _ = mnist.load(mnist.TEST, args.batch)
    one, batch = images[:1], images
    signature = tf.saved_model.load(model).signatures[features.IMAGES_SIGNATURE]

    def in_process(pixels: np.ndarray) -> object:
        return signature(**{features.IMAGES_INPUT: tf.constant(pixels)})

    with served(model, port=0) as server:
        rest = RestClient(server.rest_url)
        grpc_client = GrpcClient(f"127.0.0.1:{server.grpc_port}")
        try:
            results = {
                "in_process_one_image": _summary(_latencies(lambda: in_process(one), args.requests)),
                "rest_one_image": _summary(_latencies(lambda: rest.classify_pixels(one), args.requests)),
                "grpc_one_image": _summary(
                    _latencies(
                        lambda: grpc_client.predict(features.IMAGES_SIGNATURE, {features.IMAGES_INPUT: one}),
                        args.requests,
                    )
                ),
                "in_process_batched": _throughput(
                    lambda: in_process(batch), args.batch, args.clients, args.batches_per_client
                ),
                "rest_batched": _throughput(
                    lambda: rest.classify_pixels(batch), args.batch, args.clients, args.batches_per_client
                ),
                "grpc_batched": _throughput(
                    lambda: grpc_client.predict(features.IMAGES_SIGNATURE, {features.IMAGES_INPUT: batch}),
                    args.batch,
                    args.clients,
                    args.batches_per_client,
                ),
            }
        finally:
            grpc_client.close()
    results["first_request_ms_with_warmup"] = first_requests(model, True, images[0])
    results["first_request_ms_without_warmup"] = first_requests(model, False, images[0])
    measurements = {
        runs.labelled(name, args.label): {
            "p50_ms": results[f"{way}_one_image"]["p50_ms"],
            "p99_ms": results[f"{way}_one_image"]["p99_ms"],
            "batched_images_per_s": results[f"{way}_batched"]["images_per_s"],
        }
        for way, name in (("rest", "REST"), ("grpc", "gRPC"), ("in_process", "in-process"))
    }
    for warmup, name in (("with", "first request after warmup"), ("without", "first request without warmup")):
        first = results[f"first_request_ms_{warmup}_warmup"]
        measurements[runs.labelled(name, args.label)] = {f"{signature}_ms": ms for signature, ms in first.items()}
    return report.recorded("serving", measurements, "benchmarks.serving", argv, {"model": model, **results})


if __name__ == "__main__":
    main()
