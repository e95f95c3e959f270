"""The model server against TF Serving's REST and gRPC contracts, on the model the smoke pipeline pushed
and on an untrained copy of it (a *different* model, to see which version answers)."""

import base64
import http.client
import json
import os
import pathlib
import shutil
import socket
import threading
import time
from typing import Iterator, Tuple

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from cli import main as cli_main
from models import features
from serving import main as serving_main
from serving.client import GrpcClient, RestClient
from serving.config import ModelConfig, ServerOptions, VersionPolicy, single_model
from serving.model_store import publish_version
from serving.server import ModelServer
from tests import support

pytestmark = pytest.mark.e2e
PREDICT = f"/v1/models/{features.MODEL_NAME}:predict"


@pytest.fixture(scope="module")
def test_digits(smoke_output):
    return support.pipeline_test_digits(smoke_output, 32)


def _serve(options: ServerOptions) -> ModelServer:
    return ModelServer(options).start()


@pytest.fixture()
def base(tmp_path, served_model) -> str:
    path = str(tmp_path / features.MODEL_NAME)
    publish_version(served_model, path, 1)
    return path


@pytest.fixture()
def server(base) -> Iterator[ModelServer]:
    running = _serve(
        ServerOptions(
            models=single_model(features.MODEL_NAME, base), rest_api_port=0, port=0, file_system_poll_wait_seconds=0.1
        )
    )
    yield running
    running.stop()


def _status(server: ModelServer):
    return {
        int(s["version"]): s for s in support.http(f"{server.rest_url}/v1/models/digits")[1]["model_version_status"]
    }


def _probabilities(server: ModelServer, pixels: np.ndarray, version=None) -> np.ndarray:
    answer = RestClient(server.rest_url).predict(
        {"signature_name": features.IMAGES_SIGNATURE, "inputs": pixels.tolist()}, version=version
    )
    return np.array(answer["outputs"][features.PROBABILITIES_OUTPUT])


def test_binds_loopback_by_default(tmp_path):
    server = ModelServer(ServerOptions(models=single_model("m", str(tmp_path)), rest_api_port=0, port=0))
    try:
        assert server._sockets[0].getsockname()[0] == "127.0.0.1"
        assert (
            ServerOptions().host == "127.0.0.1"
            and ServerOptions().port == 8500
            and ServerOptions().rest_api_port == 8501
        )
    finally:
        server.stop()


