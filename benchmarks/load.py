"""Load test of the model server: concurrent keep-alive REST clients, hot swaps to a *different* model
while they run, every answer checked against the version that should have given it, and the server's
memory (RSS) watched.

    .venv/bin/python -m benchmarks.load [--output output] [--clients 16] [--requests 5000] [--swaps 1]
                                        [--runs 10] [--no-batching | --compare | --logging]

The server runs as its own process (`digits serve`, loopback, free ports) so that its RSS is its own,
with TF Serving's default policy (one version) and, unless `--no-batching`, server-side batching with
the deploy files' parameters. Version 1 is the pipeline's pushed model; the swaps push, in turn, an untrained
copy of the CNN and the pushed model again (saved_model.pb last, as the Pusher does). Each client sends
one test digit per request. A request is an error if it fails, or if its answer is not the one of the
version serving when it was sent (a request in flight across a swap may get either). Each run is
recorded under the topic "load", named after the swaps ("no swap", "one swap halfway", "6 swaps"),
and the clients and batching when they are not the defaults: requests per second, latency, errors,
memory growth, and the server's CPU per request, by thread (its per-swap log, first errors and CPU
by thread are printed with it).

Where the server's CPU goes is read from /proc per thread, each thread named by py-spy
(`py-spy dump`): the REST event loop (`rest`), gRPC's pool (`grpc`), the batching threads (`batch`),
the unbatched model pool (`model`), and TensorFlow's own threads (no Python name), where the model's
arithmetic runs.

`--logging` runs, side by side in each round, the server without request logging and with TF Serving's
request logging (`logging_config` in a model config file) at sampling rates 0.1 and 1.0, and counts the
requests logged.

`--compare` runs, side by side in each round, the same clients on the model in-process (the same
signature and batching, no HTTP: what the server's front end costs is the difference), the server,
and the server with batching off.
"""

import argparse
import dataclasses
import http.client
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import psutil
import tensorflow as tf

from benchmarks import report
from models import features
from pipeline import configs, mnist, summary, untrained
from serving.batching import BatchScheduler
from serving.config import read_batching_parameters
from serving.model_store import publish_version
from serving.request_log import closed_files
from serving.servable import load as load_servable

_REST_LINE = re.compile(r"REST\s+http://127\.0\.0\.1:(\d+)/")
BATCHING_PARAMETERS = os.path.join(configs.PROJECT_ROOT, "serving", "deploy", "batching_parameters.txt")
"""The batching the deploy files give the real TF Serving."""
IMAGES = 256
CLIENTS = 16
SETTLE_SECONDS = 60.0
FIGURES = ("requests_per_s", "p50_ms", "p99_ms", "errors")
LOGGING_RATES = (0.1, 1.0)
"""`--logging`'s sampling rates, each run beside a server that logs nothing."""
"""What a record keeps of a run (the details are printed)."""


