"""TF Lite versions, served as TF Serving serves them with `--prefer_tflite_model` (its
tflite_session.cc): a version folder's `model.tflite` runs in a `tf.lite.Interpreter` instead of its
SavedModel.

Signatures are the SignatureDefs the model carries in its metadata `signature_defs_metadata` (a
FlexBuffer map of signature key -> serialized SignatureDef, as TF Lite's signature_def_util writes it),
their tensor names matched to the interpreter's (`x:0` is tensor `x` when the model has no `x:0`, the
name older converters wrote). A model without them gets one `serving_default` predict signature whose
inputs and outputs are the interpreter's, named by their tensor names without the `:0` suffix. TF Lite's
own signature runners are not read, as in TF Serving.

Each request's inputs go to the interpreter with the request's shapes: an input tensor is resized to
the shape the request sends (TF Serving's test sends shape [1] to a [1, 1] tensor) and the model
decides what it computes on. One interpreter serves each version, one call at a time.

The file is checked before TF Lite reads it: TF Lite's interpreter trusts the offsets a flatbuffer
holds and reads wherever they point, so a truncated or damaged file would crash the server rather than
fail its load.
"""

import functools
import importlib.util
import logging
import os
import threading
import types
from typing import Any, Dict, List, Mapping, Tuple

import flatbuffers
import numpy as np
import tensorflow as tf
from flatbuffers import encode, flexbuffers, number_types
from tensorflow.core.protobuf import meta_graph_pb2

from models.config import exported_class_names
from serving.servable import DEFAULT_SIGNATURE, Servable, Signature

log = logging.getLogger(__name__)

TFLITE_FILE = "model.tflite"
SIGNATURE_DEFS_METADATA = "signature_defs_metadata"
"""The metadata entry holding a TF Lite model's SignatureDefs (TF Lite's kSignatureDefsMetadataName)."""
PREDICT_METHOD = tf.saved_model.PREDICT_METHOD_NAME

_SERVED_TYPES = (tf.float32, tf.int32, tf.uint8, tf.int64, tf.string, tf.bool, tf.int16, tf.complex64, tf.int8)
"""The TF Lite tensor types TF Serving serves (its TfLiteTypeToTfType); a model with another type of
input or output fails to load."""


def has_model(path: str) -> bool:
    return bool(tf.io.gfile.exists(os.path.join(path, TFLITE_FILE)))


_UOFFSET = number_types.UOffsetTFlags


class _CheckedTable(flatbuffers.table.Table):
    """A flatbuffer table that reads nothing outside its buffer. flatbuffers' own Python reader already
    refuses an offset before or past the buffer (TypeError, struct.error), except for a string, which it
    cuts short at the buffer's end: this one refuses that too, and a string without its terminating
    NUL, which TF Lite's reader would read on from."""

    __slots__ = ()

    def String(self, off: int) -> bytes:  # noqa: N802 (flatbuffers' name)
        number_types.enforce_number(off, _UOFFSET)
        start = off + encode.Get(_UOFFSET.packer_type, self.Bytes, off)
        length = encode.Get(_UOFFSET.packer_type, self.Bytes, start)
        end = start + _UOFFSET.bytewidth + length
        if end >= len(self.Bytes) or self.Bytes[end] != 0:
            raise ValueError(f"the string at byte {start} runs past the end of the file")
        return bytes(self.Bytes[start + _UOFFSET.bytewidth : end])

    def Union(self, t2: flatbuffers.table.Table, off: int) -> None:  # noqa: N802 (flatbuffers' name)
        off += self.Pos
        t2.Pos = off + self.Get(_UOFFSET, off)
        t2.Bytes = self.Bytes


