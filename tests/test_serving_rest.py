"""`serving.rest`: every route of TF Serving's REST API, on a stub data plane (no model): what each
request asks the data plane, how each answer and each `serving.errors` error is written, and what
any other path or method gets."""

import base64

import grpc
import pytest
from fastapi.testclient import TestClient

from serving import errors, rest
from serving.config import ServerOptions
from serving.dataplane import ModelRef
from serving.metrics import Metrics
from tests import stub_dataplane
from tests.stub_dataplane import StubDataPlane

API = "/v1/models/digits"
ROWS = {"instances": [[1, 2], [3, 4]]}


@pytest.fixture
def stub() -> StubDataPlane:
    return StubDataPlane()


def _client(stub: StubDataPlane, **options) -> TestClient:
    return TestClient(
        rest.make_app(stub, Metrics(), ServerOptions(**options), page=lambda: b"<html>page</html>"),
        raise_server_exceptions=False,
    )


@pytest.fixture
def client(stub) -> TestClient:
    return _client(stub)


def test_status_of_every_version_or_one(client, stub):
    answer = client.get(API)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    statuses = answer.json()["model_version_status"]
    assert [(s["version"], s["state"], s["status"]["error_code"]) for s in statuses] == [
        ("2", "AVAILABLE", "OK"),
        ("1", "AVAILABLE", "OK"),
    ]
    assert [s["version"] for s in client.get(f"{API}/versions/1").json()["model_version_status"]] == ["1"]
    client.get(f"{API}/labels/stable")  # As TF Serving: the label is not looked at.
    assert [call for call in stub.calls if call[0] == "model_status"] == [
        ("model_status", ("digits", None)),
        ("model_status", ("digits", 1)),
        ("model_status", ("digits", None)),
    ]


def test_metadata_by_latest_version_and_label(client):
    answer = client.get(f"{API}/metadata").json()
    assert answer["model_spec"] == {"name": "digits", "signature_name": "", "version": "2"}
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    assert sorted(signatures) == ["classification", "regression", "serving_default"]
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"
    assert client.get(f"{API}/versions/1/metadata").json()["model_spec"]["version"] == "1"
    assert client.get(f"{API}/labels/stable/metadata").json()["model_spec"]["version"] == "1"


def test_predict_row_and_columnar_formats(client, stub):
    rows = client.post(f"{API}:predict", json=ROWS)
    assert rows.status_code == 200
    assert rows.json() == {
        "predictions": [{"doubled": [2.0, 4.0], "total": 3.0}, {"doubled": [6.0, 8.0], "total": 7.0}]
    }
    columns = client.post(f"{API}/versions/1:predict", json={"inputs": {"images": [[1, 2]]}})
    assert columns.json() == {"outputs": {"doubled": [[2.0, 4.0]], "total": [3.0]}}
    labelled = client.post(f"{API}/labels/stable:predict", json={"signature_name": "serving_default", **ROWS})
    assert labelled.status_code == 200
    predicted = [args[:2] for name, args in stub.calls if name == "predict"]
    assert predicted == [(2, "serving_default"), (1, "serving_default"), (1, "serving_default")]
    refs = [ref for name, ref in stub.calls if name == "servable"]
    assert refs == [ModelRef("digits"), ModelRef("digits", version=1), ModelRef("digits", label="stable")]


def test_classify_and_regress(client, stub):
    examples = {"examples": [{"image": [1, 2]}, {"tag": {"b64": base64.b64encode(b"hi").decode()}}]}
    classified = client.post(f"{API}:classify", json={"signature_name": "classification", **examples})
    assert classified.status_code == 200
    assert classified.json() == {"results": [[["0", 0.25], ["1", 0.75]]] * 2}
    regressed = client.post(f"{API}/versions/1:regress", json={"signature_name": "regression", **examples})
    assert regressed.json() == {"results": [0.5, 1.5]}
    (classify,) = [args for name, args in stub.calls if name == "classify"]
    assert classify[:2] == (2, "classification") and len(classify[2]) == 2
    # The default signature is not a classification signature: refused with TF Serving's message.
    wrong = client.post(f"{API}:classify", json=examples)
    assert wrong.status_code == 400 and "No classification inputs found" in wrong.json()["error"]


