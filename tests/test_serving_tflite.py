"""`serving.tflite`: TF Lite models served as TF Serving serves them with `--prefer_tflite_model`, on
tiny models converted here: their signatures (from the SignatureDefs in their metadata, else their
tensors), inputs resized to the request's shape, one call at a time, and damaged files refused."""

import concurrent.futures
import os
import random
import re
from typing import Dict, Optional

import numpy as np
import pytest
import tensorflow as tf
from flatbuffers import flexbuffers
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from serving import config, dataplane, tflite
from serving.errors import InvalidArgument
from serving.model_store import ModelStore, load_servable


class _Models(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    def half_plus_two(self, x):
        return {"y": x * 0.5 + 2.0}

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def sum_and_mean(self, x):
        return {"sum": tf.reduce_sum(x, axis=1), "mean": tf.reduce_mean(x, axis=1)}


def _convert(name: str) -> bytes:
    models = _Models()
    function = getattr(models, name).get_concrete_function()
    return tf.lite.TFLiteConverter.from_concrete_functions([function], models).convert()


@pytest.fixture(scope="module")
def half_plus_two() -> bytes:
    """x * 0.5 + 2 on x of shape (None, 1), without SignatureDefs: its tensors are TF Lite's converter's,
    `serving_default_x:0` in and `PartitionedCall:0` out."""
    return _convert("half_plus_two")


def _tensor(name: str, shape=(1, 1)) -> meta_graph_pb2.TensorInfo:
    info = meta_graph_pb2.TensorInfo(name=name, dtype=tf.float32.as_datatype_enum)
    for size in shape:
        info.tensor_shape.dim.add(size=size)
    return info


def _with_signature_defs(
    content: bytes, signature_defs: Dict[str, meta_graph_pb2.SignatureDef], names: Optional[Dict[str, str]] = None
) -> bytes:
    """The model with its tensors renamed (`names`) and `signature_defs` in its metadata, as TF Lite's
    signature_def_util writes them: a FlexBuffer map of key -> serialized SignatureDef as a string
    (these protos are ASCII, which flexbuffers' Python builder needs of a string)."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    for tensor in model.subgraphs[0].tensors:
        tensor.name = (names or {}).get(tensor.name.decode(), tensor.name.decode()).encode()
    buffer = schema.BufferT()
    entries = {key: value.SerializeToString().decode("ascii") for key, value in signature_defs.items()}
    buffer.data = np.frombuffer(bytes(flexbuffers.Dumps(entries)), np.uint8)
    model.buffers.append(buffer)
    metadata = schema.MetadataT()
    metadata.name, metadata.buffer = tflite.SIGNATURE_DEFS_METADATA, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), metadata]
    return flatbuffer_utils.convert_object_to_bytearray(model)


def _version(base, content: bytes, version: int = 1) -> str:
    path = os.path.join(str(base), str(version))
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, tflite.TFLITE_FILE), "wb") as f:
        f.write(content)
    return path


def test_a_model_without_signature_defs_serves_its_tensors_as_serving_default(tmp_path, half_plus_two):
    """TF Serving's signature for such a model: every input and output under its tensor's name without
    `:0`. Inputs take the request's shape: TF Serving's own test sends shape [1] to this [1, 1] tensor."""
    served = tflite.load("half_plus_two", 1, _version(tmp_path, half_plus_two))
    assert list(served.signatures) == ["serving_default"]
    signature_def = served.signature_defs["serving_default"]
    assert signature_def.method_name == "tensorflow/serving/predict"
    assert {key: info.name for key, info in signature_def.inputs.items()} == {
        "serving_default_x": "serving_default_x:0"
    }
    assert [dim.size for dim in signature_def.inputs["serving_default_x"].tensor_shape.dim] == [1, 1]
    (output,) = signature_def.outputs
    signature = served.signature(None)
    assert signature.inputs["serving_default_x"].shape.as_list() == [None, 1]
    for x in ([2.0], [[2.0]], [[1.0], [2.0], [5.0]], [2.0]):
        answer = signature.run({"serving_default_x": np.array(x, np.float32)})
        assert list(answer) == [output] and answer[output].tolist() == (np.array(x) * 0.5 + 2).tolist()
        assert answer[output].dtype == np.float32
    metadata = dataplane.metadata_response(served)
    assert metadata.model_spec.version.value == 1 and "signature_def" in metadata.metadata


def test_tensors_of_one_legacy_name_are_one_output_and_what_tf_lite_refuses_is_a_400(tmp_path):
    """TF Lite's converter names both outputs `PartitionedCall:N`: as in TF Serving, the signature has
    one output of that name (the last tensor). A shape the model cannot compute on is INVALID_ARGUMENT
    explained by the declared shape, and the interpreter answers the next request."""
    served = tflite.load("sum_and_mean", 1, _version(tmp_path, _convert("sum_and_mean")))
    signature_def = served.signature_defs["serving_default"]
    assert {key: info.name for key, info in signature_def.outputs.items()} == {"PartitionedCall": "PartitionedCall:1"}
    signature = served.signature(None)
    with pytest.raises(
        InvalidArgument, match=r"input 'serving_default_x' has shape \[3\], the signature expects \(None, 2\)"
    ):
        signature.run({"serving_default_x": np.array([1.0, 2.0, 3.0], np.float32)})
    answer = signature.run({"serving_default_x": np.array([[1.0, 3.0]], np.float32)})
    assert answer["PartitionedCall"].tolist() == [4.0]  # the sum


def test_signature_defs_in_the_metadata_are_the_signatures_named_by_their_tensors(tmp_path, half_plus_two):
    """As TF Serving's own test model: SignatureDefs naming `tflite_input:0` for the tensor TF Lite
    calls `tflite_input` (the name older converters wrote), served under their keys; the metadata shows
    them with the interpreter's names."""
    signature_defs = {
        "serving_default": meta_graph_pb2.SignatureDef(
            inputs={"x": _tensor("tflite_input:0")},
            outputs={"y": _tensor("y:0")},
            method_name="tensorflow/serving/predict",
        ),
        "halve_then_add": meta_graph_pb2.SignatureDef(
            inputs={"value": _tensor("tflite_input")}, outputs={"answer": _tensor("y")}, method_name="custom"
        ),
    }
    names = {"serving_default_x:0": "tflite_input", "PartitionedCall:0": "y"}
    served = tflite.load(
        "half_plus_two", 123, _version(tmp_path, _with_signature_defs(half_plus_two, signature_defs, names))
    )
    assert sorted(served.signatures) == ["halve_then_add", "serving_default"]
    assert served.signatures["halve_then_add"].method_name == "custom"
    default = served.signature_defs["serving_default"]
    assert (default.inputs["x"].name, default.outputs["y"].name) == ("tflite_input", "y")
    assert served.signature("serving_default").run({"x": np.array([2.0], np.float32)})["y"].tolist() == [3.0]
    assert served.signature("halve_then_add").run({"value": np.array([[4.0]], np.float32)})["answer"].tolist() == [
        [4.0]
    ]
    with pytest.raises(InvalidArgument, match='Serving signature name: "predict" not found'):
        served.signature("predict")

    signature_defs["serving_default"].inputs["x"].name = "nope:0"
    path = _version(tmp_path, _with_signature_defs(half_plus_two, signature_defs, names), 2)
    with pytest.raises(ValueError, match="Signature input x references an unknown tensor: Unknown tensor 'nope:0'"):
        tflite.load("half_plus_two", 2, path)


def test_concurrent_calls_each_get_their_own_answer(tmp_path, half_plus_two):
    """The interpreter is one per version and not thread-safe: calls of different shapes (each one a
    resize) from several threads at once each get the answer to their own inputs."""
    signature = tflite.load("half_plus_two", 1, _version(tmp_path, half_plus_two)).signature(None)

    def call(seed: int) -> bool:
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(int(rng.integers(1, 5)), 1)).astype(np.float32)
        if seed % 2:
            x = x[:, 0]
        (answer,) = signature.run({"serving_default_x": x}).values()
        return answer.shape == x.shape and np.allclose(answer, x * 0.5 + 2)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert all(pool.map(call, range(200)))


