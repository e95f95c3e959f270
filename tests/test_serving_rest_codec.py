"""`serving.rest_codec`: TF Serving's REST JSON formats, request bodies in and response bodies out."""

import numpy as np
import pytest
import tensorflow as tf

from serving import errors, rest_codec
from serving.servable import Signature

IMAGES = tf.TensorSpec(None, tf.float32)
BYTES = tf.TensorSpec([None], tf.string)


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
