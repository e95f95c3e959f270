"""The serving layer's parts on their own, without a trained model: errors and their HTTP/gRPC codes,
TF Serving's config files, request checks, the JSON formats, batching, and the model store's watch."""

import concurrent.futures
import os
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2

from serving import config, errors, inputs, rest_codec
from serving.batching import BatchScheduler
from serving.dataplane import classification_result
from serving.metrics import Metrics
from serving.model_store import ModelStore, ServerCore, publish_version
from serving.servable import SAVED_MODEL_FILE, Servable, Signature, model_message


@pytest.mark.parametrize(
    "error, http_status, code",
    [
        (errors.InvalidArgument, 400, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.FailedPrecondition, 400, grpc.StatusCode.FAILED_PRECONDITION),
        (errors.NotFound, 404, grpc.StatusCode.NOT_FOUND),
        (errors.ResourceExhausted, 429, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.PayloadTooLarge, 413, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.RequestTimeout, 408, grpc.StatusCode.DEADLINE_EXCEEDED),
        (errors.DeadlineExceeded, 504, grpc.StatusCode.DEADLINE_EXCEEDED),
        (errors.Unavailable, 503, grpc.StatusCode.UNAVAILABLE),
        (errors.Unimplemented, 501, grpc.StatusCode.UNIMPLEMENTED),
        (errors.Internal, 500, grpc.StatusCode.INTERNAL),
    ],
)
def test_each_error_carries_its_grpc_code_and_tf_servings_http_status(error, http_status, code):
    raised = error("what went wrong")
    assert (raised.http_status, raised.code, raised.message) == (http_status, code, "what went wrong")
    assert errors.from_http_status(http_status, "m").http_status == http_status  # What a REST client sees.


# --- configuration files, in TF Serving's formats --------------------------------------------------


def test_model_config_file_policies_and_labels(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("""
model_config_list {
  config { name: "digits" base_path: "/models/digits" model_platform: "tensorflow"
           model_version_policy { latest { num_versions: 2 } } version_labels { key: "stable" value: 3 } }
  config { name: "pinned" base_path: "/models/pinned" model_version_policy { specific { versions: 1 versions: 4 } } }
  config { name: "every" base_path: "gs://bucket/every" model_version_policy { all {} } }
  config { name: "plain" base_path: "/models/plain" }
}""")
    digits, pinned, every, plain = config.read_model_config(str(path))
    assert (digits.policy.choose([1, 2, 3, 5]), digits.label_map) == ([5, 3], {"stable": 3})
    assert pinned.policy.choose([1, 2, 3, 4, 5]) == [4, 1]
    assert every.policy.choose([2, 1, 3]) == [3, 2, 1] and every.base_path == "gs://bucket/every"
    assert plain.policy.choose([1, 2, 3]) == [3]  # TF Serving's default: the latest version only


@pytest.mark.parametrize(
    "text, message",
    [
        (
            'model_config_list { config { name: "a" base_path: "/x" } config { name: "a" base_path: "/y" } }',
            "Illegal to list model a multiple times in config list",
        ),
        (
            'model_config_list { config { name: "a" base_path: "relative" } }',
            "Expected model a to have an absolute path or URI; got base_path()=relative",
        ),
        ('model_config_list { config { name: "a" base_path: "/x" model_platform: "onnx" } }', "platform 'onnx'"),
        ('model_config_list { config { nmae: "a" } }', 'has no field named "nmae"'),
    ],
)
def test_model_config_file_mistakes_name_the_file(tmp_path, text, message):
    path = tmp_path / "models.config"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=f"{path}: .*{message}".replace("(", r"\(").replace(")", r"\)")):
        config.read_model_config(str(path))