class ServerProcess:
    """`digits serve` in a subprocess, on free loopback ports."""

    def __init__(self, base: str, extra: List[str], poll_seconds: float = 0.2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli",
                "serve",
                "--model_base_path",
                base,
                "--model_name",
                features.MODEL_NAME,
                "--rest_api_port",
                "0",
                "--port",
                "0",
                "--file_system_poll_wait_seconds",
                str(poll_seconds),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=configs.PROJECT_ROOT,
        )
        assert self.process.stdout is not None
        self.stdout = self.process.stdout
        self.output: List[str] = []
        self.port = self._wait_for_port()
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_for_port(self, seconds: float = 180.0) -> int:
        deadline = time.time() + seconds
        while time.time() < deadline:
            line = self.stdout.readline()
            if not line and self.process.poll() is not None:
                break
            self.output.append(line)
            match = _REST_LINE.search(line)
            if match:
                return int(match.group(1))
        self.stop()
        raise RuntimeError("model server did not start:\n" + "".join(self.output[-30:]))

    def _drain(self) -> None:
        for line in self.stdout:
            self.output.append(line)

    def rss_mb(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def available_versions(self) -> List[int]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", f"/v1/models/{features.MODEL_NAME}")
            status = json.loads(conn.getresponse().read())["model_version_status"]
        finally:
            conn.close()
        return sorted(int(s["version"]) for s in status if s["state"] == "AVAILABLE")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def thread_cpu_seconds(pid: int) -> Dict[int, float]:
    """CPU seconds (user + system) of each thread of process `pid`, by its OS thread id."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue  # The thread ended.
        seconds[int(tid)] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def python_thread_names(pid: int) -> Dict[int, str]:
    """The Python name of each Python thread of process `pid`, by OS thread id, as py-spy reads them;
    empty if py-spy cannot attach (it needs ptrace)."""
    try:
        dump = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "py-spy"), "dump", "--json", "--pid", str(pid)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return {t["os_thread_id"]: t["thread_name"] for t in json.loads(dump.stdout)}
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return {}


_NUMBERED = re.compile(r"[-_]\d+$")
NATIVE_THREADS = "TensorFlow (native threads)"


def cpu_by_thread(before: Dict[int, float], after: Dict[int, float], names: Dict[int, str]) -> Dict[str, float]:
    """CPU seconds spent between two `thread_cpu_seconds` readings, summed by thread role: the Python
    thread name without its number (`batch-0` -> `batch`), or NATIVE_THREADS for threads with no
    Python name (TensorFlow's inter- and intra-op pools, gRPC's core)."""
    spent: Dict[str, float] = {}
    for tid, seconds in after.items():
        role = _NUMBERED.sub("", names[tid]) if tid in names else NATIVE_THREADS
        spent[role] = spent.get(role, 0.0) + seconds - before.get(tid, 0.0)
    return {role: round(value, 2) for role, value in sorted(spent.items(), key=lambda kv: -kv[1]) if value > 0}


def expected_answers(model_dir: str, images: np.ndarray) -> np.ndarray:
    """The probabilities a model gives each image, called in-process."""
    import tensorflow as tf

    signature = tf.saved_model.load(model_dir).signatures[features.IMAGES_SIGNATURE]
    return signature(**{features.IMAGES_INPUT: tf.constant(images)})[features.PROBABILITIES_OUTPUT].numpy()


@dataclasses.dataclass
class _Log:
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    done: int = 0
    latencies: List[float] = dataclasses.field(default_factory=list)
    errors: List[str] = dataclasses.field(default_factory=list)
    answered: List[Tuple[float, int]] = dataclasses.field(default_factory=list)
    """(send time, index of the model whose answer came back)."""


def _own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


def _allowed_models(swaps: List[Dict], sent: float) -> set:
    """The models that may answer a request sent at `sent`: the one of the newest version serving alone
    by then (model 0 before any swap), and those of versions pushed by then but not yet alone."""
    alone = [s for s in swaps if s["serving_since"] is not None and s["serving_since"] <= sent]
    allowed = {alone[-1]["model"] if alone else 0}
    newest_alone = alone[-1]["version"] if alone else 1
    allowed.update(s["model"] for s in swaps if s["pushed"] <= sent and s["version"] > newest_alone)
    return allowed


def run_load(
    model_dirs: Tuple[str, str],
    clients: int = CLIENTS,
    requests: int = 5000,
    swaps: int = 1,
    batching: bool = True,
    work_dir: Optional[str] = None,
    batching_parameters: str = BATCHING_PARAMETERS,
    logging_rate: Optional[float] = None,
) -> Dict:
    """Serves `model_dirs[0]` as version 1, loads it with `clients` keep-alive connections for
    `requests` one-digit predictions, and pushes `swaps` new versions (alternating the two models) at
    even intervals; with `logging_rate`, the model config logs requests sampled at that rate."""
    work_dir = work_dir or tempfile.mkdtemp(prefix="digits-load-")
    base = os.path.join(work_dir, features.MODEL_NAME)
    publish_version(model_dirs[0], base, 1)
    extra: List[str] = []
    if batching:
        extra = ["--enable_batching", "--batching_parameters_file", batching_parameters]
    log_prefix = os.path.join(work_dir, "request_logs", "requests")
    if logging_rate is not None:
        extra += ["--model_config_file", logged_model_config(work_dir, base, log_prefix, logging_rate)]
    images, _ = mnist.load(mnist.TEST, IMAGES)
    expected = [expected_answers(d, images) for d in model_dirs]
    bodies = [
        json.dumps({"signature_name": features.IMAGES_SIGNATURE, "instances": [img.tolist()]}).encode()
        for img in images
    ]
    server = ServerProcess(base, extra)
    path = f"/v1/models/{features.MODEL_NAME}:predict"
    log = _Log()
    marks = [requests * (k + 1) // (swaps + 1) for k in range(swaps)]
    swap_due = [threading.Event() for _ in marks]

    def which_model(index: int, probabilities: List[float]) -> Tuple[int, str]:
        """The model whose answer this is, or -1 and how far off the nearest is."""
        off = [float(np.abs(np.asarray(probabilities) - answers[index]).max()) for answers in expected]
        nearest = int(np.argmin(off))
        if off[nearest] <= features.ANSWER_TOLERANCE:
            return nearest, ""
        return -1, f"an answer neither model gives (nearest: model {nearest}, off by {off[nearest]:.2g})"

    def client(first: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        for k in range(first, requests, clients):
            sent = time.perf_counter()
            model, problem = -1, None
            try:
                conn.request("POST", path, bodies[k % IMAGES], {"Content-Type": "application/json"})
                response = conn.getresponse()
                answer = response.read()
                if response.status != 200:
                    problem = f"HTTP {response.status}: {answer[:200]!r}"
                else:
                    predicted = json.loads(answer)["predictions"][0][features.PROBABILITIES_OUTPUT]
                    model, mismatch = which_model(k % IMAGES, predicted)
                    problem = mismatch or None
            except Exception as e:
                problem = f"{type(e).__name__}: {e}"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            with log.lock:
                log.latencies.append(time.perf_counter() - sent)
                log.answered.append((sent, model))
                log.done += 1
                if problem:
                    log.errors.append(problem)
                for mark, event in zip(marks, swap_due):
                    if log.done == mark:
                        event.set()
        conn.close()

    swap_log: List[Dict] = []
    try:
        warm = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        first_started = time.perf_counter()
        warm.request("POST", path, bodies[0], {"Content-Type": "application/json"})
        warm.getresponse().read()
        first_request_ms = (time.perf_counter() - first_started) * 1000
        warm.close()
        rss_before = server.rss_mb()
        cpu_before = (server.cpu_seconds(), _own_cpu_seconds())
        threads_before = thread_cpu_seconds(server.process.pid)
        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for k, event in enumerate(swap_due):
            version, model = k + 2, (k + 1) % 2
            while not event.wait(0.1):
                if not any(t.is_alive() for t in threads):
                    break
            pushed = time.perf_counter()
            publish_version(model_dirs[model], base, version)
            serving_since = None
            while time.perf_counter() - pushed < SETTLE_SECONDS:
                if server.available_versions() == [version]:
                    serving_since = time.perf_counter()
                    break
                time.sleep(0.05)
            swap_log.append(
                {
                    "version": version,
                    "model": model,
                    "pushed_at_request": marks[k],
                    "pushed": pushed,
                    "seconds_to_serve_alone": None if serving_since is None else round(serving_since - pushed, 2),
                    "serving_since": serving_since,
                    "rss_mb": round(server.rss_mb(), 1),
                }
            )
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        cpu = (server.cpu_seconds() - cpu_before[0], _own_cpu_seconds() - cpu_before[1])
        by_thread = cpu_by_thread(
            threads_before, thread_cpu_seconds(server.process.pid), python_thread_names(server.process.pid)
        )
        rss_after = server.rss_mb()
        final_versions = server.available_versions()
    finally:
        server.stop()
    stale = sum(1 for sent, model in log.answered if model >= 0 and model not in _allowed_models(swap_log, sent))
    logged = sum(1 for path in closed_files(log_prefix) for _ in tf.data.TFRecordDataset(path))
    for entry in swap_log:
        entry.pop("serving_since")
        entry.pop("pushed")
    return {
        "clients": clients,
        "requests": len(log.latencies),
        "batching": batching,
        "errors": len(log.errors) + stale + sum(1 for s in swap_log if s["seconds_to_serve_alone"] is None),
        "stale_answers": stale,
        "first_errors": log.errors[:5],
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(log.latencies) / elapsed, 1),
        **_latency_figures(log.latencies),
        "first_request_ms": round(first_request_ms, 1),
        "server_cpu_s": round(cpu[0], 2),
        "server_cpu_ms_per_request": round(cpu[0] * 1000 / max(len(log.latencies), 1), 2),
        "server_cpu_s_by_thread": by_thread,
        "clients_cpu_s": round(cpu[1], 2),
        "swaps": swap_log,
        "served_versions_after": final_versions,
        "rss_mb_before": round(rss_before, 1),
        "rss_mb_after": round(rss_after, 1),
        "logging_rate": logging_rate,
        "logged_requests": logged,
    }


def logged_model_config(folder: str, base: str, prefix: str, rate: float) -> str:
    """A model config serving `base` with TF Serving's request logging at `rate` to `prefix`."""
    path = os.path.join(folder, "models.config")
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            f'model_config_list {{ config {{ name: "{features.MODEL_NAME}" base_path: "{base}" logging_config {{\n'
            f'  log_collector_config {{ type: "tfrecord" filename_prefix: "{prefix}" }}\n'
            f"  sampling_config {{ sampling_rate: {rate} }} }} }} }}\n"
        )
    return path


