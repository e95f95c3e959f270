"""TF Serving's REST JSON formats: request bodies -> arrays and tf.Examples, results -> response bodies.

Predict takes the row format (`"instances"`: one value, or one object of named inputs, per example)
or the columnar format (`"inputs"`); binary strings travel as `{"b64": "..."}`. Classify and Regress
take `{"examples": [...], "context": {...}}` with features as JSON values (integers -> int64_list,
other numbers -> float_list, strings and b64 -> bytes_list). Messages follow TF Serving's where a client
may match on them.
"""

import base64
import binascii
import json
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import orjson
import tensorflow as tf
from google.protobuf import json_format, message
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import classification_pb2, get_model_metadata_pb2

from serving import inputs
from serving.errors import InvalidArgument
from serving.servable import Signature

Arrays = Dict[str, np.ndarray]


def parse_body(body: bytes) -> Dict[str, Any]:
    """The request body as a JSON object. Standard JSON is parsed by orjson (fast, and it refuses
    nesting deeper than 1,024 levels); anything else by Python's parser, which like TF Serving's accepts
    NaN and Infinity literals (the model's own checks then refuse them) and explains a syntax error."""
    if not body.strip():
        raise InvalidArgument("JSON Parse error: The document is empty")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = _parse_lenient(body)
    if not isinstance(document, dict):
        raise InvalidArgument(f"JSON Value: {_excerpt(document)} Is not object")
    signature_name = document.get("signature_name")
    if signature_name is not None and not isinstance(signature_name, str):
        raise InvalidArgument("'signature_name' key must be a string value.")
    return document