def test_batching_parameters_file(tmp_path):
    path = tmp_path / "batching.txt"
    path.write_text(
        "max_batch_size { value: 64 }\nbatch_timeout_micros { value: 2000 }\n"
        "allowed_batch_sizes: 16\nallowed_batch_sizes: 64\n"
    )
    options = config.read_batching_parameters(str(path))
    assert (options.max_batch_size, options.batch_timeout_micros, options.allowed_batch_sizes) == (64, 2000, (16, 64))
    assert options.max_enqueued_batches == config.BatchingOptions().max_enqueued_batches == 10  # TF Serving's default
    path.write_text("max_batch_size { value: 64 }\nallowed_batch_sizes: 16\nallowed_batch_sizes: 32\n")
    with pytest.raises(config.ConfigError, match="Last entry in allowed_batch_sizes must match max_batch_size"):
        config.read_batching_parameters(str(path))


def test_monitoring_config_file(tmp_path):
    path = tmp_path / "monitoring.config"
    path.write_text('prometheus_config { enable: true path: "/metrics" }')
    assert config.read_monitoring_config(str(path)) == "/metrics"
    path.write_text("prometheus_config { enable: true }")
    assert config.read_monitoring_config(str(path)) == config.PROMETHEUS_PATH
    path.write_text("prometheus_config { enable: false }")
    assert config.read_monitoring_config(str(path)) is None


# --- request checks --------------------------------------------------------------------------------

IMAGES = tf.TensorSpec(None, tf.float32)
BYTES = tf.TensorSpec([None], tf.string)


def test_values_become_arrays_of_the_signature_dtype():
    array = inputs.from_values("images", [[0, 1.5, 255]], IMAGES, 8)
    assert array.dtype == np.float32 and array.shape == (1, 3)
    assert inputs.from_values("image_bytes", [b"a", b"b"], BYTES, 8).tolist() == [b"a", b"b"]


@pytest.mark.parametrize(
    "value, spec, message",
    [
        ([[1, 2], [3]], IMAGES, "ragged nested lists"),
        ([["a"]], IMAGES, "must be numbers"),
        ([[True, None]], IMAGES, "must be numbers"),
        (5.0, IMAGES, "must be a batch"),
        ([], IMAGES, "empty batch"),
        ([[0]] * 9, IMAGES, "9 examples, the limit is 8"),
        ([1, 2], BYTES, "string tensor"),
        ([[b"a"]], BYTES, "has shape \\[1, 1\\], the signature expects \\(None,\\)"),
    ],
)
def test_bad_values_are_refused_with_the_input_named(value, spec, message):
    with pytest.raises(errors.InvalidArgument, match=message):
        inputs.from_values("x", value, spec, 8)


def test_a_grpc_tensor_is_checked_before_it_is_built():
    huge = tf.make_tensor_proto(np.float32(0))
    huge.tensor_shape.Clear()
    for size in (10_000_000, 784):
        huge.tensor_shape.dim.add(size=size)
    started = time.perf_counter()
    with pytest.raises(errors.InvalidArgument, match=r"input 'x' has 10000000 examples, the limit is 1024"):
        inputs.from_proto("x", huge, IMAGES, 1024, 1 << 22)
    huge.tensor_shape.dim[0].size = 1000
    huge.tensor_shape.dim[1].size = 100_000
    with pytest.raises(errors.InvalidArgument, match=r"declares shape \[1000, 100000\] \(100000000 values\)"):
        inputs.from_proto("x", huge, IMAGES, 1024, 1 << 22)
    assert time.perf_counter() - started < 1.0  # Refused from the header: nothing was allocated.
    with pytest.raises(errors.InvalidArgument, match="is DT_DOUBLE, the signature expects DT_FLOAT"):
        inputs.from_proto("x", tf.make_tensor_proto(np.zeros((1, 4))), IMAGES, 1024, 1 << 22)
    short = tf.make_tensor_proto(np.zeros((2, 4), np.float32))
    short.tensor_content = short.tensor_content[:-4]
    with pytest.raises(errors.InvalidArgument, match="tensor_content has 28 bytes"):
        inputs.from_proto("x", short, IMAGES, 1024, 1 << 22)
    assert inputs.from_proto("x", tf.make_tensor_proto(np.ones((2, 4), np.float32)), IMAGES, 1024, 1 << 22).sum() == 8


