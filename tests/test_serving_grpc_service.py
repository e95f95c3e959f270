"""`serving.grpc_service`: every method of TF Serving's PredictionService and ModelService, on a stub
data plane (no model) behind an in-process gRPC server on a free loopback port: what each request asks
the data plane, how each answer is written, and the gRPC code of each `serving.errors` error."""

import dataclasses
import glob
import logging
import os
import tempfile
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving import errors, grpc_service, profiler
from serving.client import GRPC_MAX_MESSAGE_BYTES, GrpcClient
from serving.config import ServerOptions
from serving.dataplane import ModelRef
from serving.metrics import Metrics
from tests import stub_dataplane
from tests.stub_dataplane import StubDataPlane


@pytest.fixture(scope="module")
def served():
    """One server for the module (starting one takes a while); each test gets a fresh stub in it."""
    holder = {"stub": StubDataPlane()}

    class Forwarding:
        def __getattr__(self, name):
            return getattr(holder["stub"], name)

    metrics = Metrics()
    server = grpc_service.make_server(Forwarding(), metrics, ServerOptions(host="127.0.0.1", port=0))
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield holder, metrics, channel, server.port
    finally:
        channel.close()
        server.stop(grace=None)


@pytest.fixture
def stub(served) -> StubDataPlane:
    served[0]["stub"] = StubDataPlane()
    return served[0]["stub"]


@pytest.fixture
def prediction(served) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(served[2])


@pytest.fixture
def models(served) -> model_service_pb2_grpc.ModelServiceStub:
    return model_service_pb2_grpc.ModelServiceStub(served[2])


def _predict_request(version=None, label=None, **inputs) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for name, value in (inputs or {"images": np.array([[1, 2], [3, 4]], np.float32)}).items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def _examples(request, signature_name: str, count: int = 2):
    request.model_spec.name = "digits"
    request.model_spec.signature_name = signature_name
    for i in range(count):
        request.input.example_list.examples.add().features.feature["x"].int64_list.value.append(i)
    return request


def _code(call) -> tuple:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), raised.value.details()


def test_predict_answers_with_the_version_and_signature_that_answered(stub, prediction):
    response = prediction.Predict(_predict_request(), timeout=10)
    assert (response.model_spec.name, response.model_spec.version.value) == ("digits", 2)
    assert response.model_spec.signature_name == "serving_default"
    assert tf.make_ndarray(response.outputs["doubled"]).tolist() == [[2, 4], [6, 8]]
    assert tf.make_ndarray(response.outputs["total"]).tolist() == [3, 7]
    filtered = _predict_request(version=1)
    filtered.output_filter.append("total")
    response = prediction.Predict(filtered, timeout=10)
    assert list(response.outputs) == ["total"] and response.model_spec.version.value == 1
    assert prediction.Predict(_predict_request(label="stable"), timeout=10).model_spec.version.value == 1
    refs = [ref for name, ref in stub.calls if name == "servable"]
    assert refs == [ModelRef("digits"), ModelRef("digits", version=1), ModelRef("digits", label="stable")]


