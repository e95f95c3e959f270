"""Request inputs checked against a signature before anything reaches TensorFlow, for every front end.

The checks here are the generic ones (dtype, shape, batch size, the sizes a gRPC client declares); what
the values may be (pixels in 0-255, finite) is checked by the model's own signatures, so that the real
TF Serving refuses the same inputs with the same message.
"""

from typing import Any, Dict, Mapping, Optional

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.errors import InvalidArgument


def dtype_name(dtype: tf.DType) -> str:
    """TF Serving's name for a dtype, as in its metadata and messages (`DT_FLOAT`)."""
    return types_pb2.DataType.Name(dtype.as_datatype_enum)


def _checked_batch(name: str, array: np.ndarray, spec: tf.TensorSpec, max_batch: int) -> np.ndarray:
    """The request-level checks. The signature's declared shape is not one of them: as TF Serving does,
    a tensor of another shape goes to the model, which decides (see `shape_mismatch`)."""
    if array.ndim == 0 and spec.shape.rank != 0:
        raise InvalidArgument(f"input '{name}' must be a batch (a list), got a single value")
    if array.ndim and array.shape[0] == 0:
        raise InvalidArgument(f"input '{name}' is an empty batch")
    if array.ndim and array.shape[0] > max_batch:
        raise InvalidArgument(f"input '{name}' has {array.shape[0]} examples, the limit is {max_batch} per request")
    return array


def from_values(name: str, value: Any, spec: tf.TensorSpec, max_batch: int) -> np.ndarray:
    """Nested lists (strings already as bytes) or an array -> an array of the signature's dtype."""
    if spec.dtype == tf.string:
        array = np.asarray(value, dtype=object)
        if array.dtype != object or not all(isinstance(v, bytes) for v in array.reshape(-1)):
            raise InvalidArgument(f'input \'{name}\' is a string tensor: send strings or {{"b64": "..."}} objects')
        return _checked_batch(name, array, spec, max_batch)
    try:
        array = np.asarray(value)
    except ValueError:
        raise InvalidArgument(f"input '{name}': ragged nested lists, expected a rectangular array") from None
    if array.dtype.kind not in "biuf":
        raise InvalidArgument(f"input '{name}' must be numbers ({spec.dtype.name}), got {array.dtype.name} values")
    with np.errstate(over="ignore", invalid="ignore"):  # Out-of-range values become inf: the model refuses them.
        array = array.astype(spec.dtype.as_numpy_dtype, copy=False)
    return _checked_batch(name, array, spec, max_batch)


_VALUE_FIELDS = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_STRING: "string_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_BFLOAT16: "half_val",
}


def from_proto(
    name: str, proto: tensor_pb2.TensorProto, spec: tf.TensorSpec, max_batch: int, max_values: int
) -> np.ndarray:
    """A gRPC TensorProto -> an array, with its declared shape and contents checked first: a request
    declaring [10,000,000, 784] with one value is refused here, before anything is allocated."""
    if proto.dtype != spec.dtype.as_datatype_enum:
        raise InvalidArgument(
            f"input '{name}' is {types_pb2.DataType.Name(proto.dtype)}, the signature expects {dtype_name(spec.dtype)}"
        )
    dims = [d.size for d in proto.tensor_shape.dim]
    if proto.tensor_shape.unknown_rank or any(d < 0 for d in dims):
        raise InvalidArgument(f"input '{name}' must declare a fully known shape, got {dims}")
    if dims and dims[0] > max_batch:
        raise InvalidArgument(f"input '{name}' has {dims[0]} examples, the limit is {max_batch} per request")
    count = int(np.prod(dims, dtype=np.float64))  # float: no int64 overflow on absurd shapes
    if count > max_values:
        raise InvalidArgument(f"input '{name}' declares shape {dims} ({count} values), the limit is {max_values}")
    if proto.tensor_content:
        expected = count * spec.dtype.size
        if len(proto.tensor_content) != expected:
            raise InvalidArgument(
                f"input '{name}': tensor_content has {len(proto.tensor_content)} bytes, "
                f"shape {dims} of {dtype_name(spec.dtype)} needs {expected}"
            )
    else:
        given = len(getattr(proto, _VALUE_FIELDS.get(proto.dtype, "float_val")))
        if given > count or (given == 0 and count > 0):
            raise InvalidArgument(f"input '{name}' has {given} values for shape {dims} ({count} values)")
    try:
        array = tf.make_ndarray(proto)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"tensor parsing error: {name} ({e})") from None
    return _checked_batch(name, array, spec, max_batch)


def shape_mismatch(arrays: Mapping[str, np.ndarray], specs: Mapping[str, tf.TensorSpec]) -> Optional[str]:
    """What is wrong with the inputs' shapes against the signature's declared ones, if anything: said
    when the model refuses such an input, since the declaration explains it better than the op that
    failed. TF Serving hands such inputs to the model (a signature declared (None, 1) computes on a
    tensor of shape [3]), and so does this server."""
    for name, array in sorted(arrays.items()):
        spec = specs.get(name)
        if spec is not None and not spec.shape.is_compatible_with(array.shape):
            return f"input '{name}' has shape {list(array.shape)}, the signature expects {spec.shape}"
    return None


def batch_size(inputs: Mapping[str, np.ndarray]) -> int:
    """The examples in a request: every input must have the same first dimension (TF Serving's rule
    for batching, kept always so that outputs split back one per example)."""
    sizes = {name: array.shape[0] if array.ndim else 1 for name, array in inputs.items()}
    if len(set(sizes.values())) > 1:
        raise InvalidArgument(f"inputs must have the same number of examples (first dimension), got {sizes}")
    return next(iter(sizes.values()), 0)


def check_names(given: Mapping[str, Any], specs: Dict[str, tf.TensorSpec]) -> None:
    if set(given) != set(specs):
        missing, extra = sorted(set(specs) - set(given)), sorted(set(given) - set(specs))
        raise InvalidArgument(
            f"input size does not match signature: {len(given)}!={len(specs)} "
            f"len({sorted(given)}) != len({sorted(specs)}). Sent extra: {extra}. "
            f"Missing but required: {missing}."
        )