@functools.cache
def _checked_schema() -> types.ModuleType:
    """TF Lite's generated Python reader of its schema, a copy of its own whose tables are
    `_CheckedTable`s (TF Lite's module itself is left as it is)."""
    spec = importlib.util.find_spec("tensorflow.lite.python.schema_py_generated")
    if spec is None or spec.loader is None:
        raise ImportError("TensorFlow has no TF Lite schema reader (tensorflow.lite.python.schema_py_generated)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.flatbuffers = types.SimpleNamespace(  # type: ignore[attr-defined]
        table=types.SimpleNamespace(Table=_CheckedTable),
        encode=flatbuffers.encode,
        number_types=flatbuffers.number_types,
        packer=flatbuffers.packer,
        util=flatbuffers.util,
    )
    return module


def read_model(content: bytes) -> Any:
    """The model (TF Lite's `ModelT`) of a .tflite file's bytes, every part of it read with its offsets
    checked; ValueError saying what is wrong if the bytes are not a whole TF Lite model."""
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ValueError(f"not a TF Lite model ({len(content)} bytes, without TF Lite's identifier TFL3)")
    try:
        model = _checked_schema().ModelT.InitFromPackedBuf(content, 0)
    except Exception as e:  # Whatever reading garbage raises (struct.error, TypeError, ...): never a crash.
        raise ValueError(f"not a whole TF Lite model, truncated or damaged ({type(e).__name__}: {e})") from None
    for index, buffer in enumerate(model.buffers or []):
        # Buffers stored after the flatbuffer (models over 2 GB) are read by offset and size.
        if buffer is not None and buffer.offset > 1 and buffer.offset + buffer.size > len(content):
            raise ValueError(f"buffer {index} ends past the end of the file, which is truncated")
    if not model.subgraphs:
        raise ValueError("the model has no subgraph")
    _check_operators(model)
    return model


_WINDOW_SIZES = ("stride", "filter", "dilation")
"""The operator options TF Lite's kernels divide by or allocate with without checking them first (a
stride of 0 stops the process): sizes that must be positive."""


def _check_operators(model: Any) -> None:
    """What a damaged file can say that TF Lite's kernels take on trust: a window size (stride, filter,
    dilation) that is not positive, and an operator writing a model input or a constant."""
    for s, subgraph in enumerate(model.subgraphs):
        if subgraph is None:
            continue
        given = set(np.asarray(subgraph.inputs if subgraph.inputs is not None else [], dtype=np.int64).tolist())
        tensors = subgraph.tensors or []
        for o, operator in enumerate(subgraph.operators or []):
            if operator is None:
                continue
            for name, value in getattr(operator.builtinOptions, "__dict__", {}).items():
                if name.startswith(_WINDOW_SIZES) and isinstance(value, int) and value < 1:
                    raise ValueError(f"subgraph {s} operator {o}: its {name} is {value}, where a size is expected")
            outputs = np.asarray(operator.outputs if operator.outputs is not None else [], dtype=np.int64).tolist()
            for t in outputs:
                constant = 0 <= t < len(tensors) and tensors[t] is not None and _is_constant(model, tensors[t])
                if t in given or constant:
                    raise ValueError(f"subgraph {s} operator {o} writes tensor {t}, a model input or a constant")


def _is_constant(model: Any, tensor: Any) -> bool:
    buffers = model.buffers or []
    if not 0 < tensor.buffer < len(buffers) or buffers[tensor.buffer] is None:
        return False
    buffer = buffers[tensor.buffer]
    return (buffer.data is not None and len(buffer.data) > 0) or buffer.offset > 1


