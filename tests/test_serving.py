"""The model server against TF Serving's REST and gRPC contracts, on a model the smoke pipeline pushed."""

import base64
import glob
import json
import os
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from models import features
from pipeline import cli, configs
from serving import predict
from serving.client import GrpcClient, RestClient
from serving.model_store import SAVED_MODEL_FILE, copy_version
from serving.server import ModelServer
from tests import digit_files


def _pushed_version(smoke_output: str) -> str:
    (version,) = glob.glob(os.path.join(configs.serving_model_dir(smoke_output), "*"))
    return version


@pytest.fixture(scope="module")
def model_source(smoke_output) -> str:
    return _pushed_version(smoke_output)


@pytest.fixture(scope="module")
def test_digits(smoke_output):
    return digit_files.pipeline_test_digits(smoke_output, 32)


@pytest.fixture()
def server(tmp_path, model_source):
    base = str(tmp_path / "digits")
    copy_version(model_source, base, 1)
    running = ModelServer(base, configs.MODEL_NAME, rest_port=0, grpc_port=0, poll_seconds=0.2).start()
    yield running
    running.stop()


def http(url: str, body=None, raw: bytes = None, headers=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, headers=headers or {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_binds_loopback_by_default(tmp_path):
    server = ModelServer(str(tmp_path), configs.MODEL_NAME, rest_port=0, grpc_port=None)
    try:
        assert server.http.server_address[0] == "127.0.0.1"
    finally:
        server.http.server_close()


def test_status_and_metadata(server):
    api = f"{server.rest_url}/v1/models/digits"
    assert http(api) == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    code, meta = http(api + "/metadata")
    assert code == 200 and meta["model_spec"] == {"name": "digits", "signature_name": "", "version": "1"}
    defs = meta["metadata"]["signature_def"]["signature_def"]
    assert {features.EXAMPLES_SIGNATURE, features.IMAGES_SIGNATURE, features.IMAGE_BYTES_SIGNATURE} <= set(defs)
    images = defs[features.IMAGES_SIGNATURE]
    assert set(images["inputs"]) == {features.IMAGES_INPUT}
    assert set(images["outputs"]) == {features.PROBABILITIES_OUTPUT, features.DIGIT_OUTPUT}
    assert images["inputs"][features.IMAGES_INPUT]["dtype"] == "DT_FLOAT"


def test_row_and_columnar_formats_agree(server, test_digits):
    _, pixels, labels = test_digits
    api = f"{server.rest_url}/v1/models/digits:predict"
    code, rows = http(api, {"signature_name": features.IMAGES_SIGNATURE, "instances": pixels.tolist()})
    assert code == 200 and len(rows["predictions"]) == len(pixels)
    first = rows["predictions"][0]
    assert set(first) == {features.PROBABILITIES_OUTPUT, features.DIGIT_OUTPUT} and len(first[features.PROBABILITIES_OUTPUT]) == 10
    code, columns = http(api, {"signature_name": features.IMAGES_SIGNATURE, "inputs": pixels.reshape(-1, 784).tolist()})
    assert code == 200
    np.testing.assert_allclose(columns["outputs"][features.PROBABILITIES_OUTPUT],
                               [r[features.PROBABILITIES_OUTPUT] for r in rows["predictions"]], atol=1e-5)
    digits = np.array(columns["outputs"][features.DIGIT_OUTPUT])
    assert (digits == labels).mean() >= configs.PROFILES["smoke"].min_accuracy


def test_b64_examples_and_png_pictures(server, test_digits):
    records, pixels, _ = test_digits
    api = f"{server.rest_url}/v1/models/digits:predict"
    code, by_example = http(api, {"instances": [{"b64": base64.b64encode(r).decode()} for r in records]})
    assert code == 200 and len(by_example["predictions"]) == len(records)
    pictures = [{"b64": base64.b64encode(digit_files.png_bytes(p)).decode()} for p in pixels]
    code, by_png = http(api, {"signature_name": features.IMAGE_BYTES_SIGNATURE, "instances": pictures})
    assert code == 200
    np.testing.assert_allclose([r[features.PROBABILITIES_OUTPUT] for r in by_png["predictions"]],
                               by_example["predictions"], atol=1e-5)


def test_predict_cli_prints_digit_and_confidence(server, test_digits, tmp_path, capsys):
    _, pixels, _ = test_digits
    paths = []
    for i, p in enumerate(pixels[:3]):
        paths.append(str(tmp_path / f"digit{i}.png"))
        with open(paths[-1], "wb") as f:
            f.write(digit_files.png_bytes(p))
    assert cli.main(["predict", *paths, "--server", server.rest_url]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    expected = RestClient(server.rest_url).classify_pixels(pixels[:3])
    assert lines == [f"{path}: {e.digit} ({e.confidence:.1%})" for path, e in zip(paths, expected)]
    assert cli.main(["predict", str(tmp_path / "missing.png"), "--server", server.rest_url]) == 1


@pytest.mark.parametrize(
    "body, raw, status, message",
    [
        (None, b"{not json", 400, "JSON Parse error"),
        ([1, 2], None, 400, "JSON object"),
        ({"instances": []}, None, 400, "non-empty list"),
        ({"instances": [1], "inputs": [1]}, None, 400, "exactly one of"),
        ({"signature_name": "nope", "instances": [[0] * 784]}, None, 400, "'nope' not found"),
        ({"signature_name": features.IMAGES_SIGNATURE, "instances": [[0] * 783]}, None, 400, "rejected the input"),
        ({"signature_name": features.IMAGES_SIGNATURE, "instances": [["a"] * 784]}, None, 400, "must be numbers"),
        ({"signature_name": features.IMAGES_SIGNATURE, "instances": [[1e39] * 784]}, None, 400, "too large"),
        (None, b'{"signature_name": "predict_images", "instances": [[NaN]]}', 400, "NaN or infinity"),
        ({"signature_name": features.IMAGES_SIGNATURE, "instances": [[0] * 784] * (predict.MAX_BATCH + 1)}, None, 400, "limit is"),
        ({"signature_name": features.IMAGE_BYTES_SIGNATURE, "instances": [{"b64": "%%%"}]}, None, 400, "invalid base64"),
        ({"signature_name": features.IMAGE_BYTES_SIGNATURE, "instances": [{"b64": "aGVsbG8="}]}, None, 400, "rejected"),
    ],
)
def test_client_mistakes_are_400_with_a_message(server, body, raw, status, message):
    code, answer = http(f"{server.rest_url}/v1/models/digits:predict", body, raw)
    assert code == status and message in answer["error"], answer


def test_not_found_and_limits(server):
    base = server.rest_url
    assert http(f"{base}/v1/models/other:predict", {"instances": [1]})[0] == 404
    assert http(f"{base}/v1/models/digits/versions/7")[0] == 404
    assert http(f"{base}/v1/models/digits/labels/stable/metadata")[0] == 404
    assert http(f"{base}/v1/models/..%2F..%2Fetc/metadata")[0] == 404
    assert http(f"{base}/v1/models/digits/../../etc/passwd")[0] == 404
    code, answer = http(f"{base}/v1/models/digits:predict", raw=b"{}", headers={"Content-Length": str(10**9)})
    assert code == 413 and "error" in answer
    # Still serving after all that.
    assert http(f"{base}/v1/models/digits")[0] == 200


def test_version_pinning_hot_swap_and_a_corrupt_version(server, model_source, test_digits):
    _, pixels, _ = test_digits
    client = RestClient(server.rest_url)
    base = server.store.base_path
    failures, answered, stop = [], [0], threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                client.classify_pixels(pixels[:4])
                answered[0] += 1
            except Exception as e:  # pylint: disable=broad-except
                failures.append(repr(e))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: answered[0] >= 10)
        copy_version(model_source, base, 2)
        wait_for(lambda: [s["version"] for s in client.status()["model_version_status"]] == ["2", "1"])
        # A corrupt newer version is refused; version 2 stays the served one.
        os.makedirs(os.path.join(base, "3"))
        with open(os.path.join(base, "3", SAVED_MODEL_FILE), "wb") as f:
            f.write(b"truncated")
        wait_for(lambda: any(s["version"] == "3" for s in client.status()["model_version_status"]))
        count = answered[0]
        wait_for(lambda: answered[0] >= count + 10)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    statuses = {s["version"]: s for s in client.status()["model_version_status"]}
    assert statuses["2"]["state"] == "AVAILABLE" and statuses["1"]["state"] == "AVAILABLE"
    assert statuses["3"]["state"] == "END" and statuses["3"]["status"]["error_message"]
    # A label names a version, as TF Serving's version_labels do.
    server.store.labels["stable"] = 1
    assert http(f"{server.rest_url}/v1/models/digits/labels/stable")[1]["model_version_status"][0]["version"] == "1"
    latest = client.predict({"signature_name": features.IMAGES_SIGNATURE, "instances": pixels[:1].tolist()})
    pinned = client.predict({"signature_name": features.IMAGES_SIGNATURE, "instances": pixels[:1].tolist()}, version=1)
    assert latest == pinned  # Same weights pushed twice.
    assert http(f"{server.rest_url}/v1/models/digits/versions/3:predict", {"instances": [[0] * 784]})[0] == 404


def test_older_version_stands_in_when_the_newest_are_corrupt(tmp_path, model_source):
    from serving.model_store import ModelStore

    base = str(tmp_path / "digits")
    copy_version(model_source, base, 1)
    for bad in (2, 3):
        os.makedirs(os.path.join(base, str(bad)))
        with open(os.path.join(base, str(bad), SAVED_MODEL_FILE), "wb") as f:
            f.write(b"not a SavedModel")
    store = ModelStore(base, configs.MODEL_NAME, keep_versions=2)
    store.refresh()
    assert store.get().version == 1
    assert {s.version: s.state for s in store.status()} == {1: "AVAILABLE", 2: "END", 3: "END"}


def test_grpc_answers_as_rest_does(server, test_digits):
    import grpc
    from tensorflow_serving.apis import get_model_metadata_pb2

    _, pixels, _ = test_digits
    client = GrpcClient(f"127.0.0.1:{server.grpc_port}")
    try:
        outputs = client.predict(features.IMAGES_SIGNATURE, {features.IMAGES_INPUT: pixels.astype(np.float32)})
        rest = RestClient(server.rest_url).predict({"signature_name": features.IMAGES_SIGNATURE, "inputs": pixels.tolist()})
        np.testing.assert_allclose(outputs[features.PROBABILITIES_OUTPUT], rest["outputs"][features.PROBABILITIES_OUTPUT], atol=1e-6)
        pictures = [digit_files.png_bytes(p) for p in pixels[:5]]
        assert [p.digit for p in client.classify_pictures(pictures)] == [p.digit for p in RestClient(server.rest_url).classify_pictures(pictures)]
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = configs.MODEL_NAME
        meta = client.stub.GetModelMetadata(request, timeout=30)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        meta.metadata["signature_def"].Unpack(signatures)
        assert features.IMAGES_SIGNATURE in signatures.signature_def and meta.model_spec.version.value == 1
        with pytest.raises(grpc.RpcError) as bad:
            client.predict(features.IMAGES_SIGNATURE, {features.IMAGES_INPUT: np.zeros((1, 5), np.float32)})
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as missing:
            client.predict(features.IMAGES_SIGNATURE, {features.IMAGES_INPUT: pixels[:1].astype(np.float32)}, version=9)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        client.close()