def test_inputs_of_a_request_must_agree_on_the_batch():
    with pytest.raises(errors.InvalidArgument, match="same number of examples"):
        inputs.batch_size({"a": np.zeros((2, 3)), "b": np.zeros((3, 3))})
    with pytest.raises(errors.InvalidArgument, match=r"Missing but required: \['b'\]"):
        inputs.check_names({"a": 1}, {"a": IMAGES, "b": IMAGES})


def test_model_errors_keep_the_line_that_says_what_is_wrong():
    assertion = tf.errors.InvalidArgumentError(
        None,
        None,
        "Graph execution error:\n\nDetected at node x\n"
        "<stack traces unavailable>\nassertion failed: [input \\'images\\': "
        "pixel values must be numbers] \n\t [[{{node Assert}}]]",
    )
    assert model_message(assertion) == "input 'images': pixel values must be numbers"
    reshape = tf.errors.InvalidArgumentError(
        None,
        None,
        "Graph execution error:\n\nDetected at node R\n"
        "<stack traces unavailable>\nInput to reshape is a tensor with 783 values"
        "\n\t [[{{node R}}]] [Op:__inference_signature_wrapper_2334]",
    )
    assert model_message(reshape) == "Input to reshape is a tensor with 783 values"


# --- TF Serving's JSON formats ---------------------------------------------------------------------


def _signature(**specs: tf.TensorSpec) -> Signature:
    return Signature("s", "tensorflow/serving/predict", specs, lambda **t: {k + "_out": v for k, v in t.items()})


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"{not json", "JSON Parse error"),
        (b"[" * 5000, "JSON Parse error"),
        (b'{"a": ' * 3000 + b"1" + b"}" * 3000, "JSON Parse error: the document is nested too deeply"),
        (b"[1, 2]", "Is not object"),
        (b'{"signature_name": 5}', "'signature_name' key must be a string value"),
    ],
)
def test_bodies_that_are_not_a_request_object(body, message):
    with pytest.raises(errors.InvalidArgument, match=message):
        rest_codec.parse_body(body)


def test_nan_and_infinity_literals_parse_as_tf_servings_parser_does():
    assert np.isnan(rest_codec.parse_body(b'{"inputs": [NaN, Infinity]}')["inputs"][0])


def test_row_and_columnar_formats():
    one = _signature(images=IMAGES)
    arrays, rows = rest_codec.predict_inputs({"instances": [[1, 2], [3, 4]]}, one, 8)
    assert rows and arrays["images"].tolist() == [[1, 2], [3, 4]]
    arrays, rows = rest_codec.predict_inputs({"inputs": {"images": [[1, 2]]}}, one, 8)
    assert not rows and arrays["images"].shape == (1, 2)
    two = _signature(a=IMAGES, b=BYTES)
    arrays, _ = rest_codec.predict_inputs(
        {"instances": [{"a": [1], "b": {"b64": "aGk="}}, {"a": [2], "b": "x"}]}, two, 8
    )
    assert arrays["b"].tolist() == [b"hi", b"x"] and arrays["a"].tolist() == [[1], [2]]


@pytest.mark.parametrize(
    "document, message",
    [
        ({}, "Missing 'inputs' or 'instances' key"),
        ({"instances": [1], "inputs": [1]}, "only one of 'inputs' or 'instances'"),
        ({"instances": {}}, "Expecting 'instances' to be an list/array"),
        ({"instances": []}, "No values in 'instances' array"),
        ({"instances": [{"a": [1]}]}, "keys must be equal to: a,b"),
        ({"instances": [[1]]}, "instances is a plain list, but expecting list of objects"),
        ({"inputs": {"a": [[1]]}}, "Missing named input: b in 'inputs' object"),
        ({"instances": [{"a": [1], "b": {"b64": "%%"}}]}, "Unable to base64 decode"),
        ({"instances": [{"a": [1], "b": {"b64": "aGk=", "x": 1}}]}, "not formatted correctly for base64 data"),
    ],
)
def test_predict_request_mistakes_get_tf_servings_messages(document, message):
    with pytest.raises(errors.InvalidArgument, match=message):
        rest_codec.predict_inputs(document, _signature(a=IMAGES, b=BYTES), 8)