def read_signature_defs(model: Any) -> Dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefs in a model's `signature_defs_metadata`, as TF Lite's GetSignatureDefMap reads
    them; empty when there are none."""
    for metadata in model.metadata or []:
        if metadata is None or metadata.name != SIGNATURE_DEFS_METADATA.encode():
            continue
        try:
            data = bytes(model.buffers[metadata.buffer].data)
            entries = flexbuffers.GetRoot(data).AsMap
            signature_defs = {}
            for key, value in zip(entries.Keys, entries.Values):
                if not value.IsString:
                    raise ValueError(f"the entry {key.AsKey!r} is not a serialized SignatureDef")
                signature_defs[key.AsKey] = meta_graph_pb2.SignatureDef.FromString(bytes(value.AsStringBytes))
        except Exception as e:
            raise ValueError(f"Invalid SignatureDefs found in TfLite model: {type(e).__name__}: {e}") from None
        return signature_defs
    return {}


def legacy_tensor_name(name: str) -> str:
    """TF Serving's TfToTfLiteLegacyTensorName: a TensorFlow tensor name without its `:0` suffix, as
    early TF Lite converters named tensors."""
    return name.split(":", 1)[0]


def fix_tensor_name(tensors: Mapping[str, Any], name: str) -> str:
    """TF Serving's FixTfLiteTensorName: the interpreter's tensor a SignatureDef names, by its name or
    else its legacy name."""
    if name in tensors:
        return name
    if legacy_tensor_name(name) in tensors:
        return legacy_tensor_name(name)
    raise ValueError(f"Unknown tensor '{name}'.")


def _tf_dtype(numpy_type: type) -> tf.DType:
    return tf.string if np.dtype(numpy_type).kind in "SUO" else tf.as_dtype(numpy_type)


def _tensors(details: List[Dict[str, Any]], kind: str) -> Dict[str, Dict[str, Any]]:
    """The interpreter's input or output tensors by name, checked as TF Serving's GetTensorInfoMap
    checks them."""
    tensors: Dict[str, Dict[str, Any]] = {}
    for detail in details:
        if not detail["name"]:
            raise ValueError(f"{kind} name missing for tensor index: {detail['index']}")
        if detail["name"] in tensors:
            raise ValueError(f"{kind} tensor name: {detail['name']} has multiple indices")
        try:
            dtype = _tf_dtype(detail["dtype"])
        except TypeError:
            dtype = None
        if dtype not in _SERVED_TYPES:
            raise ValueError(f"{kind} tensor {detail['name']}: Unknown TfLite type: {np.dtype(detail['dtype']).name}")
        tensors[detail["name"]] = {**detail, "tf_dtype": dtype}
    return tensors


def _tensor_info(tensor: Dict[str, Any]) -> meta_graph_pb2.TensorInfo:
    """TF Serving's TfLiteTensorToTensorInfo: the tensor's name, type and current dimensions."""
    info = meta_graph_pb2.TensorInfo(name=tensor["name"], dtype=tensor["tf_dtype"].as_datatype_enum)
    for size in tensor["shape"]:
        info.tensor_shape.dim.add(size=int(size))
    return info


def default_signature_def(
    inputs: Dict[str, Dict[str, Any]], outputs: Dict[str, Dict[str, Any]]
) -> meta_graph_pb2.SignatureDef:
    """TF Serving's signature for a model without SignatureDefs: every input and output tensor under
    its legacy name. Two tensors of the same legacy name (`out:0`, `out:1`) are one key, the last in
    name order, as in TF Serving."""
    signature_def = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    for tensors, infos in ((inputs, signature_def.inputs), (outputs, signature_def.outputs)):
        for name in sorted(tensors):
            key = legacy_tensor_name(name)
            if key in infos:
                log.warning("TF Lite tensors %s and %s are both %r: %s is served", infos[key].name, name, key, name)
            infos[key].CopyFrom(_tensor_info(tensors[name]))
    return signature_def


class Interpreter:
    """A `tf.lite.Interpreter`, which is not thread-safe, called one request at a time. Each call resizes
    the inputs whose shape differs from the request's, as TF Serving does."""

    def __init__(self, interpreter: tf.lite.Interpreter):
        self._interpreter = interpreter
        self._lock = threading.Lock()
        self._shapes = self._allocated_shapes()
        """Each input's shape as allocated; emptied when an allocation fails, so that the next call
        resizes and allocates again."""

    def _allocated_shapes(self) -> Dict[int, Tuple[int, ...]]:
        return {d["index"]: tuple(int(s) for s in d["shape"]) for d in self._interpreter.get_input_details()}

    def run(self, inputs: Dict[int, np.ndarray], outputs: Dict[str, int]) -> Dict[str, np.ndarray]:
        """Sets the inputs (tensor index -> array), invokes, and returns the outputs (name -> tensor
        index); what TF Lite refuses is a ValueError with its message."""
        with self._lock:
            try:
                resized = [i for i, array in inputs.items() if self._shapes.get(i) != array.shape]
                if resized:
                    self._shapes = {}
                    for index in resized:
                        self._interpreter.resize_tensor_input(index, list(inputs[index].shape), strict=False)
                    self._interpreter.allocate_tensors()
                    self._shapes = self._allocated_shapes()
                for index, array in inputs.items():
                    self._interpreter.set_tensor(index, array)
                self._interpreter.invoke()
                answers = {name: self._interpreter.get_tensor(index) for name, index in outputs.items()}
            except (RuntimeError, ValueError) as e:
                raise ValueError(str(e).strip() or type(e).__name__) from None
        return {name: a.astype(object) if a.dtype.kind == "S" else a for name, a in answers.items()}


