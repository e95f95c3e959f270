"""TF Serving's Predict semantics, shared by the REST and gRPC front ends.

Inputs are checked against the signature before the model sees them (dtype, shape, finiteness, batch
size), so that a client mistake is a clear 400 / INVALID_ARGUMENT and never reaches TensorFlow as a crash.
"""

import base64
import binascii
from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf

from models import features
from serving.model_store import LoadedModel

MAX_BATCH = 1024
"""Examples per request; larger batches should be split by the client."""


class BadRequestError(ValueError):
    """The request is wrong (not the server): a 400 / INVALID_ARGUMENT with this message."""


def _signature(model: LoadedModel, name: Optional[str]):
    name = name or features.EXAMPLES_SIGNATURE
    if name not in model.signatures:
        raise BadRequestError(
            f"Serving signature name: '{name}' not found in signature def; available: {sorted(model.signatures)}"
        )
    return model.signatures[name]


def input_specs(model: LoadedModel, signature_name: Optional[str]) -> Dict[str, tf.TensorSpec]:
    return dict(_signature(model, signature_name).structured_input_signature[1])


def _b64(value: Any, name: str) -> bytes:
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise BadRequestError(f"input '{name}': invalid base64 in {{\"b64\": ...}}") from None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    raise BadRequestError(f"input '{name}' is a string tensor: send strings or {{\"b64\": \"...\"}} objects")


def _strings(value: Any, name: str) -> np.ndarray:
    if isinstance(value, list):
        return np.array([_strings(v, name) for v in value] if value and isinstance(value[0], list)
                        else [_b64(v, name) for v in value], dtype=object)
    return np.array(_b64(value, name), dtype=object)


def to_tensor(name: str, value: Any, spec: tf.TensorSpec) -> tf.Tensor:
    """JSON value (or a numpy array from gRPC) -> tensor of the signature's dtype and a compatible shape."""
    if spec.dtype == tf.string:
        array = value if isinstance(value, np.ndarray) and value.dtype == object else _strings(value, name)
    else:
        try:
            array = np.asarray(value)
        except ValueError:
            raise BadRequestError(f"input '{name}': ragged nested lists, expected a rectangular array") from None
        if array.dtype == object or array.dtype.kind not in "biuf":
            raise BadRequestError(f"input '{name}' must be numbers ({spec.dtype.name}), got {array.dtype.name} values")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise BadRequestError(f"input '{name}' contains NaN or infinity")
        with np.errstate(over="ignore"):  # Overflow becomes inf, refused just below.
            cast = array.astype(spec.dtype.as_numpy_dtype)
        if cast.dtype.kind == "f" and not np.isfinite(cast).all():
            raise BadRequestError(f"input '{name}' has values too large for {spec.dtype.name}")
        array = cast
    if array.ndim == 0 and spec.shape.rank != 0:
        raise BadRequestError(f"input '{name}' must be a batch (a list), got a single value")
    if not spec.shape.is_compatible_with(array.shape):
        raise BadRequestError(f"input '{name}' has shape {list(array.shape)}, the signature expects {spec.shape}")
    if array.ndim and array.shape[0] == 0:
        raise BadRequestError(f"input '{name}' is an empty batch")
    if array.ndim and array.shape[0] > MAX_BATCH:
        raise BadRequestError(f"input '{name}' has {array.shape[0]} examples, the limit is {MAX_BATCH} per request")
    return tf.constant(array, dtype=spec.dtype)


def run(model: LoadedModel, signature_name: Optional[str], tensors: Dict[str, tf.Tensor]) -> Dict[str, np.ndarray]:
    """Calls the signature; the model's own rejections (e.g. a size not a multiple of 784) are 400s."""
    try:
        outputs = _signature(model, signature_name)(**tensors)
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
        message = getattr(e, "message", str(e)).strip().splitlines()
        raise BadRequestError(f"the model rejected the input: {message[0] if message else type(e).__name__}") from None
    return {k: v.numpy() for k, v in outputs.items()}


def _json_value(array: np.ndarray) -> Any:
    if array.dtype == object or array.dtype.kind == "S":
        return np.vectorize(lambda b: {"b64": base64.b64encode(b).decode()}, otypes=[object])(array).tolist()
    return array.tolist()


def _is_named(value: Any) -> bool:
    """An object mapping input names to values (as opposed to a value, or a {"b64": ...} value)."""
    return isinstance(value, dict) and set(value) != {"b64"} and bool(value)


def predict_json(model: LoadedModel, body: Any) -> Dict[str, Any]:
    """The body of `POST /v1/models/<name>:predict` -> the response body, as TF Serving's REST API."""
    if not isinstance(body, dict):
        raise BadRequestError("the request body must be a JSON object with 'instances' or 'inputs'")
    if ("instances" in body) == ("inputs" in body):
        raise BadRequestError("the request must have exactly one of 'instances' (row format) or 'inputs' (columnar)")
    signature_name = body.get("signature_name")
    if signature_name is not None and not isinstance(signature_name, str):
        raise BadRequestError("'signature_name' must be a string")
    specs = input_specs(model, signature_name)
    names = sorted(specs)
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise BadRequestError("'instances' must be a non-empty list")
        if len(rows) > MAX_BATCH:
            raise BadRequestError(f"'instances' has {len(rows)} examples, the limit is {MAX_BATCH} per request")
        if all(_is_named(r) for r in rows):
            columns = {}
            for name in names:
                if any(name not in r for r in rows):
                    raise BadRequestError(f"every instance needs input '{name}'")
                columns[name] = [r[name] for r in rows]
        elif len(names) == 1:
            columns = {names[0]: rows}
        else:
            raise BadRequestError(f"this signature has inputs {names}: send each instance as an object")
    else:
        inputs = body["inputs"]
        columns = inputs if _is_named(inputs) else {names[0]: inputs} if len(names) == 1 else None
        if columns is None or set(columns) != set(names):
            raise BadRequestError(f"'inputs' must give exactly the signature's inputs {names}")
    outputs = run(model, signature_name, {n: to_tensor(n, columns[n], specs[n]) for n in names})
    if "inputs" in body:
        converted = {k: _json_value(v) for k, v in outputs.items()}
        return {"outputs": next(iter(converted.values())) if len(converted) == 1 else converted}
    batch = len(rows)
    if any(len(v) != batch for v in outputs.values()):
        raise BadRequestError("the outputs are not one per instance; use the columnar 'inputs' format")
    if len(outputs) == 1:
        return {"predictions": _json_value(next(iter(outputs.values())))}
    per_key = {k: _json_value(v) for k, v in outputs.items()}
    return {"predictions": [{k: per_key[k][i] for k in per_key} for i in range(batch)]}