def test_predict_responses():
    outputs = {"p": np.array([[0.25, 0.75], [1.0, 0.0]], np.float32), "d": np.array([1, 0])}
    assert rest_codec.predict_response(outputs, True, 2) == (
        b'{"predictions":[{"d":1,"p":[0.25,0.75]},{"d":0,"p":[1.0,0.0]}]}'
    )
    assert rest_codec.predict_response({"p": outputs["p"]}, True, 2) == b'{"predictions":[[0.25,0.75],[1.0,0.0]]}'
    assert rest_codec.predict_response(outputs, False, 2) == b'{"outputs":{"d":[1,0],"p":[[0.25,0.75],[1.0,0.0]]}}'
    strings = {"s": np.array([b"text", b"\xff\xfe"], dtype=object)}
    assert rest_codec.predict_response(strings, True, 2) == b'{"predictions":["text",{"b64":"//4="}]}'
    with pytest.raises(errors.InvalidArgument, match="the model gave {'p': 2} answers for 3 instances"):
        rest_codec.predict_response({"p": outputs["p"]}, True, 3)


def test_classify_examples_with_a_context():
    document = {
        "context": {"image": [0, 0], "tag": "ctx"},
        "examples": [{"image": [1, 2]}, {"tag": {"b64": "aGk="}, "weight": 0.5}],
    }
    first, second = (tf.train.Example.FromString(e) for e in rest_codec.examples(document, "classify", 8))
    assert first.features.feature["image"].int64_list.value == [1, 2]  # the example's own value wins
    assert first.features.feature["tag"].bytes_list.value == [b"ctx"]
    assert second.features.feature["tag"].bytes_list.value == [b"hi"]
    assert second.features.feature["weight"].float_list.value == [0.5]
    assert second.features.feature["image"].int64_list.value == [0, 0]


@pytest.mark.parametrize(
    "document, message",
    [
        ({}, "When method is classify, key 'examples' is expected and was not found"),
        ({"examples": []}, "'examples' value is an empty array"),
        ({"examples": [5]}, "Example must be JSON object"),
        ({"examples": [{"f": [1, "a"]}]}, "Unexpected element type in feature: f expecting type: int64"),
        ({"examples": [{"f": [2**64]}]}, "Feature: f has uint64_t element"),
        ({"examples": [{"f": None}]}, "Feature: f has element with unexpected JSON type"),
    ],
)
def test_classify_request_mistakes(document, message):
    with pytest.raises(errors.InvalidArgument, match=message):
        rest_codec.examples(document, "classify", 8)


def test_classification_results_as_tf_serving_writes_them():
    outputs = {"classes": np.array([[b"0", b"1"]], dtype=object), "scores": np.array([[0.25, 0.75]], np.float32)}
    result = classification_result(outputs)
    assert isinstance(result, classification_pb2.ClassificationResult)
    assert rest_codec.classify_response(result) == b'{"results":[[["0",0.25],["1",0.75]]]}'
    assert rest_codec.classify_response(classification_result({"scores": outputs["scores"]})) == (
        b'{"results":[[["",0.25],["",0.75]]]}'
    )


# --- batching --------------------------------------------------------------------------------------


class _Recording:
    """A signature that doubles its input, refuses negative values, and records each batch's size."""

    def __init__(self, seconds: float = 0.0):
        self.sizes = []
        self.seconds = seconds

    def __call__(self, x):
        self.sizes.append(int(x.shape[0]))
        time.sleep(self.seconds)
        tf.debugging.assert_non_negative(x, message="no negative values")
        return {"y": x * 2}