def _latency_figures(seconds: List[float]) -> Dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def run_in_process(
    model_dir: str, clients: int = CLIENTS, requests: int = 5000, batching_parameters: str = BATCHING_PARAMETERS
) -> Dict:
    """The same clients, one digit per request, on the model in this process: the signature the
    server calls, through the same batching, with no HTTP and no JSON."""
    servable = load_servable(features.MODEL_NAME, 1, model_dir)
    signature = servable.signature(features.IMAGES_SIGNATURE)
    scheduler = BatchScheduler(read_batching_parameters(batching_parameters))
    images, _ = mnist.load(mnist.TEST, IMAGES)
    expected = expected_answers(model_dir, images)
    latencies: List[float] = []
    errors: List[str] = []
    lock = threading.Lock()

    def predict(index: int) -> np.ndarray:
        inputs = {features.IMAGES_INPUT: images[index : index + 1]}
        return scheduler.submit(servable, signature, inputs, 1).result(timeout=60)[features.PROBABILITIES_OUTPUT]

    def client(first: int) -> None:
        for k in range(first, requests, clients):
            sent = time.perf_counter()
            try:
                off = float(np.abs(predict(k % IMAGES)[0] - expected[k % IMAGES]).max())
                problem = f"an answer off by {off:.2g}" if off > features.ANSWER_TOLERANCE else None
            except Exception as e:
                problem = f"{type(e).__name__}: {e}"
            with lock:
                latencies.append(time.perf_counter() - sent)
                if problem:
                    errors.append(problem)

    try:
        predict(0)
        cpu_before = _own_cpu_seconds()
        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        cpu = _own_cpu_seconds() - cpu_before
    finally:
        scheduler.stop()
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:5],
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        **_latency_figures(latencies),
        "cpu_ms_per_request": round(cpu * 1000 / max(len(latencies), 1), 2),
    }


