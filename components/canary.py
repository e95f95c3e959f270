"""ServingCanary: the candidate served by a real model server before the Pusher may push it.

TFX's InfraValidator loads a candidate in TF Serving (in Docker or Kubernetes, neither of which this
project can count on) and sends it requests. This component keeps InfraValidator's contract, an
`InfraBlessing` that the Pusher takes as `infra_blessing`, and runs the project's own server (`python -m
serving`, TF Serving's APIs) in a subprocess on loopback ports, wherever the pipeline runs (a laptop, a
Kubeflow pod). It waits for the version to be AVAILABLE through `ModelService.GetModelStatus` (as
InfraValidator's client does; the server replays the model's `tf_serving_warmup_requests` first), sends
test digits to every signature over REST and gRPC, requires the answers to equal the exported model's
own answers run in-process, and requires single-digit requests to stay within a latency budget. A model
that fails to load, answers differently or too slowly is not blessed, with the reason recorded.
"""

import base64
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np
import tensorflow as tf
from absl import logging
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import Examples, InfraBlessing, Model
from tfx.utils import path_utils

from components import examples
from models import features
from serving import client as serving_client
from serving.model_store import publish_version

REASON = "reason"
"""Custom property of the InfraBlessing: why it was not blessed ("" when it was)."""
PROTOCOLS = (("rest", "REST"), ("grpc", "gRPC"))
PROPERTY_SUFFIX = "_ms"
"""The blessing's latency properties are the result's `latency_ms` keys with this suffix."""


def p99_line(values: Mapping[str, Any], suffix: str = "") -> str:
    """`REST 3.5 ms, gRPC 3.4 ms`: one digit's p99 per protocol, from the values under `rest_p99` and
    `grpc_p99` (with `suffix`, `_ms`, as the blessing's properties are named)."""
    named = ((name, f"{key}_p99{suffix}") for key, name in PROTOCOLS)
    return ", ".join(f"{name} {float(values[key]):.1f} ms" for name, key in named if key in values)


@dataclasses.dataclass
class CanaryResult:
    blessed: bool
    reason: str = ""
    start_seconds: float = 0.0
    latency_ms: Dict[str, float] = dataclasses.field(default_factory=dict)
    """p50 and p99 of single-digit requests per protocol: `rest_p50`, `rest_p99`, `grpc_p50`, `grpc_p99`."""