def _servable(function) -> tuple:
    signature = Signature("s", "tensorflow/serving/predict", {"x": tf.TensorSpec([None, 2], tf.float32)}, function)
    return Servable("m", 1, {"s": signature}, {}), signature


def test_concurrent_requests_ride_together_and_each_gets_its_own_answer():
    recording = _Recording(seconds=0.02)
    servable, signature = _servable(recording)
    scheduler = BatchScheduler(config.BatchingOptions(max_batch_size=8, num_batch_threads=1, max_enqueued_batches=100))
    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            futures = list(
                pool.map(
                    lambda i: scheduler.submit(servable, signature, {"x": np.full((1, 2), i, np.float32)}, 1), range(40)
                )
            )
            answers = [f.result(timeout=30)["y"] for f in futures]
    finally:
        scheduler.stop()
    assert [a.tolist() for a in answers] == [[[2.0 * i, 2.0 * i]] for i in range(40)]
    assert sum(recording.sizes) == 40 and max(recording.sizes) > 1 and max(recording.sizes) <= 8


def test_one_bad_request_does_not_fail_the_others_in_its_batch():
    recording = _Recording(seconds=0.05)
    servable, signature = _servable(recording)
    scheduler = BatchScheduler(config.BatchingOptions(max_batch_size=8, num_batch_threads=1))
    try:
        first = scheduler.submit(servable, signature, {"x": np.ones((1, 2), np.float32)}, 1)  # Keeps the thread busy.
        batch = [scheduler.submit(servable, signature, {"x": np.full((1, 2), v, np.float32)}, 1) for v in (1, -1, 3)]
        assert first.result(timeout=30)["y"].tolist() == [[2, 2]]
        assert batch[0].result(timeout=30)["y"].tolist() == [[2, 2]]
        assert batch[2].result(timeout=30)["y"].tolist() == [[6, 6]]
        with pytest.raises(errors.InvalidArgument, match="no negative values"):
            batch[1].result(timeout=30)
    finally:
        scheduler.stop()
    assert max(recording.sizes) > 1 and recording.sizes[-3:] == [1, 1, 1]  # Together first, then each alone.


def test_a_full_queue_is_unavailable_and_an_oversized_request_invalid():
    release = threading.Event()
    servable, signature = _servable(lambda x: (release.wait(30), {"y": x})[1])
    scheduler = BatchScheduler(config.BatchingOptions(max_batch_size=2, num_batch_threads=1, max_enqueued_batches=2))
    try:
        with pytest.raises(errors.InvalidArgument, match="Task size 3 is larger than maximum input batch size 2"):
            scheduler.submit(servable, signature, {"x": np.ones((3, 2), np.float32)}, 3)
        running = scheduler.submit(servable, signature, {"x": np.ones((2, 2), np.float32)}, 2)
        time.sleep(0.2)  # The batch thread is now inside the model.
        queued = [scheduler.submit(servable, signature, {"x": np.ones((2, 2), np.float32)}, 2) for _ in range(2)]
        with pytest.raises(
            errors.Unavailable, match="The batch scheduling queue to which this task was submitted is full"
        ):
            scheduler.submit(servable, signature, {"x": np.ones((2, 2), np.float32)}, 2)
        release.set()
        assert all(f.result(timeout=30)["y"].shape == (2, 2) for f in [running, *queued])
    finally:
        release.set()
        scheduler.stop()


def test_batches_are_padded_to_an_allowed_size():
    recording = _Recording()
    servable, signature = _servable(recording)
    scheduler = BatchScheduler(config.BatchingOptions(max_batch_size=8, allowed_batch_sizes=(4, 8)))
    try:
        answer = scheduler.submit(servable, signature, {"x": np.ones((3, 2), np.float32)}, 3).result(timeout=30)
    finally:
        scheduler.stop()
    assert recording.sizes == [4] and answer["y"].shape == (3, 2)


# --- the model store ---------------------------------------------------------------------------------


