"""`serving.inputs`: request values and gRPC tensors checked against a signature's inputs before
anything is built or run."""

import time

import numpy as np
import pytest
import tensorflow as tf

from serving import errors, inputs

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
    ],
)
def test_bad_values_are_refused_with_the_input_named(value, spec, message):
    with pytest.raises(errors.InvalidArgument, match=message):
        inputs.from_values("x", value, spec, 8)


def test_a_shape_other_than_declared_goes_to_the_model_and_is_explained_if_refused():
    """As TF Serving: the declared shape is the model's to enforce; when it refuses, the declaration
    says why."""
    column = inputs.from_values("x", [1.0, 2.0, 5.0], tf.TensorSpec([None, 1], tf.float32), 8)
    assert column.shape == (3,)
    assert inputs.shape_mismatch({"x": column}, {"x": tf.TensorSpec([None], tf.float32)}) is None
    assert inputs.shape_mismatch({"x": column}, {"x": tf.TensorSpec([None, 1], tf.float32)}) == (
        "input 'x' has shape [3], the signature expects (None, 1)"
    )
    assert inputs.from_values("x", [[b"a"]], BYTES, 8).shape == (1, 1)


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