@pytest.mark.parametrize(
    "change, code, message",
    [
        (lambda r: r.ClearField("model_spec"), grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec"),
        (lambda r: setattr(r.model_spec, "name", "other"), grpc.StatusCode.NOT_FOUND, "Latest(other)"),
        (lambda r: r.model_spec.version.__setattr__("value", 9), grpc.StatusCode.NOT_FOUND, "Specific(digits, 9)"),
        (lambda r: setattr(r.model_spec, "version_label", "beta"), grpc.StatusCode.INVALID_ARGUMENT, "label: beta"),
        (lambda r: setattr(r.model_spec, "signature_name", "nope"), grpc.StatusCode.INVALID_ARGUMENT, '"nope"'),
        (lambda r: r.output_filter.append("nope"), grpc.StatusCode.INVALID_ARGUMENT, "output tensor alias not found"),
        (lambda r: r.inputs.pop("images"), grpc.StatusCode.INVALID_ARGUMENT, "Missing but required"),
        (
            lambda r: r.inputs["images"].tensor_shape.dim[1].__setattr__("size", 3),
            grpc.StatusCode.INVALID_ARGUMENT,
            "tensor_content has 16 bytes, shape [2, 3] of DT_FLOAT needs 24",
        ),
    ],
)
def test_bad_predict_requests(stub, prediction, change, code, message):
    request = _predict_request()
    change(request)
    got, details = _code(lambda: prediction.Predict(request, timeout=10))
    assert got == code and message in details


def test_classify_and_regress(stub, prediction):
    classified = prediction.Classify(
        _examples(classification_pb2.ClassificationRequest(), "classification"), timeout=10
    )
    assert classified.model_spec.signature_name == "classification" and classified.model_spec.version.value == 2
    assert [[(c.label, c.score) for c in row.classes] for row in classified.result.classifications] == [
        [("0", 0.25), ("1", 0.75)]
    ] * 2
    regressed = prediction.Regress(_examples(regression_pb2.RegressionRequest(), "regression", 3), timeout=10)
    assert [r.value for r in regressed.result.regressions] == [0.5, 1.5, 2.5]
    assert regressed.model_spec.version.value == 2 and regressed.model_spec.signature_name == "regression"
    (classify,) = [args for name, args in stub.calls if name == "classify"]
    assert classify[1] == "classification" and len(classify[2]) == 2
    empty = classification_pb2.ClassificationRequest()
    empty.model_spec.name = "digits"
    assert _code(lambda: prediction.Classify(empty, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Input is empty.",
    )
    wrong = _examples(regression_pb2.RegressionRequest(), "classification")
    code, details = _code(lambda: prediction.Regress(wrong, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "No regression inputs found" in details


def test_metadata(stub, prediction):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "digits"
    request.model_spec.version_label = "stable"
    response = prediction.GetModelMetadata(request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert response.model_spec.version.value == 1
    assert sorted(signatures.signature_def) == ["classification", "regression", "serving_default"]
    request.ClearField("metadata_field")
    assert _code(lambda: prediction.GetModelMetadata(request, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "GetModelMetadataRequest must specify at least one metadata_field",
    )
    request.metadata_field.append("graph")
    assert _code(lambda: prediction.GetModelMetadata(request, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Metadata field graph is not supported",
    )


def test_model_status(stub, models):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "digits"
    statuses = models.GetModelStatus(request, timeout=10).model_version_status
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert [(s.version, s.state) for s in statuses] == [(2, available), (1, available)]
    request.model_spec.version.value = 1
    assert [s.version for s in models.GetModelStatus(request, timeout=10).model_version_status] == [1]
    request.model_spec.name = "other"
    code, _ = _code(lambda: models.GetModelStatus(request, timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND
    assert [args for name, args in stub.calls if name == "model_status"] == [
        ("digits", None),
        ("digits", 1),
        ("other", 1),
    ]


def test_reload_config(stub, models):
    request = model_management_pb2.ReloadConfigRequest()
    entry = request.config.model_config_list.config.add(name="a", base_path="/models/a")
    entry.model_version_policy.latest.num_versions = 2
    models.HandleReloadConfigRequest(request, timeout=10)
    ((reloaded,),) = stub.core.reloaded
    assert (reloaded.name, reloaded.base_path, reloaded.policy.latest) == ("a", "/models/a", 2)
    entry.base_path = "relative"
    code, details = _code(lambda: models.HandleReloadConfigRequest(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("ReloadConfigRequest: Expected model a")
    assert len(stub.core.reloaded) == 1


def _multi(*tasks, version=None):
    request = inference_pb2.MultiInferenceRequest()
    for (model, signature_name), method in tasks:
        task = request.tasks.add(method_name=method)
        task.model_spec.name, task.model_spec.signature_name = model, signature_name
        if version is not None:
            task.model_spec.version.value = version
    for i in range(2):
        request.input.example_list.examples.add().features.feature["x"].int64_list.value.append(i)
    return request


def test_multi_inference_runs_classify_and_regress_tasks_on_one_input(stub, prediction):
    classify, regress = "tensorflow/serving/classify", "tensorflow/serving/regress"
    answer = prediction.MultiInference(
        _multi((("digits", "regression"), regress), (("digits", "classification"), classify), version=1), timeout=10
    )
    assert [r.value for r in answer.results[0].regression_result.regressions] == [0.5, 1.5]
    assert [
        [(c.label, c.score) for c in row.classes] for row in answer.results[1].classification_result.classifications
    ] == [[("0", 0.25), ("1", 0.75)]] * 2
    assert [(r.model_spec.name, r.model_spec.signature_name, r.model_spec.version.value) for r in answer.results] == [
        ("digits", "regression", 1),
        ("digits", "classification", 1),
    ]
    assert [(name, args[:2]) for name, args in stub.calls if name in ("classify", "regress")] == [
        ("regress", (1, "regression")),
        ("classify", (1, "classification")),
    ]
    for tasks, code, message in [
        (
            [(("digits", "regression"), regress), (("other", "classification"), classify)],
            "INVALID_ARGUMENT",
            "same model name",
        ),
        (
            [(("digits", "regression"), regress), (("", "classification"), classify)],
            "INVALID_ARGUMENT",
            "empty model name",
        ),
        (
            [(("digits", "regression"), regress)] * 2,
            "INVALID_ARGUMENT",
            "Duplicate evaluation of signature: regression",
        ),
        ([(("digits", "nope"), regress)], "INVALID_ARGUMENT", "Requested signature not found in model graph: nope"),
        (
            [(("digits", "regression"), "tensorflow/serving/predict")],
            "UNIMPLEMENTED",
            "Unsupported signature method_name",
        ),
        ([(("digits", "classification"), regress)], "INVALID_ARGUMENT", "No regression inputs found"),
        ([], "NOT_FOUND", "Servable not found for request"),
    ]:
        stub.calls.clear()
        request = _multi(*tasks)
        got, details = _code(lambda: prediction.MultiInference(request, timeout=10))  # noqa: B023 (called at once)
        assert (got.name, message in details) == (code, True), details
        assert not [name for name, _ in stub.calls if name in ("classify", "regress")]  # checked before any runs


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidArgument("bad input"),
        errors.FailedPrecondition("not now"),
        errors.NotFound("gone"),
        errors.ResourceExhausted("too much"),
        errors.Unavailable("queue full"),
        errors.DeadlineExceeded("too slow"),
        errors.Unimplemented("not here"),
        errors.Internal("broken"),
    ],
)
def test_model_errors_carry_their_grpc_code(stub, prediction, error):
    stub.error = error
    assert _code(lambda: prediction.Predict(_predict_request(), timeout=10)) == (error.code, error.message)
    request = _examples(classification_pb2.ClassificationRequest(), "classification")
    assert _code(lambda: prediction.Classify(request, timeout=10)) == (error.code, error.message)


def test_an_unexpected_failure_is_internal_without_its_text(stub, prediction):
    stub.error = RuntimeError("secret detail")
    assert _code(lambda: prediction.Predict(_predict_request(), timeout=10)) == (
        grpc.StatusCode.INTERNAL,
        "Internal error; see the server log",
    )


def test_a_model_slower_than_the_deadline(stub, prediction):
    stub.hang = True
    code, _ = _code(lambda: prediction.Predict(_predict_request(), timeout=0.3))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED


def _count(metrics: Metrics, status: str) -> float:
    prefix = f':tensorflow:serving:request_count{{model_name="digits",status="{status}"}} '
    lines = [line for line in metrics.exposition().decode().splitlines() if line.startswith(prefix)]
    return float(lines[0][len(prefix) :]) if lines else 0.0


def test_predict_classify_and_regress_are_counted_under_tf_servings_names(served, stub, prediction):
    metrics = served[1]
    before = _count(metrics, "OK"), _count(metrics, "NOT_FOUND")
    prediction.Predict(_predict_request(), timeout=10)
    stub.error = errors.NotFound("gone")
    _code(lambda: prediction.Predict(_predict_request(), timeout=10))
    assert (_count(metrics, "OK"), _count(metrics, "NOT_FOUND")) == (before[0] + 1, before[1] + 1)
    assert 'request_latency_count{API="Predict",entrypoint="GRPC",model_name="digits"}' in metrics.exposition().decode()


def test_grpc_socket_path_serves_on_a_unix_socket_with_the_channel_arguments_given():
    """TF Serving's `--grpc_socket_path` and `--grpc_channel_arguments`: the same services on a UNIX
    socket as well, with the server's arguments, where one given replaces the server's own."""
    options = ServerOptions(
        host="127.0.0.1",
        port=0,
        grpc_channel_arguments=(("grpc.max_receive_message_length", 1024), ("grpc.lb_policy_name", "grpclb")),
    )
    assert grpc_service.channel_arguments(options) == [
        ("grpc.max_send_message_length", grpc_service.MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", 1024),
        ("grpc.lb_policy_name", "grpclb"),
    ]
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:  # a short path: a socket's is at most 107 bytes
        socket_path = os.path.join(folder, "serving.sock")
        server = grpc_service.make_server(
            StubDataPlane(), Metrics(), dataclasses.replace(options, grpc_socket_path=socket_path)
        )
        server.start()
        try:
            with grpc.insecure_channel(f"unix:{socket_path}") as channel:
                request = get_model_status_pb2.GetModelStatusRequest()
                request.model_spec.name = "digits"
                status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
                assert status.model_version_status
                big = _predict_request(x=np.zeros((1, 2000), np.float32))
                code, details = _code(
                    lambda: prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(big, timeout=10)
                )
                assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            server.stop(grace=None)


WIDE = 2048
"""Values per row of the wide signature below: 1,024 rows of it are 8 MB of float32, over gRPC's 4 MB
default, yet within `max_batch_per_request` and `max_values_per_request`."""


def test_a_batch_over_grpcs_4_mb_default_is_answered_as_tf_serving_answers_it(served):
    """TF Serving's server takes and sends messages up to INT32_MAX, and so do this server and
    `GrpcClient`; the input checks still refuse a batch over the limits before anything is built."""
    assert GRPC_MAX_MESSAGE_BYTES == grpc_service.MAX_MESSAGE_BYTES == 2**31 - 1
    assert dict(grpc_service.channel_arguments(ServerOptions())) == {
        "grpc.max_receive_message_length": 2**31 - 1,
        "grpc.max_send_message_length": 2**31 - 1,
    }
    method, _, outputs = stub_dataplane.SIGNATURES["serving_default"]
    wide = {stub_dataplane.IMAGES: tf.TensorSpec([None, WIDE], tf.float32)}
    served[0]["stub"] = StubDataPlane({**stub_dataplane.SIGNATURES, "serving_default": (method, wide, outputs)})
    images = np.ones((1024, WIDE), np.float32)
    assert _predict_request(images=images).ByteSize() > 4 * 1024 * 1024
    client = GrpcClient(f"127.0.0.1:{served[3]}", "digits")
    try:
        answer = client.predict("serving_default", {"images": images})
        assert answer["doubled"].shape == (1024, WIDE) and answer["total"].tolist() == [WIDE] * 1024
        too_many = np.ones((1025, WIDE), np.float32)
        code, details = _code(lambda: client.predict("serving_default", {"images": too_many}))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    finally:
        client.channel.close()


def _health(channel, service: str) -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    return health_pb2_grpc.HealthStub(channel).Check(request, timeout=10).status


def _reflected_services(channel) -> list:
    return sorted(ProtoReflectionDescriptorDatabase(channel).get_services())


def test_reflection_lists_the_services_and_describes_them_and_no_health_service_unless_asked(served):
    """Server reflection is always on, as in TF Serving (which links gRPC's reflection library): `grpcurl
    list` names the services and `grpcurl describe` reads their methods; the health checking service is
    off by default, as `--enable_grpc_healthcheck_service` is."""
    channel = served[2]
    assert _reflected_services(channel) == [
        "grpc.reflection.v1alpha.ServerReflection",
        "tensorflow.ProfilerService",
        "tensorflow.serving.ModelService",
        "tensorflow.serving.PredictionService",
    ]
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    methods = pool.FindServiceByName("tensorflow.serving.PredictionService").methods_by_name
    assert sorted(methods) == ["Classify", "GetModelMetadata", "MultiInference", "Predict", "Regress"]
    assert methods["Predict"].input_type.full_name == "tensorflow.serving.PredictRequest"
    assert _code(lambda: _health(channel, "")) == (grpc.StatusCode.UNIMPLEMENTED, "Method not found!")


def test_health_checking_service_answers_serving_once_listening_and_not_serving_while_stopping():
    """`--enable_grpc_healthcheck_service`: grpc.health.v1.Health answers SERVING for the server ("")
    and for "ModelService" and "PredictionService" (the names TF Serving's server.cc sets) once the
    server listens, NOT_FOUND for other names, and NOT_SERVING from the moment the server starts stopping."""
    server = grpc_service.make_server(
        StubDataPlane(), Metrics(), ServerOptions(host="127.0.0.1", port=0, enable_grpc_healthcheck_service=True)
    )
    server.start()
    stopped = None
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            for name in ("", "ModelService", "PredictionService"):
                assert _health(channel, name) == health_pb2.HealthCheckResponse.SERVING, name
            assert _code(lambda: _health(channel, "tensorflow.serving.PredictionService"))[0] == (
                grpc.StatusCode.NOT_FOUND
            )
            assert "grpc.health.v1.Health" in _reflected_services(channel)
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            stopped = server.stop(grace=10)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
    finally:
        (stopped or server.stop(grace=None)).wait(timeout=15)


def test_tensorflows_profiler_client_captures_this_process_into_its_own_logdir(served, tmp_path):
    """`tf.profiler.experimental.client.trace`, as TensorBoard's capture and TF Serving's own test call
    it: the trace of what TensorFlow ran meanwhile comes back and lands under the client's logdir, in the
    file TensorBoard's profile plugin reads; the server writes nothing of it."""
    working = threading.Event()

    def work():
        x = tf.random.uniform((64, 64))
        while not working.is_set():
            tf.linalg.matmul(x, x)

    thread = threading.Thread(target=work)
    thread.start()
    try:
        tf.profiler.experimental.client.trace(f"grpc://127.0.0.1:{served[3]}", str(tmp_path), 300)
    finally:
        working.set()
        thread.join()
    (trace,) = glob.glob(str(tmp_path / "plugins" / "profile" / "*" / f"127.0.0.1_{served[3]}.xplane.pb"))
    with open(trace, "rb") as f:
        assert profiler.has_events(f.read())
    assert not glob.glob(os.path.join(tempfile.gettempdir(), "digits-profile-*"))


def _profile(channel, timeout: float = 10, **fields):
    call = channel.unary_unary(
        f"/{profiler.SERVICE_NAME}/Profile",
        request_serializer=profiler.MESSAGES["ProfileRequest"].SerializeToString,
        response_deserializer=profiler.MESSAGES["ProfileResponse"].FromString,
    )
    return call(profiler.MESSAGES["ProfileRequest"](**fields), timeout=timeout)


def test_a_capture_ends_when_its_session_is_terminated_and_is_one_at_a_time(served, caplog):
    caplog.set_level(logging.INFO, logger=profiler.__name__)
    channel = served[2]
    answers = []
    thread = threading.Thread(target=lambda: answers.append(_profile(channel, duration_ms=50_000, session_id="s1")))
    started = time.monotonic()
    thread.start()
    while "Profiling for 50000 ms (session 's1')" not in caplog.text:
        assert time.monotonic() - started < 30, "the capture did not start"
        time.sleep(0.05)
    assert _code(lambda: _profile(channel, duration_ms=100, session_id="s2"))[0] == grpc.StatusCode.UNAVAILABLE
    terminate = channel.unary_unary(
        f"/{profiler.SERVICE_NAME}/Terminate",
        request_serializer=profiler.MESSAGES["TerminateRequest"].SerializeToString,
        response_deserializer=profiler.MESSAGES["TerminateResponse"].FromString,
    )
    terminate(profiler.MESSAGES["TerminateRequest"](session_id="s1"), timeout=5)
    thread.join(timeout=20)
    assert time.monotonic() - started < 20 and [a.tool_data[0].name for a in answers] == [profiler.TRACE_TOOL]


@pytest.mark.parametrize("duration_ms", [0, profiler.MAX_DURATION_MS + 1])
def test_a_capture_of_no_time_or_too_long_is_refused_naming_the_field(served, duration_ms):
    code, message = _code(lambda: _profile(served[2], duration_ms=duration_ms))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "opts.duration_ms" in message


def test_no_profiler_service_with_enable_profiler_false():
    server = grpc_service.make_server(
        StubDataPlane(), Metrics(), ServerOptions(host="127.0.0.1", port=0, enable_profiler=False)
    )
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            assert _code(lambda: _profile(channel, duration_ms=100))[0] == grpc.StatusCode.UNIMPLEMENTED
            assert profiler.SERVICE_NAME not in _reflected_services(channel)
    finally:
        server.stop(grace=None).wait(timeout=15)