def _version(base, version: int, content: str = "ok") -> None:
    folder = os.path.join(base, str(version))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "model.txt"), "w") as f:
        f.write(content)
    with open(os.path.join(folder, SAVED_MODEL_FILE), "w") as f:
        f.write("")


def test_publish_version_makes_a_folder_a_candidate_only_once_it_is_whole(tmp_path, monkeypatch):
    """saved_model.pb, which makes a folder a candidate, appears last and whole: copied under another
    name, then renamed into place once everything else is there."""
    source = tmp_path / "model"
    (source / "variables").mkdir(parents=True)
    (source / "variables" / "variables.index").write_bytes(b"index")
    (source / SAVED_MODEL_FILE).write_bytes(b"graph" * 1000)
    target = tmp_path / "digits" / "7"
    renames = []
    real_replace = os.replace

    def replace(staged, final):
        renames.append((os.path.exists(final), (target / "variables" / "variables.index").exists()))
        assert os.path.basename(staged) != SAVED_MODEL_FILE and open(staged, "rb").read() == b"graph" * 1000
        real_replace(staged, final)

    monkeypatch.setattr(os, "replace", replace)
    assert publish_version(str(source), str(tmp_path / "digits"), 7) == str(target)
    assert renames == [(False, True)]
    assert sorted(p.name for p in target.iterdir()) == [SAVED_MODEL_FILE, "variables"]
    assert (target / SAVED_MODEL_FILE).read_bytes() == b"graph" * 1000


def _fake_loader(model_name: str, version: int, path: str) -> Servable:
    """Loads a version whose model.txt says "ok"; anything else fails as a corrupt SavedModel would."""
    with open(os.path.join(path, "model.txt")) as f:
        if f.read() != "ok":
            raise ValueError(f"{path} is corrupt")
    return Servable(model_name, version, {}, {})


def _store(base, options=None, **model) -> ModelStore:
    return ModelStore(config.ModelConfig("m", str(base), **model), _fake_loader, options or config.ServerOptions())


def test_newest_versions_serve_per_policy_and_older_ones_stand_in_for_broken_ones(tmp_path):
    for version in (1, 2):
        _version(tmp_path, version)
    store = _store(tmp_path)
    store.refresh()
    assert store.servable().version == 2 and [(s.version, s.state) for s in store.statuses()] == [(2, "AVAILABLE")]
    _version(tmp_path, 3, "broken")
    store.refresh()
    assert store.servable().version == 2  # 3 is wanted but fails: 2 stands in
    assert [(s.version, s.state, s.error_code) for s in store.statuses()] == [
        (3, "END", "UNKNOWN"),
        (2, "AVAILABLE", "OK"),
    ]
    assert "is corrupt" in store.statuses(3)[0].error_message
    with pytest.raises(errors.NotFound, match=r"Servable not found for request: Specific\(m, 3\)"):
        store.servable(version=3)
    with pytest.raises(errors.NotFound, match="Could not find version 9 of model m"):
        store.statuses(9)


def test_a_status_read_while_versions_load_and_unload_misses_none(tmp_path):
    """A status request during a swap lists every version the store has served, as AVAILABLE or END,
    never none of the two (the watch thread moves versions while request threads read)."""
    _version(tmp_path, 1)
    store = _store(tmp_path)
    store.refresh()
    missed, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                seen = {s.version for s in store.statuses()}
            except Exception as e:  # A dict that changed while it was read, say.
                missed.append(repr(e))
                continue
            if seen != set(range(1, max(seen) + 1)):
                missed.append(sorted(seen))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # Switch threads as often as CPython allows, to meet the window.
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in range(2, 200):
            _version(tmp_path, version)
            store.refresh()
    finally:
        stop.set()
        reader.join()
        sys.setswitchinterval(interval)
    assert not missed, missed[:5]
    assert [s.state for s in store.statuses()] == ["AVAILABLE"] + ["END"] * 198


