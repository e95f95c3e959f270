"""Serving latency and throughput of the project's model server, REST and gRPC, on loopback.

    .venv/bin/python -m benchmarks.serving [--model-base-path output/serving_model/digits]

Latency: one image per request, sequential requests (p50 / p99). Throughput: batched requests from
several concurrent clients (images/s). Every loop is bounded in count; traffic stays on 127.0.0.1.
"""

import argparse
import concurrent.futures
import json
import os
import platform
import time
from typing import Callable, Dict, List

import numpy as np

from benchmarks import mnist
from models import features
from pipeline import configs
from serving.client import GrpcClient, RestClient
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
    return {"requests": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "mean_ms": round(float(ms.mean()), 2)}


def _throughput(call: Callable[[], object], batch: int, clients: int, requests_per_client: int) -> Dict[str, float]:
    call()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda _: [call() for _ in range(requests_per_client)], range(clients)))
    elapsed = time.perf_counter() - started
    images = batch * clients * requests_per_client
    return {"batch": batch, "clients": clients, "images": images, "seconds": round(elapsed, 2),
            "images_per_s": round(images / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-base-path", default=configs.serving_model_dir(configs.OUTPUT_ROOT))
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batches-per-client", type=int, default=10)
    args = parser.parse_args()

    images, _ = mnist.load(mnist.TEST, args.batch)
    server = ModelServer(args.model_base_path, configs.MODEL_NAME, rest_port=0, grpc_port=0).start()
    rest = RestClient(server.rest_url)
    grpc_client = GrpcClient(f"127.0.0.1:{server.grpc_port}")
    one, batch = images[:1], images
    try:
        results = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "model_version": server.store.get().version,
            "rest_one_image": _summary(_latencies(lambda: rest.classify_pixels(one), args.requests)),
            "grpc_one_image": _summary(_latencies(
                lambda: grpc_client.predict(features.IMAGES_SIGNATURE, {features.IMAGES_INPUT: one}), args.requests)),
            "rest_batched": _throughput(lambda: rest.classify_pixels(batch), args.batch, args.clients, args.batches_per_client),
            "grpc_batched": _throughput(
                lambda: grpc_client.predict(features.IMAGES_SIGNATURE, {features.IMAGES_INPUT: batch}),
                args.batch, args.clients, args.batches_per_client),
        }
    finally:
        grpc_client.close()
        server.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