@pytest.mark.parametrize(
    "method, path, status, message",
    [
        ("GET", "/v1/models/other", 404, "Servable not found for request: Latest(other)"),
        ("GET", f"{API}/versions/9/metadata", 404, "Servable not found for request: Specific(digits, 9)"),
        ("GET", f"{API}/labels/beta/metadata", 400, "Unrecognized servable version label: beta"),
        ("GET", f"{API}/versions/99999999999999999999", 400, "Failed to convert version"),
        ("POST", f"{API}:explode", 400, f"Malformed request: POST {API}:explode"),
        ("GET", f"{API}:predict", 400, f"Malformed request: GET {API}:predict"),
        ("DELETE", API, 400, f"Malformed request: DELETE {API}"),
        ("GET", f"{API}/versions/one", 400, f"Malformed request: GET {API}/versions/one"),
        ("GET", "/v2/models/digits", 404, "Not found: GET /v2/models/digits"),
    ],
)
def test_unknown_models_and_malformed_paths_and_methods(client, method, path, status, message):
    answer = client.request(method, path)
    assert (answer.status_code, answer.headers["content-type"]) == (status, "application/json")
    assert message in answer.json()["error"] and list(answer.json()) == ["error"]


def test_a_cors_preflight_is_answered(client):
    assert client.options(f"{API}:predict", headers={"Origin": "http://example.com"}).status_code == 200


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"{broken", "JSON Parse error"),
        (b'{"instances": [[1, 2]], "signature_name": "nope"}', 'Serving signature name: "nope" not found'),
    ],
)
def test_bad_predict_bodies_are_400_with_the_reason(client, body, message):
    answer = client.post(f"{API}:predict", content=body)
    assert answer.status_code == 400 and message in answer.json()["error"]


@pytest.mark.parametrize(
    "error, status",
    [
        (errors.InvalidArgument("bad input"), 400),
        (errors.FailedPrecondition("not now"), 400),
        (errors.NotFound("gone"), 404),
        (errors.ResourceExhausted("too much"), 429),
        (errors.Unavailable("queue full"), 503),
        (errors.DeadlineExceeded("too slow"), 504),
        (errors.Unimplemented("not here"), 501),
        (errors.Internal("broken"), 500),
    ],
)
@pytest.mark.parametrize("operation", ["predict", "classify", "regress"])
def test_model_errors_map_to_tf_servings_http_statuses(client, stub, error, status, operation):
    stub.error = error
    signature = {"classify": "classification", "regress": "regression"}.get(operation)
    body = {"signature_name": signature, "examples": [{"x": [1]}]} if signature else ROWS
    answer = client.post(f"{API}:{operation}", json=body)
    assert (answer.status_code, answer.json()) == (status, {"error": error.message})


def test_an_unexpected_failure_is_500_without_its_text(client, stub):
    stub.error = RuntimeError("secret detail")
    answer = client.post(f"{API}:predict", json=ROWS)
    assert (answer.status_code, answer.json()) == (500, {"error": "Internal error; see the server log"})


def test_limits_on_the_body_and_the_models_time(stub):
    small = _client(stub, max_body_bytes=64, rest_api_timeout_in_ms=50)
    answer = small.post(f"{API}:predict", json={"instances": [[1, 2]] * 20})
    assert answer.status_code == 413 and "over the limit of 64" in answer.json()["error"]
    stub.hang = True
    answer = small.post(f"{API}:predict", json=ROWS)
    assert (answer.status_code, answer.json()) == (
        504,
        {"error": "Deadline Exceeded: the model did not answer in time"},
    )