class CanaryRefusalError(Exception):
    """Why the candidate is not blessed (the message goes into the blessing and the summary)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """`python -m serving` on the candidate, in a subprocess, on free loopback ports."""

    def __init__(self, base: str, model_name: str, log_path: str):
        self.rest_port, self.grpc_port = _free_port(), _free_port()
        self.log_path = log_path
        command = [sys.executable, "-m", "serving", "--model_base_path", base, "--model_name", model_name]
        command += ["--rest_api_port", str(self.rest_port), "--port", str(self.grpc_port), "--host", "127.0.0.1"]
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self, lines: int = 8) -> str:
        with open(self.log_path, errors="replace") as f:
            return " | ".join(line.strip() for line in f.read().splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_available(server: _Server, model_name: str, seconds: float) -> None:
    """Until GetModelStatus says AVAILABLE; a version that ends (failed to load) or a server that exits
    is a failure with its reason."""
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    deadline = time.monotonic() + seconds
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model_name
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise CanaryRefusalError(
                    f"the server exited with code {server.process.returncode}: {server.log_tail()}"
                )
            try:
                statuses = stub.GetModelStatus(request, timeout=5).model_version_status
            except grpc.RpcError:
                statuses = []
            for status in statuses:
                state = get_model_status_pb2.ModelVersionStatus.State.Name(status.state)
                if state == "AVAILABLE":
                    return
                if state == "END":
                    raise CanaryRefusalError(f"the model failed to load: {status.status.error_message}")
            time.sleep(0.2)
    raise CanaryRefusalError(f"the model was not AVAILABLE within {seconds:g} s: {server.log_tail()}")


def _test_digits(examples_uri: str, count: int):
    """The first `count` test digits: serialized tf.Examples, pixels [n, 28, 28] and PNGs."""
    digits = examples.first_digits(examples.split_files(examples_uri, features.TEST_SPLIT), count)
    if not digits.records:
        raise CanaryRefusalError(f"no test digits under {examples_uri} to send")
    pngs = [tf.io.encode_png(tf.constant(p.astype(np.uint8)[..., None])).numpy() for p in digits.pixels]
    return digits.records, digits.pixels, pngs


def _compare(what: str, served: Any, expected: np.ndarray) -> None:
    served = np.asarray(served, np.float64)
    if served.shape != expected.shape or not np.allclose(served, expected, atol=features.ANSWER_TOLERANCE):
        worst = np.abs(served - expected).max() if served.shape == expected.shape else "shape"
        raise CanaryRefusalError(f"{what} answered differently from the exported model (largest difference {worst})")


def _check_answers(rest: serving_client.RestClient, grpc_client: serving_client.GrpcClient, reference, digits) -> None:
    """Every signature, over both protocols, against the exported model called in-process."""
    records, pixels, pngs = digits
    expected = {
        features.IMAGES_SIGNATURE: reference[features.IMAGES_SIGNATURE](**{features.IMAGES_INPUT: tf.constant(pixels)})[
            features.PROBABILITIES_OUTPUT
        ].numpy(),
        features.IMAGE_BYTES_SIGNATURE: reference[features.IMAGE_BYTES_SIGNATURE](
            **{features.IMAGE_BYTES_INPUT: tf.constant(pngs)}
        )[features.PROBABILITIES_OUTPUT].numpy(),
        features.EXAMPLES_SIGNATURE: reference[features.EXAMPLES_SIGNATURE](
            **{features.EXAMPLES_INPUT: tf.constant(records)}
        )[features.PROBABILITIES_OUTPUT].numpy(),
        features.CLASSIFY_SIGNATURE: reference[features.CLASSIFY_SIGNATURE](
            **{features.CLASSIFY_INPUT: tf.constant(records)}
        )[features.SCORES_OUTPUT].numpy(),
    }
    b64 = [{"b64": base64.b64encode(r).decode()} for r in records]
    rest_answers = {
        features.IMAGES_SIGNATURE: [p.probabilities for p in rest.classify_pixels(pixels)],
        features.IMAGE_BYTES_SIGNATURE: [p.probabilities for p in rest.classify_pictures(pngs)],
        features.EXAMPLES_SIGNATURE: rest.predict({"signature_name": features.EXAMPLES_SIGNATURE, "instances": b64})[
            "predictions"
        ],
        features.CLASSIFY_SIGNATURE: [
            [score for _, score in row]
            for row in rest.classify([{features.IMAGE_KEY: p.reshape(-1).astype(int).tolist()} for p in pixels])
        ],
    }
    grpc_answers = {
        features.IMAGES_SIGNATURE: grpc_client.predict(features.IMAGES_SIGNATURE, {features.IMAGES_INPUT: pixels})[
            features.PROBABILITIES_OUTPUT
        ],
        features.IMAGE_BYTES_SIGNATURE: [p.probabilities for p in grpc_client.classify_pictures(pngs)],
        features.EXAMPLES_SIGNATURE: grpc_client.predict(
            features.EXAMPLES_SIGNATURE, {features.EXAMPLES_INPUT: np.array(records, dtype=object)}
        )[features.PROBABILITIES_OUTPUT],
        features.CLASSIFY_SIGNATURE: [[score for _, score in row] for row in grpc_client.classify(records)],
    }
    for protocol, answers in (("REST", rest_answers), ("gRPC", grpc_answers)):
        for signature, served in answers.items():
            _compare(f"{protocol} {signature}", served, expected[signature])


def _latency(call: Callable[[], Any], requests: int) -> List[float]:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def run_canary(
    model_dir: str,
    examples_uri: str,
    model_name: str,
    latency_budget_ms: float,
    requests: int,
    start_timeout_s: float,
    reference_dir: Optional[str] = None,
    work_dir: Optional[str] = None,
) -> CanaryResult:
    """Serves the SavedModel at `model_dir` and checks it against `reference_dir` (default: itself,
    loaded in-process); never raises for a bad model, only says why it is not blessed."""
    work = tempfile.mkdtemp(prefix="canary-", dir=work_dir)
    server: Optional[_Server] = None
    result = CanaryResult(blessed=False)
    try:
        base = os.path.join(work, model_name)
        published = publish_version(model_dir, base, 1)  # A local copy, from wherever the model is.
        digits = _test_digits(examples_uri, 16)
        started = time.monotonic()
        server = _Server(base, model_name, os.path.join(work, "server.log"))
        _wait_available(server, model_name, start_timeout_s)
        result.start_seconds = time.monotonic() - started
        rest = serving_client.RestClient(f"http://127.0.0.1:{server.rest_port}", model_name)
        grpc_client = serving_client.GrpcClient(f"127.0.0.1:{server.grpc_port}", model_name)
        try:
            reference = tf.saved_model.load(reference_dir or published).signatures
            _check_answers(rest, grpc_client, reference, digits)
            one = digits[1][:1]
            for protocol, call in (
                ("rest", lambda: rest.classify_pixels(one)),
                ("grpc", lambda: grpc_client.predict(features.IMAGES_SIGNATURE, {features.IMAGES_INPUT: one})),
            ):
                call()  # The first request of each protocol sets up its connection.
                times = _latency(call, requests)
                result.latency_ms[f"{protocol}_p50"] = float(np.percentile(times, 50))
                result.latency_ms[f"{protocol}_p99"] = float(np.percentile(times, 99))
        finally:
            grpc_client.close()
        slow = {k: v for k, v in result.latency_ms.items() if k.endswith("p99") and v > latency_budget_ms}
        if slow:
            raise CanaryRefusalError(
                f"too slow: p99 {p99_line(slow)} over the budget of {latency_budget_ms:g} ms for one digit"
            )
        result.blessed = True
    except CanaryRefusalError as e:
        result.reason = str(e)
    except Exception as e:  # A request the server refused, a broken connection: not servable as it is.
        result.reason = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:500]}"
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return result


@component
def ServingCanary(
    model: InputArtifact[Model],
    examples: InputArtifact[Examples],
    blessing: OutputArtifact[InfraBlessing],
    model_name: Parameter[str],
    latency_budget_ms: Parameter[float],
    requests: Parameter[int],
    start_timeout_s: Parameter[float],
) -> None:
    """Blesses the candidate (TFX's InfraBlessing: `blessed` 1 and an INFRA_BLESSED file) if it serves,
    answers as exported and fast enough; else `blessed` 0, the reason in the `reason` property."""
    result = run_canary(
        path_utils.serving_model_path(model.uri), examples.uri, model_name, latency_budget_ms, requests, start_timeout_s
    )
    blessing.set_int_custom_property("blessed", int(result.blessed))
    blessing.set_string_custom_property(REASON, result.reason)
    blessing.set_float_custom_property("start_seconds", result.start_seconds)
    for key, value in result.latency_ms.items():
        blessing.set_float_custom_property(f"{key}{PROPERTY_SUFFIX}", value)
    with tf.io.gfile.GFile(
        os.path.join(blessing.uri, "INFRA_BLESSED" if result.blessed else "INFRA_NOT_BLESSED"), "w"
    ) as f:
        f.write(json.dumps(dataclasses.asdict(result)))
    if result.blessed:
        logging.info(
            "Serving canary passed: AVAILABLE after %.1f s; one digit p99 %s",
            result.start_seconds,
            p99_line(result.latency_ms),
        )
    else:
        logging.warning("Serving canary refused the candidate: %s", result.reason)