def _signature(
    name: str,
    signature_def: meta_graph_pb2.SignatureDef,
    interpreter: Interpreter,
    inputs: Dict[str, Dict[str, Any]],
    outputs: Dict[str, Dict[str, Any]],
) -> Signature:
    """A signature running the interpreter: its inputs by key -> tensor indexes, its outputs likewise.
    Each input is declared with its tensor's type and shape (-1, a size the model leaves open, is
    None)."""
    input_tensors = {key: inputs[info.name] for key, info in signature_def.inputs.items()}
    output_indexes = {key: outputs[info.name]["index"] for key, info in signature_def.outputs.items()}
    specs = {
        key: tf.TensorSpec([None if s < 0 else int(s) for s in tensor["shape_signature"]], tensor["tf_dtype"], name=key)
        for key, tensor in input_tensors.items()
    }

    def run(**tensors: tf.Tensor) -> Dict[str, np.ndarray]:
        arrays = {input_tensors[key]["index"]: tensor.numpy() for key, tensor in tensors.items()}
        return interpreter.run(arrays, output_indexes)

    return Signature(name=name, method_name=signature_def.method_name, inputs=specs, function=run)


def load(model_name: str, version: int, path: str) -> Servable:
    """Loads a version's model.tflite; ValueError naming the file if it is not a TF Lite model TF Lite
    can run, or its SignatureDefs name tensors it does not have."""
    file = os.path.join(path, TFLITE_FILE)
    with tf.io.gfile.GFile(file, "rb") as f:
        content = f.read()
    try:
        model = read_model(content)
        signature_defs = read_signature_defs(model)
    except ValueError as e:
        raise ValueError(f"{file}: {e}") from None
    try:
        tflite = tf.lite.Interpreter(model_content=content)
        tflite.allocate_tensors()
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"{file}: TF Lite cannot run the model: {str(e).strip()}") from None
    try:
        inputs = _tensors(tflite.get_input_details(), "Input")
        outputs = _tensors(tflite.get_output_details(), "Output")
        if signature_defs:
            for signature_def in signature_defs.values():
                for kind, infos, tensors in (
                    ("input", signature_def.inputs, inputs),
                    ("output", signature_def.outputs, outputs),
                ):
                    for key, info in infos.items():
                        try:
                            info.name = fix_tensor_name(tensors, info.name)
                        except ValueError as e:
                            raise ValueError(f"Signature {kind} {key} references an unknown tensor: {e}") from None
        else:
            log.info("%s has no SignatureDefs: serving its tensors as %r", file, DEFAULT_SIGNATURE)
            signature_defs = {DEFAULT_SIGNATURE: default_signature_def(inputs, outputs)}
    except ValueError as e:
        raise ValueError(f"{file}: {e}") from None
    interpreter = Interpreter(tflite)
    signatures = {
        name: _signature(name, signature_def, interpreter, inputs, outputs)
        for name, signature_def in signature_defs.items()
    }
    return Servable(model_name, version, signatures, signature_defs, exported_class_names(path), interpreter)