def model_pair(output_root: str, work_dir: str) -> Tuple[str, str]:
    """The newest run's pushed model, and an untrained copy of its CNN."""
    run = summary.latest_run(configs.metadata_path(output_root), pushed=True)
    if not run.pushed_to or not run.transform_graph_uri:
        raise SystemExit(f"no pushed model in {output_root}: run the pipeline first (make run)")
    return run.pushed_to, untrained.export_untrained(run.transform_graph_uri, os.path.join(work_dir, "untrained"))


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--output", default=configs.OUTPUT_ROOT, help="a pipeline run's --output folder")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--swaps", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1)
    variants = parser.add_mutually_exclusive_group()
    variants.add_argument("--no-batching", action="store_true")
    variants.add_argument(
        "--compare",
        action="store_true",
        help="each round: the model in-process, the server, and the server with batching off",
    )
    variants.add_argument(
        "--logging",
        action="store_true",
        help="each round: the server without request logging, and logging at rates "
        + ", ".join(map(str, LOGGING_RATES)),
    )
    parser.add_argument(
        "--batching-parameters", default=BATCHING_PARAMETERS, help="TF Serving's BatchingParameters file"
    )
    parser.add_argument("--note", default="", help="what the records should say of this run (the model served, say)")
    args = parser.parse_args(argv)
    results = []
    name = {0: "no swap", 1: "one swap halfway"}.get(args.swaps, f"{args.swaps} swaps")
    clients = f", {args.clients} clients" if args.clients != CLIENTS else ""
    servers = [(name + clients, True)] if not args.no_batching else [(name + clients + ", no batching", False)]
    if args.compare:
        servers.append((name + clients + ", no batching", False))
    rates: List[Optional[float]] = [None]
    if args.logging:
        rates = [None, *LOGGING_RATES]
    with tempfile.TemporaryDirectory(prefix="digits-load-") as work_dir:
        models = model_pair(args.output, work_dir)
        for run in range(args.runs):
            if args.compare:
                result = run_in_process(models[0], args.clients, args.requests, args.batching_parameters)
                figures = {key: result[key] for key in (*FIGURES, "cpu_ms_per_request")}
                label = "in-process" + clients
                results.append(report.recorded("load", {label: figures}, "benchmarks.load", argv, result, args.note))
            for (label, batching), rate in itertools.product(servers, rates):
                run_dir = tempfile.mkdtemp(prefix=f"run{run}-", dir=work_dir)
                result = run_load(
                    models, args.clients, args.requests, args.swaps, batching, run_dir, args.batching_parameters, rate
                )
                if args.logging:
                    label = f"{name}{clients}, " + (
                        "no request logging" if rate is None else f"request logging at {rate}"
                    )
                figures = {key: result[key] for key in FIGURES}
                if rate is not None:
                    figures["logged_requests"] = result["logged_requests"]
                figures["rss_growth_mb"] = round(result["rss_mb_after"] - result["rss_mb_before"], 1)
                figures["cpu_ms_per_request"] = result["server_cpu_ms_per_request"]
                results.append(report.recorded("load", {label: figures}, "benchmarks.load", argv, result, args.note))
    if any(r["errors"] for r in results):
        sys.exit(1)
    return results


if __name__ == "__main__":
    main()