def test_prometheus_metrics_count_every_request_under_tf_servings_names(stub):
    metrics = Metrics()
    client = TestClient(rest.make_app(stub, metrics, ServerOptions()))
    client.post(f"{API}:predict", json=ROWS)
    client.post(f"{API}:predict", content=b"{broken")
    client.get(API)
    answer = client.get("/monitoring/prometheus/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = answer.text
    assert ':tensorflow:serving:request_count{model_name="digits",status="OK"} 2.0' in text
    assert ':tensorflow:serving:request_count{model_name="digits",status="INVALID_ARGUMENT"} 1.0' in text
    assert 'request_latency_count{API="predict",entrypoint="REST",model_name="digits"} 1.0' in text
    metrics.record("digits", "Predict", "GRPC", grpc.StatusCode.OK, 0.001)  # One exporter for both protocols.
    assert 'entrypoint="GRPC"' in client.get("/monitoring/prometheus/metrics").text
    moved = TestClient(rest.make_app(stub, Metrics(), ServerOptions(prometheus_path="/metrics")))
    assert moved.get("/metrics").status_code == 200
    assert moved.get("/monitoring/prometheus/metrics").status_code == 404
    off = TestClient(rest.make_app(stub, Metrics(), ServerOptions(prometheus_path=None)))
    assert off.get("/monitoring/prometheus/metrics").status_code == 404


def _schemas(node):
    """Every JSON Schema object in an OpenAPI description (the values under `schema` and below)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema" and isinstance(value, dict):
                yield from _schema_tree(value)
            else:
                yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def _schema_tree(schema):
    yield schema
    for key in ("items", "not", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _schema_tree(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        for each in schema.get(key, []):
            yield from _schema_tree(each)
    for each in schema.get("properties", {}).values():
        yield from _schema_tree(each)


def test_docs_openapi_and_the_drawing_page(client, stub):
    spec = client.get("/openapi.json").json()
    assert f"{API.replace('digits', '{model_name}')}:predict" in spec["paths"]
    # OpenAPI 3.0, which the bundled Swagger UI renders (it refuses 3.1), and nothing of 3.1 in it.
    assert spec["openapi"] == rest.OPENAPI_VERSION == "3.0.3"
    assert "webhooks" not in spec and "jsonSchemaDialect" not in spec
    components = spec.get("components", {})
    schemas = [*_schemas(spec["paths"]), *_schemas(components)]
    schemas += [each for schema in components.get("schemas", {}).values() for each in _schema_tree(schema)]
    assert len(schemas) > 10
    for schema in schemas:
        assert not {"const", "examples", "prefixItems", "$defs", "$schema"} & set(schema), schema
        assert not isinstance(schema.get("type"), list) and schema.get("type") != "null", schema
    assert "swagger-ui-bundle.js" in client.get("/docs").text
    assert client.get("/").text == "<html>page</html>"
    assert TestClient(rest.make_app(stub, Metrics(), ServerOptions())).get("/").status_code == 404


def test_the_stub_answers_as_the_model_store_does():
    """The stub's own contract, so that the tests above test the front end and not the stub."""
    stub = StubDataPlane()
    assert stub.servable(ModelRef("digits")).version == stub_dataplane.VERSIONS[0]
    with pytest.raises(errors.NotFound):
        stub.model_status("digits", 7)


def test_feedback_hands_the_picture_and_label_to_the_data_plane(client, stub):
    picture = b"\x89PNG drawn"
    body = {"picture": {"b64": base64.b64encode(picture).decode()}, "label": 7}
    answer = client.post("/feedback", json=body)
    assert (answer.status_code, answer.json()) == (200, {"stored": "stored.png", "label": 7})
    assert stub.calls == [("store_feedback", (picture, 7))]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"label": 7}, "Missing 'picture'"),
        ({"picture": {"b64": "aGk="}}, "Missing 'label'"),
        ({"picture": "aGk=", "label": 7}, 'picture: expected {"b64": "..."}'),
        ({"picture": {"b64": "not base64!"}, "label": 7}, "input 'picture': Unable to base64 decode"),
    ],
)
def test_a_malformed_feedback_request_is_a_400_naming_the_field(client, stub, body, message):
    answer = client.post("/feedback", json=body)
    assert answer.status_code == 400 and answer.json()["error"].startswith(message)
    assert stub.calls == []


def test_feedback_refused_by_the_data_plane_keeps_its_status(client, stub):
    stub.error = errors.NotFound("Feedback is off: start the server with --feedback_dir")
    answer = client.post("/feedback", json={"picture": {"b64": "aGk="}, "label": 1})
    assert (answer.status_code, answer.json()) == (
        404,
        {"error": "Feedback is off: start the server with --feedback_dir"},
    )