def test_a_half_copied_version_is_retried_once_complete(tmp_path):
    _version(tmp_path, 1)
    _version(tmp_path, 2, "half")
    store = _store(tmp_path, config.ServerOptions(max_num_load_retries=0))
    store.refresh()
    assert store.servable().version == 1
    store.refresh()  # Unchanged and out of retries: not tried again.
    assert store.statuses(2)[0].state == "END"
    _version(tmp_path, 2, "ok")  # The copy completes.
    store.refresh()
    assert store.servable().version == 2 and store.statuses(2)[0].state == "AVAILABLE"


def test_latest_two_specific_and_all_policies(tmp_path):
    for version in (1, 2, 3):
        _version(tmp_path, version)
    latest_two = _store(tmp_path, policy=config.VersionPolicy(latest=2))
    latest_two.refresh()
    assert [s.version for s in latest_two.statuses() if s.state == "AVAILABLE"] == [3, 2]
    specific = _store(tmp_path, policy=config.VersionPolicy(specific=(1,)))
    specific.refresh()
    assert specific.servable().version == 1
    every = _store(tmp_path, policy=config.VersionPolicy(all=True))
    every.refresh()
    assert [s.state for s in every.statuses()] == ["AVAILABLE"] * 3


def test_labels_name_versions_that_serve(tmp_path):
    for version in (1, 2):
        _version(tmp_path, version)
    store = _store(tmp_path, policy=config.VersionPolicy(latest=2), labels=(("stable", 1), ("canary", 2)))
    store.refresh()
    assert store.servable(label="stable").version == 1 and store.servable(label="canary").version == 2
    with pytest.raises(errors.InvalidArgument, match="Unrecognized servable version label: beta"):
        store.servable(label="beta")
    with pytest.raises(errors.FailedPrecondition, match="Request to assign label to version 7 of model m"):
        store.check_labels({"x": 7}, allow_unavailable=False)
    store.check_labels({"x": 7}, allow_unavailable=True)


def test_the_watch_survives_filesystem_errors_and_says_so_in_the_status(tmp_path, monkeypatch):
    base = tmp_path / "m"
    _version(base, 1)
    core = ServerCore(
        config.ServerOptions(models=(config.ModelConfig("m", str(base)),), file_system_poll_wait_seconds=0.05),
        _fake_loader,
    )
    core.start()
    try:
        store = core.store("m")
        real_listdir = tf.io.gfile.listdir
        failing = {"on": True}

        def flaky_listdir(path):
            if failing["on"]:
                raise OSError("the disk went away")
            return real_listdir(path)

        monkeypatch.setattr(tf.io.gfile, "listdir", flaky_listdir)
        time.sleep(0.3)
        assert "the disk went away" in store.statuses()[0].error_message
        assert store.statuses()[0].state == "AVAILABLE"  # Still serving what it had.
        _version(base, 2)
        failing["on"] = False
        deadline = time.time() + 10
        while store.servable().version != 2 and time.time() < deadline:
            time.sleep(0.05)
        assert store.servable().version == 2 and store.statuses()[0].error_message == ""
    finally:
        core.stop()


def test_config_reload_adds_and_removes_models_and_refuses_bad_labels(tmp_path):
    for name in ("a", "b"):
        _version(tmp_path / name, 1)
    core = ServerCore(config.ServerOptions(), _fake_loader)
    core.reload_config((config.ModelConfig("a", str(tmp_path / "a")),))
    assert core.model_names == ["a"]
    core.reload_config((config.ModelConfig("b", str(tmp_path / "b")),))
    assert core.model_names == ["b"]
    with pytest.raises(errors.NotFound, match=r"Servable not found for request: Latest\(a\)"):
        core.store("a")
    with pytest.raises(errors.FailedPrecondition):
        core.reload_config((config.ModelConfig("b", str(tmp_path / "b"), labels=(("stable", 5),)),))
    assert core.model_names == ["b"] and core.store("b").config.labels == ()


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