def test_a_damaged_file_fails_the_load_naming_it(tmp_path, half_plus_two):
    """Nothing reaches TF Lite's interpreter, which trusts the offsets it reads, before the whole file
    has been read with its offsets checked: an empty, foreign, truncated or damaged file is an error
    naming it, never a crashed server."""
    file = os.path.join(str(tmp_path), "1", tflite.TFLITE_FILE)
    foreign = [b"", b"not a model", b"\x08\x00\x00\x00TFL3\x00\x00", half_plus_two[:-1]]
    for content in foreign + [half_plus_two[:n] for n in range(0, len(half_plus_two), 41)]:
        with pytest.raises(ValueError, match=f"^{re.escape(file)}: "):
            tflite.load("half_plus_two", 1, _version(tmp_path, content))
    rng = random.Random(0)
    for _ in range(60):  # a damaged value (a weight) still loads, and answers
        flipped = bytearray(half_plus_two)
        flipped[rng.randrange(len(flipped))] ^= 0xFF
        try:
            served = tflite.load("half_plus_two", 1, _version(tmp_path, bytes(flipped)))
        except ValueError as e:
            assert str(e).startswith(f"{file}: ")
            continue
        for signature in served.signatures.values():
            try:
                signature.run({name: np.ones([1, 1], np.float32) for name in signature.inputs})
            except InvalidArgument:
                pass

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(half_plus_two))
    model.subgraphs[0].operators[-1].outputs = model.subgraphs[0].inputs  # an operator writing the input
    with pytest.raises(ValueError, match=r"model.tflite: subgraph 0 operator \d+ writes tensor \d+, a model input"):
        tflite.load("half_plus_two", 1, _version(tmp_path, flatbuffer_utils.convert_object_to_bytearray(model)))
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(_with_signature_defs(half_plus_two, {})))
    model.buffers[model.metadata[-1].buffer].data = np.frombuffer(b"\x01\x02\x03", np.uint8)
    with pytest.raises(ValueError, match="model.tflite: Invalid SignatureDefs found in TfLite model"):
        tflite.load("half_plus_two", 1, _version(tmp_path, flatbuffer_utils.convert_object_to_bytearray(model)))