def test_status_and_metadata_in_tf_servings_format(server):
    api = f"{server.rest_url}/v1/models/digits"
    assert support.http(api) == (
        200,
        {
            "model_version_status": [
                {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            ]
        },
    )
    code, meta = support.http(api + "/metadata")
    assert code == 200 and meta["model_spec"] == {"name": "digits", "signature_name": "", "version": "1"}
    defs = meta["metadata"]["signature_def"]["signature_def"]
    assert set(defs) == {
        features.EXAMPLES_SIGNATURE,
        features.CLASSIFY_SIGNATURE,
        features.IMAGES_SIGNATURE,
        features.IMAGE_BYTES_SIGNATURE,
    }
    assert defs[features.CLASSIFY_SIGNATURE]["method_name"] == features.CLASSIFY_METHOD
    images = defs[features.IMAGES_SIGNATURE]
    assert set(images["outputs"]) == {features.PROBABILITIES_OUTPUT, features.DIGIT_OUTPUT, features.CLASS_NAME_OUTPUT}
    assert images["inputs"][features.IMAGES_INPUT]["dtype"] == "DT_FLOAT"


def test_every_path_to_a_prediction_gives_the_same_answer(server, test_digits):
    """REST row and columnar, b64 tf.Examples, PNG pictures, Classify over REST and gRPC, gRPC Predict."""
    records, pixels, labels = test_digits
    client = RestClient(server.rest_url)
    rows = client.predict({"signature_name": features.IMAGES_SIGNATURE, "instances": pixels.tolist()})["predictions"]
    by_rows = np.array([r[features.PROBABILITIES_OUTPUT] for r in rows])
    assert (np.array([r[features.DIGIT_OUTPUT] for r in rows]) == labels).mean() >= 0.5
    np.testing.assert_allclose(_probabilities(server, pixels), by_rows, atol=1e-5)
    by_examples = client.predict({"instances": [{"b64": base64.b64encode(r).decode()} for r in records]})
    np.testing.assert_allclose(by_examples["predictions"], by_rows, atol=1e-5)
    pictures = [support.png_bytes(p) for p in pixels]
    by_pictures = client.predict(
        {
            "signature_name": features.IMAGE_BYTES_SIGNATURE,
            "instances": [{"b64": base64.b64encode(p).decode()} for p in pictures],
        }
    )["predictions"]
    framed = np.array([r[features.FRAMED_OUTPUT] for r in by_pictures], np.float32)  # MNIST's framing again
    np.testing.assert_allclose(
        [r[features.PROBABILITIES_OUTPUT] for r in by_pictures], _probabilities(server, framed), atol=1e-5
    )
    assert [p.digit for p in client.classify_pictures(pictures)] == [r[features.DIGIT_OUTPUT] for r in by_pictures]
    examples = [{features.IMAGE_KEY: p.astype(int).reshape(-1).tolist()} for p in pixels]
    results = client.classify(examples)
    assert [[label for label, _ in r] for r in results] == [features.CLASS_LABELS] * len(pixels)
    np.testing.assert_allclose([[score for _, score in r] for r in results], by_rows, atol=1e-5)
    grpc_client = GrpcClient(f"127.0.0.1:{server.grpc_port}")
    try:
        outputs = grpc_client.predict(features.IMAGES_SIGNATURE, {features.IMAGES_INPUT: pixels.astype(np.float32)})
        np.testing.assert_allclose(outputs[features.PROBABILITIES_OUTPUT], by_rows, atol=1e-5)
        assert [p.digit for p in grpc_client.classify_pictures(pictures)] == [
            r[features.DIGIT_OUTPUT] for r in by_pictures
        ]
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name, request.model_spec.signature_name = "digits", features.CLASSIFY_SIGNATURE
        for record in records:
            request.input.example_list.examples.add().ParseFromString(record)
        classified = grpc_client.stub.Classify(request, timeout=30)
        np.testing.assert_allclose(
            [[c.score for c in cl.classes] for cl in classified.result.classifications], by_rows, atol=1e-5
        )
        assert classified.model_spec.version.value == 1
    finally:
        grpc_client.close()


def test_regress_is_refused_as_this_model_has_no_regression_signature(server):
    code, answer = support.http(f"{server.rest_url}/v1/models/digits:regress", {"examples": [{"image": [0] * 784}]})
    assert code == 400 and "no regression signature" in answer["error"]
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "digits"
    request.input.example_list.examples.add()
    with pytest.raises(grpc.RpcError) as refused:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Regress(request, timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    channel.close()


def test_predict_cli_prints_digit_and_confidence(server, test_digits, tmp_path, capsys):
    _, pixels, _ = test_digits
    paths = []
    for i, p in enumerate(pixels[:3]):
        paths.append(str(tmp_path / f"digit{i}.png"))
        with open(paths[-1], "wb") as f:
            f.write(support.png_bytes(p))
    assert cli_main.main(["predict", *paths, "--server", server.rest_url]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    # What the client library answers for the same files (pictures are framed in the graph, so their
    # probabilities differ a little from the raw pixels').
    pictures = [pathlib.Path(path).read_bytes() for path in paths]
    expected = RestClient(server.rest_url).classify_pictures(pictures)
    assert lines == [f"{path}: {e.digit} ({e.confidence:.1%})" for path, e in zip(paths, expected)]
    assert cli_main.main(["predict", str(tmp_path / "missing.png"), "--server", server.rest_url]) == 1


PIXELS = features.IMAGES_SIGNATURE


@pytest.mark.parametrize(
    "body, raw, status, message",
    [
        (None, b"{not json", 400, "JSON Parse error"),
        (None, b"[" * 5000, 400, "JSON Parse error"),
        (None, b'{"instances": ' + b"[" * 900 + b"]" * 900 + b"}", 400, "input"),
        ([1, 2], None, 400, "Is not object"),
        ({"instances": []}, None, 400, "No values in 'instances' array"),
        ({"instances": [1], "inputs": [1]}, None, 400, "only one of 'inputs' or 'instances'"),
        ({"signature_name": "nope", "instances": [[0] * 784]}, None, 400, 'Serving signature name: "nope" not found'),
        (
            {"signature_name": PIXELS, "instances": [[0] * 783]},
            None,
            400,
            "each image must be 28x28 or 784 pixels; got 783 values for 1 images",
        ),
        ({"signature_name": PIXELS, "instances": [["a"] * 784]}, None, 400, "must be numbers"),
        ({"signature_name": PIXELS, "instances": [[300] * 784]}, None, 400, "pixel values must be numbers in 0-255"),
        ({"signature_name": PIXELS, "instances": [[-1] * 784]}, None, 400, "got -1 at [example, pixel] [0 0]"),
        ({"signature_name": PIXELS, "instances": [[1e30] * 784]}, None, 400, "pixel values must be numbers in 0-255"),
        ({"signature_name": PIXELS, "instances": [[1e39] * 784]}, None, 400, "got inf"),
        (None, b'{"signature_name": "predict_images", "instances": [[NaN' + b", 0" * 783 + b"]]}", 400, "got nan"),
        ({"signature_name": PIXELS, "instances": [[0] * 784] * 1025}, None, 400, "the limit is 1024"),
        ({"signature_name": features.IMAGE_BYTES_SIGNATURE, "instances": [{"b64": "%%%"}]}, None, 400, "base64"),
        (
            {"signature_name": features.IMAGE_BYTES_SIGNATURE, "instances": [{"b64": "aGVsbG8="}]},
            None,
            400,
            "Unknown image file format",
        ),
        ({"instances": [{"b64": base64.b64encode(b"not an example").decode()}]}, None, 400, "rejected the input"),
    ],
)
def test_client_mistakes_are_400_with_a_message(server, body, raw, status, message):
    code, answer = support.http(server.rest_url + PREDICT, body, raw)
    assert code == status and message in answer["error"], answer


def test_routes_methods_and_limits_as_tf_serving_answers_them(server):
    base = server.rest_url
    assert support.http(f"{base}/v1/models/other:predict", {"instances": [1]}) == (
        404,
        {"error": "Servable not found for request: Latest(other)"},
    )
    assert support.http(f"{base}/v1/models/digits/versions/7:predict", {"instances": [1]}) == (
        404,
        {"error": "Servable not found for request: Specific(digits, 7)"},
    )
    assert support.http(f"{base}/v1/models/digits/versions/7") == (
        404,
        {"error": "Could not find version 7 of model digits"},
    )
    assert support.http(f"{base}/v1/models/digits/labels/stable:predict", {"instances": [1]}) == (
        400,
        {"error": "Unrecognized servable version label: stable"},
    )
    for method in ("PUT", "DELETE", "PATCH"):
        assert support.http(f"{base}/v1/models/digits", raw=b"{}", method=method) == (
            400,
            {"error": f"Malformed request: {method} /v1/models/digits"},
        )
    assert support.http(f"{base}/v1/models/digits/versions/x")[0] == 400
    assert support.http(f"{base}/v1/models/digits:predict")[1] == {
        "error": "Malformed request: GET /v1/models/digits:predict"
    }
    assert support.http(f"{base}/v1/models/digits/metadata", raw=b"{}")[0] == 400
    assert support.http(f"{base}/v2/anything")[0] == 404
    assert support.http(f"{base}/v1/models/digits/versions/99999999999999999999")[1]["error"].startswith(
        "Failed to convert version"
    )
    code, answer = support.http(base + PREDICT, raw=b"{}", headers={"Content-Length": str(10**9)})
    assert code == 413 and "over the limit" in answer["error"]
    assert support.http(f"{base}/v1/models/digits")[0] == 200  # Still serving after all that.


def test_openapi_docs_and_prometheus_metrics(server, test_digits):
    code, spec = support.http(f"{server.rest_url}/openapi.json")
    assert code == 200 and "/v1/models/{model_name}:predict" in spec["paths"]
    assert "/v1/models/{model_name}/versions/{version}:classify" in spec["paths"]
    with socket.create_connection(("127.0.0.1", server.rest_port)) as conn:
        conn.sendall(b"GET /docs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        page = b"".join(iter(lambda: conn.recv(65536), b"")).decode()
    assert "/docs-assets/swagger-ui-bundle.js" in page and "cdn" not in page  # Offline: assets served here.
    RestClient(server.rest_url).classify_pixels(test_digits[1][:2])
    support.http(server.rest_url + PREDICT, raw=b"{broken")
    with socket.create_connection(("127.0.0.1", server.rest_port)) as conn:
        conn.sendall(b"GET /monitoring/prometheus/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        metrics = b"".join(iter(lambda: conn.recv(65536), b"")).decode()
    assert ':tensorflow:serving:request_count{model_name="digits",status="OK"}' in metrics
    assert ':tensorflow:serving:request_count{model_name="digits",status="INVALID_ARGUMENT"} 1.0' in metrics
    assert (
        ':tensorflow:serving:request_latency_count{API="predict",entrypoint="REST",model_name="digits"} 1.0' in metrics
    )


def test_grpc_services(server, test_digits):
    _, pixels, _ = test_digits
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    try:
        status = models.GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "digits"}), timeout=30
        )
        assert [(s.version, s.state) for s in status.model_version_status] == [
            (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        ]
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = "digits"
        meta = predictions.GetModelMetadata(request, timeout=30)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        meta.metadata["signature_def"].Unpack(signatures)
        assert features.IMAGES_SIGNATURE in signatures.signature_def and meta.model_spec.version.value == 1
        client = GrpcClient(f"127.0.0.1:{server.grpc_port}")
        for inputs, code in [
            ({features.IMAGES_INPUT: np.zeros((1, 5), np.float32)}, grpc.StatusCode.INVALID_ARGUMENT),
            ({features.IMAGES_INPUT: np.full((1, 784), 300, np.float32)}, grpc.StatusCode.INVALID_ARGUMENT),
            ({"wrong": np.zeros((1, 784), np.float32)}, grpc.StatusCode.INVALID_ARGUMENT),
        ]:
            with pytest.raises(grpc.RpcError) as refused:
                client.predict(features.IMAGES_SIGNATURE, inputs)
            assert refused.value.code() == code
        with pytest.raises(grpc.RpcError) as missing:
            client.predict(features.IMAGES_SIGNATURE, {features.IMAGES_INPUT: pixels[:1].astype(np.float32)}, version=9)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        client.close()
        with pytest.raises(grpc.RpcError) as unnamed:
            predictions.MultiInference(inference_pb2.MultiInferenceRequest(), timeout=30)
        assert unnamed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert unnamed.value.details() == "ModelSpec has no name specified."
    finally:
        channel.close()


def test_a_grpc_request_declaring_a_huge_shape_is_refused_before_allocation(server):
    """One value declared as [10,000,000, 784] (31 GB once expanded): INVALID_ARGUMENT at once."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "digits", features.IMAGES_SIGNATURE
    proto = request.inputs[features.IMAGES_INPUT]
    proto.CopyFrom(tf.make_tensor_proto(np.float32(0)))
    for size in (10_000_000, 784):
        proto.tensor_shape.dim.add(size=size)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    started = time.perf_counter()
    with pytest.raises(grpc.RpcError) as refused:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    channel.close()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "10000000 examples, the limit is 1024" in refused.value.details()
    assert time.perf_counter() - started < 5


def test_hot_swap_to_a_different_model_pinned_and_latest(tmp_path, served_model, other_model, test_digits):
    """Latest two versions (a config file, as TF Serving reads it): a different model pushed as
    version 2 answers `latest` while version 1 stays pinnable; version 3 unloads version 1; a version
    label moves when the file changes, without a restart."""
    _, pixels, _ = test_digits
    base = str(tmp_path / "digits")
    publish_version(served_model, base, 1)
    config_file = tmp_path / "models.config"
    config_text = (
        'model_config_list {{ config {{ name: "digits" base_path: "{base}" '
        "model_version_policy {{ latest {{ num_versions: 2 }} }} {labels} }} }}"
    )
    config_file.write_text(config_text.format(base=base, labels=""))
    server = _serve(
        ServerOptions(
            model_config_file=str(config_file),
            model_config_file_poll_wait_seconds=0.2,
            rest_api_port=0,
            port=None,
            file_system_poll_wait_seconds=0.1,
        )
    )
    try:
        trained = _probabilities(server, pixels)
        failures, answered, stop = [], [0], threading.Event()

        def hammer():
            client = RestClient(server.rest_url)
            while not stop.is_set():
                try:
                    client.classify_pixels(pixels[:4])
                    answered[0] += 1
                except Exception as e:
                    failures.append(repr(e))

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        support.wait_for(lambda: answered[0] >= 10)
        publish_version(other_model, base, 2)
        support.wait_for(lambda: _status(server).get(2, {}).get("state") == "AVAILABLE")
        assert sorted(_status(server)) == [1, 2]
        untrained = _probabilities(server, pixels)
        assert np.abs(untrained - trained).max() > 0.1  # A different model answers `latest`...
        np.testing.assert_allclose(
            _probabilities(server, pixels, version=1), trained, atol=1e-5
        )  # ...1 stays pinnable.
        config_file.write_text(config_text.format(base=base, labels='version_labels { key: "stable" value: 1 }'))
        support.wait_for(lambda: support.http(f"{server.rest_url}/v1/models/digits/labels/stable/metadata")[0] == 200)
        assert (
            support.http(f"{server.rest_url}/v1/models/digits/labels/stable/metadata")[1]["model_spec"]["version"]
            == "1"
        )
        publish_version(served_model, base, 3)
        support.wait_for(lambda: _status(server)[1]["state"] == "END")
        assert {v: s["state"] for v, s in _status(server).items()} == {3: "AVAILABLE", 2: "AVAILABLE", 1: "END"}
        np.testing.assert_allclose(_probabilities(server, pixels), trained, atol=1e-5)
        count = answered[0]
        support.wait_for(lambda: answered[0] >= count + 10)
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.stop()
    assert failures == []


def test_corrupt_and_half_copied_versions(server, base, served_model, test_digits):
    """A truncated saved_model.pb is refused while version 1 serves; a version whose variables are still
    being copied is refused, then loads once the copy completes."""
    _, pixels, _ = test_digits
    os.makedirs(os.path.join(base, "2"))
    with open(os.path.join(base, "2", "saved_model.pb"), "wb") as f:
        f.write(b"truncated")
    support.wait_for(lambda: 2 in _status(server))
    assert _status(server)[2]["state"] == "END" and _status(server)[2]["status"]["error_message"]
    assert _status(server)[1]["state"] == "AVAILABLE"
    RestClient(server.rest_url).classify_pixels(pixels[:2])
    half = os.path.join(base, "3")
    shutil.copytree(served_model, half, ignore=shutil.ignore_patterns("variables"))
    support.wait_for(lambda: 3 in _status(server) and _status(server)[3]["state"] == "END")
    shutil.copytree(os.path.join(served_model, "variables"), os.path.join(half, "variables"))
    support.wait_for(lambda: _status(server).get(3, {}).get("state") == "AVAILABLE")
    support.wait_for(lambda: _status(server)[1]["state"] == "END")  # Latest version only: 1 unloaded.


def test_warmup_runs_before_a_version_serves_and_a_bad_warmup_file_refuses_it(
    tmp_path, server, base, served_model, caplog
):
    caplog.set_level("INFO", logger="serving.model_store")
    support.wait_for(lambda: 1 in _status(server))
    broken = str(tmp_path / "broken")
    shutil.copytree(served_model, broken)
    with open(os.path.join(broken, features.WARMUP_FILE), "wb") as f:
        f.write(b"not a TFRecord")
    publish_version(broken, base, 2)
    support.wait_for(lambda: 2 in _status(server))
    assert _status(server)[2]["state"] == "END" and "warmup" in _status(server)[2]["status"]["error_message"].lower()
    assert _status(server)[1]["state"] == "AVAILABLE"
    publish_version(served_model, base, 3)
    support.wait_for(lambda: _status(server).get(3, {}).get("state") == "AVAILABLE")
    assert "Warmed up version 3 of digits with 4 requests" in caplog.text


def test_batching_answers_as_unbatched(tmp_path, base, test_digits):
    _, pixels, _ = test_digits
    params = tmp_path / "batching.txt"
    params.write_text(
        "max_batch_size { value: 32 }\nbatch_timeout_micros { value: 2000 }\nnum_batch_threads { value: 1 }\n"
    )
    args = serving_main.parser().parse_args(
        [
            "--model_base_path",
            base,
            "--rest_api_port",
            "0",
            "--port",
            "-1",
            "--enable_batching",
            "--batching_parameters_file",
            str(params),
        ]
    )
    server = _serve(serving_main.options_from_flags(args))
    try:
        expected = _probabilities(server, pixels)
        with __import__("concurrent.futures").futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: _probabilities(server, pixels[i : i + 1]), range(len(pixels))))
        np.testing.assert_allclose(np.concatenate(answers), expected, atol=1e-5)
    finally:
        server.stop()


def _raw(port: int, request: bytes, timeout: float = 30) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        return b"".join(iter(lambda: conn.recv(65536), b""))


def test_slow_clients_are_cut_off_and_idle_keep_alive_is_not_reset(base, test_digits):
    server = _serve(
        ServerOptions(models=single_model("digits", base), rest_api_port=0, port=None, request_read_timeout_seconds=1.0)
    )
    try:
        slow = socket.create_connection(("127.0.0.1", server.rest_port), timeout=10)
        slow.sendall(b"POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        started = time.perf_counter()
        assert slow.recv(1024) == b""  # The body never completes: closed by the server, no answer.
        assert 0.5 < time.perf_counter() - started < 5
        slow.close()
        silent = socket.create_connection(("127.0.0.1", server.rest_port), timeout=10)
        assert silent.recv(1024) == b""  # A connection that never sends is closed too.
        silent.close()
        keep_alive = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
        body = json.dumps({"signature_name": PIXELS, "instances": test_digits[1][:1].tolist()})
        for pause in (0.0, 2.5):  # Idle longer than the read timeout, within keep-alive: no reset.
            time.sleep(pause)
            keep_alive.request("POST", PREDICT, body, {"Content-Type": "application/json"})
            assert keep_alive.getresponse().read() and keep_alive.sock is not None
        keep_alive.close()
    finally:
        server.stop()


def test_graceful_stop_finishes_requests_in_flight(base, test_digits):
    """Six requests of about a second's work each (sized on this host: hosts differ 2-3x), the server
    stopped while they run: all six answered in full within the grace period."""
    server = _serve(ServerOptions(models=single_model("digits", base), rest_api_port=0, port=None))

    def call(count: int) -> Tuple[int, int]:
        body = json.dumps({"signature_name": PIXELS, "instances": np.resize(test_digits[1], (count, 28, 28)).tolist()})
        conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
        conn.request("POST", PREDICT, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, len(json.loads(response.read())["predictions"])

    started = time.perf_counter()
    assert call(128) == (200, 128)
    count = int(np.clip(128 / (time.perf_counter() - started), 32, 1024))
    results = []
    threads = [threading.Thread(target=lambda: results.append(call(count))) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    server.stop()
    for t in threads:
        t.join()
    assert results == [(200, count)] * 6
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.rest_port), timeout=5)


def test_reload_config_over_grpc_and_an_unknown_model(base, served_model, tmp_path):
    server = _serve(ServerOptions(models=single_model("digits", base), rest_api_port=0, port=0))
    other = str(tmp_path / "mnist")
    publish_version(served_model, other, 4)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    try:
        request = model_management_pb2.ReloadConfigRequest()
        for name, path in (("digits", base), ("mnist", other)):
            request.config.model_config_list.config.add(name=name, base_path=path, model_platform="tensorflow")
        model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(request, timeout=60)
        assert support.http(f"{server.rest_url}/v1/models/mnist")[1]["model_version_status"][0]["version"] == "4"
        request.config.model_config_list.config[1].base_path = "relative/path"
        with pytest.raises(grpc.RpcError) as refused:
            model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(request, timeout=60)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "absolute path" in refused.value.details()
        assert server.core.model_names == ["digits", "mnist"]
    finally:
        channel.close()
        server.stop()
    labels = ServerOptions(models=(ModelConfig("digits", base, VersionPolicy(), (("stable", 7),)),), rest_api_port=0)
    with pytest.raises(Exception, match="Request to assign label to version 7 of model digits"):
        ModelServer(labels).start()