def _parse_lenient(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidArgument(f"JSON Parse error: {e}") from None
    except RecursionError:
        raise InvalidArgument("JSON Parse error: the document is nested too deeply") from None


def feedback_request(document: Dict[str, Any]) -> Tuple[bytes, Any]:
    """`{"picture": {"b64": ...}, "label": 7}` -> the picture's bytes and the label (checked by the data plane)."""
    missing = [key for key in ("picture", "label") if key not in document]
    if missing:
        raise InvalidArgument(f'Missing \'{missing[0]}\': send {{"picture": {{"b64": "<PNG>"}}, "label": <digit>}}')
    if not isinstance(document["picture"], dict):
        raise InvalidArgument(f'picture: expected {{"b64": "..."}}, got {_excerpt(document["picture"])}')
    return _b64(document["picture"], "picture"), document["label"]


def _excerpt(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) < 256 else text[:253] + "..."


def _b64(value: Any, name: str) -> bytes:
    if isinstance(value, dict):
        if set(value) == {"b64"} and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise InvalidArgument(f"input '{name}': Unable to base64 decode") from None
        raise InvalidArgument(f"input '{name}': JSON Value: {_excerpt(value)} not formatted correctly for base64 data")
    if isinstance(value, str):
        return value.encode("utf-8")
    raise InvalidArgument(
        f'input \'{name}\' is a string tensor: send strings or {{"b64": "..."}} objects, got {_excerpt(value)}'
    )


def _strings(value: Any, name: str, depth: int = 0) -> Any:
    """Nested JSON lists of strings / b64 objects -> the same nesting of bytes."""
    if isinstance(value, list):
        if depth > 32:
            raise InvalidArgument(f"input '{name}' is nested deeper than any tensor")
        return [_strings(v, name, depth + 1) for v in value]
    return _b64(value, name)


def _array(name: str, value: Any, spec: tf.TensorSpec, max_batch: int) -> np.ndarray:
    if spec.dtype == tf.string:
        value = _strings(value, name)
    return inputs.from_values(name, value, spec, max_batch)


def _is_named(value: Any) -> bool:
    """An object mapping input names to values (as opposed to a value, or a {"b64": ...} value)."""
    return isinstance(value, dict) and set(value) != {"b64"} and bool(value)


def predict_inputs(document: Dict[str, Any], signature: Signature, max_batch: int) -> Tuple[Arrays, bool]:
    """The body of `:predict` -> (arrays by input name, whether it used the row format)."""
    if "instances" in document and "inputs" in document:
        raise InvalidArgument("Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist")
    if "instances" not in document and "inputs" not in document:
        raise InvalidArgument("Missing 'inputs' or 'instances' key")
    specs = signature.inputs
    names = sorted(specs)
    if "instances" in document:
        rows = document["instances"]
        if not isinstance(rows, list):
            raise InvalidArgument("Expecting 'instances' to be an list/array")
        if not rows:
            raise InvalidArgument("No values in 'instances' array")
        if len(rows) > max_batch:
            raise InvalidArgument(f"'instances' has {len(rows)} examples, the limit is {max_batch} per request")
        if all(_is_named(r) for r in rows):
            for i, row in enumerate(rows):
                if set(row) != set(names):
                    raise InvalidArgument(
                        f"Failed to process element: {i} of 'instances' list. JSON object: "
                        f"{_excerpt(row)} keys must be equal to: {','.join(names)}"
                    )
            columns = {name: [r[name] for r in rows] for name in names}
        elif len(names) == 1:
            columns = {names[0]: rows}
        else:
            raise InvalidArgument(
                "instances is a plain list, but expecting list of objects as multiple input "
                f"tensors required as per tensorinfo_map ({','.join(names)})"
            )
        return {n: _array(n, columns[n], specs[n], max_batch) for n in names}, True
    given = document["inputs"]
    if _is_named(given):
        missing = [n for n in names if n not in given]
        if missing:
            raise InvalidArgument(f"Missing named input: {missing[0]} in 'inputs' object.")
        columns = given
    elif len(names) == 1:
        columns = {names[0]: given}
    else:
        raise InvalidArgument(
            "inputs is a plain value/list, but expecting an object as multiple input tensors "
            f"required as per tensorinfo_map ({','.join(names)})"
        )
    return {n: _array(n, columns[n], specs[n], max_batch) for n in names}, False


def _jsonable(array: np.ndarray) -> Any:
    """String outputs as text (b64 objects when not UTF-8); numbers as they are (orjson writes numpy)."""
    if array.dtype == object or array.dtype.kind == "S":

        def text(value: bytes) -> Any:
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return {"b64": base64.b64encode(value).decode()}

        return np.vectorize(text, otypes=[object])(array).tolist()
    return array


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


def predict_response(outputs: Arrays, row_format: bool, examples: int) -> bytes:
    """TF Serving's answer: `{"predictions": [...]}` one entry per example (an object per example when
    there are several outputs), or `{"outputs": ...}` for the columnar format."""
    converted = {name: _jsonable(value) for name, value in sorted(outputs.items())}
    if not row_format:
        return dumps({"outputs": next(iter(converted.values())) if len(converted) == 1 else converted})
    counts = {name: len(value) for name, value in outputs.items()}
    if set(counts.values()) != {examples}:
        raise InvalidArgument(
            f"the model gave {counts} answers for {examples} instances; use the columnar 'inputs' format"
        )
    if len(converted) == 1:
        return dumps({"predictions": next(iter(converted.values()))})
    return dumps({"predictions": [{k: v[i] for k, v in converted.items()} for i in range(examples)]})


def _feature(name: str, value: Any) -> feature_pb2.Feature:
    values = value if isinstance(value, list) else [value]
    kinds = []
    for v in values:
        if isinstance(v, bool) or (isinstance(v, int) and -(2**63) <= v < 2**63):
            kinds.append("int64")
        elif isinstance(v, int):
            raise InvalidArgument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        elif isinstance(v, float):
            kinds.append("float")
        elif isinstance(v, str) or (isinstance(v, dict) and set(v) == {"b64"}):
            kinds.append("bytes")
        else:
            raise InvalidArgument(f"Feature: {name} has element with unexpected JSON type: {type(v).__name__}")
    if len(set(kinds)) > 1:
        raise InvalidArgument(f"Unexpected element type in feature: {name} expecting type: {kinds[0]}")
    feature = feature_pb2.Feature()
    if kinds and kinds[0] == "int64":
        feature.int64_list.value.extend(int(v) for v in values)
    elif kinds and kinds[0] == "float":
        feature.float_list.value.extend(values)
    elif kinds:
        feature.bytes_list.value.extend(_b64(v, name) for v in values)
    return feature


def _example(value: Any) -> example_pb2.Example:
    if not isinstance(value, dict):
        raise InvalidArgument(f"Example must be JSON object but got JSON {type(value).__name__}")
    example = example_pb2.Example()
    for name, feature in value.items():
        example.features.feature[name].CopyFrom(_feature(name, feature))
    return example


def examples(document: Dict[str, Any], method: str, max_batch: int) -> List[bytes]:
    """The body of `:classify` or `:regress` -> serialized tf.Examples, each with the context merged in
    (its features first, the example's own win), as TF Serving does."""
    if "examples" not in document:
        raise InvalidArgument(f"When method is {method}, key 'examples' is expected and was not found")
    given = document["examples"]
    if not isinstance(given, list):
        raise InvalidArgument("Expecting 'examples' value to be an list/array")
    if not given:
        raise InvalidArgument("'examples' value is an empty array")
    if len(given) > max_batch:
        raise InvalidArgument(f"'examples' has {len(given)} examples, the limit is {max_batch} per request")
    context = _example(document["context"]).SerializeToString() if "context" in document else b""
    return [context + _example(e).SerializeToString() for e in given]


def classify_response(result: classification_pb2.ClassificationResult) -> bytes:
    # Scores are float32, written at float32 precision as TF Serving writes them.
    return dumps({"results": [[[c.label, np.float32(c.score)] for c in cl.classes] for cl in result.classifications]})


def regress_response(outputs: Arrays) -> bytes:
    return dumps({"results": np.reshape(next(iter(outputs.values())), [-1])})


def message_json(proto: message.Message) -> Dict[str, Any]:
    return json_format.MessageToDict(proto, preserving_proto_field_name=True, including_default_value_fields=True)


def metadata_response(
    response: get_model_metadata_pb2.GetModelMetadataResponse, signature_name: Optional[str] = None
) -> bytes:
    """TF Serving's metadata answer: `model_spec` and `metadata.signature_def`."""
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    return dumps(
        {
            "model_spec": {
                "name": response.model_spec.name,
                "signature_name": signature_name or "",
                "version": str(response.model_spec.version.value),
            },
            "metadata": {"signature_def": message_json(signatures)},
        }
    )