def test_with_prefer_tflite_model_a_folder_holding_model_tflite_is_a_version_served_by_tf_lite(tmp_path, half_plus_two):
    """Without the flag, a folder with only model.tflite is no version; with it, it is one, and a damaged
    model.tflite fails its version's load (END, with the file named) while the others serve."""
    _version(tmp_path, half_plus_two, 1)
    _version(tmp_path, half_plus_two[:200], 2)
    plain = config.ServerOptions(enable_model_warmup=False)
    store = ModelStore(config.ModelConfig("m", str(tmp_path)), load_servable(plain), plain)
    assert store.candidate_versions() == []
    options = config.ServerOptions(prefer_tflite_model=True, enable_model_warmup=False)
    store = ModelStore(config.ModelConfig("m", str(tmp_path)), load_servable(options), options)
    assert sorted(store.candidate_versions()) == [1, 2]
    store.refresh()
    assert [(s.version, s.state) for s in store.statuses()] == [(2, "END"), (1, "AVAILABLE")]
    assert f"{tmp_path}/2/model.tflite: not a whole TF Lite model" in store.statuses(2)[0].error_message
    answer = store.servable().signature(None).run({"serving_default_x": np.array([[2.0]], np.float32)})
    assert list(answer.values())[0].tolist() == [[3.0]]
