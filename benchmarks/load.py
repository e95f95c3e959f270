"""Load test of the model server: concurrent REST clients, a hot swap to a new version midway,
errors counted and the server's memory (RSS) watched.

    .venv/bin/python -m benchmarks.load --model output/serving_model/digits/<version> [--clients 16 --requests 5000]

The server runs as its own process (`digits serve`, loopback, a free port) so that its RSS is its own.
Each client keeps one HTTP/1.1 connection and sends one test digit per request; when half the
requests are done, a copy of the model is pushed as a new version (saved_model.pb last, as the Pusher
does), and the run checks that the server switched to it before the load ended.
"""

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

import numpy as np
import psutil

from benchmarks import mnist
from models import features
from pipeline import configs
from serving.model_store import copy_version

_REST_LINE = re.compile(r"REST\s+http://127\.0\.0\.1:(\d+)/")


class ServerProcess:
    """`digits serve` in a subprocess, on free loopback ports."""

    def __init__(self, base: str, poll_seconds: float = 0.5):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "serve", "--model-base-path", base, "--rest-port", "0",
             "--grpc-port", "0", "--poll-seconds", str(poll_seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=configs.PROJECT_ROOT,
        )
        self.output: List[str] = []
        self.port = self._wait_for_port()
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_for_port(self, seconds: float = 180.0) -> int:
        deadline = time.time() + seconds
        while time.time() < deadline:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                break
            self.output.append(line)
            match = _REST_LINE.search(line)
            if match:
                return int(match.group(1))
        self.stop()
        raise RuntimeError("model server did not start:\n" + "".join(self.output[-30:]))

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)

    def rss_mb(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def served_version(self) -> Optional[int]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", f"/v1/models/{configs.MODEL_NAME}")
            status = json.loads(conn.getresponse().read())["model_version_status"]
        finally:
            conn.close()
        available = [int(s["version"]) for s in status if s["state"] == "AVAILABLE"]
        return max(available) if available else None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run_load(model_dir: str, clients: int = 16, requests: int = 5000, work_dir: Optional[str] = None) -> Dict:
    """Serves `model_dir` as version 1, loads it with `clients` x keep-alive connections for
    `requests` single-digit predictions in total, and pushes version 2 halfway."""
    work_dir = work_dir or tempfile.mkdtemp(prefix="digits-load-")
    base = os.path.join(work_dir, configs.MODEL_NAME)
    copy_version(model_dir, base, 1)
    server = ServerProcess(base)
    images, _ = mnist.load(mnist.TEST, 256)
    bodies = [json.dumps({"signature_name": features.IMAGES_SIGNATURE, "instances": [img.tolist()]}).encode()
              for img in images]
    path = f"/v1/models/{configs.MODEL_NAME}:predict"
    lock = threading.Lock()
    done, errors, latencies = [0], [], []
    swapped = threading.Event()

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        for k in range(index, requests, clients):
            started = time.perf_counter()
            try:
                conn.request("POST", path, bodies[k % len(bodies)], {"Content-Type": "application/json"})
                response = conn.getresponse()
                answer = response.read()
                ok = response.status == 200 and len(json.loads(answer)["predictions"]) == 1
                problem = None if ok else f"HTTP {response.status}: {answer[:200]!r}"
            except Exception as e:  # pylint: disable=broad-except  (every failure is counted, none is fatal)
                problem = f"{type(e).__name__}: {e}"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            with lock:
                latencies.append(time.perf_counter() - started)
                done[0] += 1
                if problem:
                    errors.append(problem)
                if done[0] == requests // 2:
                    swapped.set()
        conn.close()

    try:
        for body in bodies[:20]:  # Warm-up: the first requests trace the model's functions.
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            conn.getresponse().read()
            conn.close()
        rss_before = server.rss_mb()
        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        swapped.wait()
        copy_version(model_dir, base, 2)
        rss_at_swap = server.rss_mb()
        swap_seen_at, rss_swapped = None, None
        while any(t.is_alive() for t in threads):
            if swap_seen_at is None and server.served_version() == 2:
                with lock:
                    swap_seen_at = done[0]
                rss_swapped = server.rss_mb()
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        rss_after = server.rss_mb()
        served_after = server.served_version()
    finally:
        server.stop()
    ms = np.array(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:5],
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "version_2_pushed_after_requests": requests // 2,
        "version_2_served_by_request": swap_seen_at,
        "served_version_after": served_after,
        "rss_mb_before": round(rss_before, 1),
        "rss_mb_at_swap": round(rss_at_swap, 1),
        "rss_mb_once_version_2_served": None if rss_swapped is None else round(rss_swapped, 1),
        "rss_mb_after": round(rss_after, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a pushed model version folder (has saved_model.pb)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="digits-load-") as work_dir:
        result = run_load(args.model, args.clients, args.requests, work_dir)
    print(json.dumps(result, indent=2))
    sys.exit(1 if result["errors"] else 0)


if __name__ == "__main__":
    main()
