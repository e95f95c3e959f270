"""`serving.servable`: what a model's refusal says once the graph noise is taken out, and SavedModels
written by TensorFlow 1.0 loaded as TF Serving loads them, and models using TF Text's ops."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from serving.errors import InvalidArgument
from serving.servable import (
    LEGACY_PLACEHOLDER_PRODUCER,
    SAVED_MODEL_FILE,
    legacy_shapes_as_unknown,
    load,
    model_message,
)


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


def _legacy_saved_model(path: str) -> None:
    """A regression SavedModel written as TensorFlow 1.0 wrote it (GraphDef producer 21): its Placeholder
    of serialized tf.Examples and its signature tensors carry empty shapes, meaning unknown."""
    graph = tf.Graph()
    with graph.as_default():
        examples = tf.compat.v1.placeholder(tf.string, name="tf_example")
        # ParseExample (v1), as TensorFlow 1.0 wrote it: it takes a vector of examples only.
        (x,) = tf.raw_ops.ParseExample(
            serialized=examples,
            names=tf.constant([], tf.string),
            sparse_keys=[],
            dense_keys=[tf.constant("x")],
            dense_defaults=[tf.constant([], tf.float32)],
            sparse_types=[],
            dense_shapes=[[1]],
        )[3]
        y = tf.identity(x * 0.5 + 3.0, name="y")
        signature = tf.compat.v1.saved_model.regression_signature_def(examples, y)
        with tf.compat.v1.Session(graph=graph) as session:
            builder = tf.compat.v1.saved_model.Builder(path)
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={"regress": signature})
            builder.save()
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, SAVED_MODEL_FILE), "rb") as f:
        saved_model.ParseFromString(f.read())
    meta_graph = saved_model.meta_graphs[0]
    meta_graph.graph_def.versions.producer = LEGACY_PLACEHOLDER_PRODUCER
    for node in meta_graph.graph_def.node:
        if node.op == "Placeholder":
            node.attr["shape"].shape.Clear()
    for info in (
        *meta_graph.signature_def["regress"].inputs.values(),
        *meta_graph.signature_def["regress"].outputs.values(),
    ):
        info.tensor_shape.Clear()
    with open(os.path.join(path, SAVED_MODEL_FILE), "wb") as f:
        f.write(saved_model.SerializeToString())


def test_a_tensorflow_1_0_saved_model_whose_placeholders_declare_no_shape_loads(tmp_path):
    """TF Serving's own test models are such SavedModels: `tf.saved_model.load` reads their empty
    shapes as scalars and fails; the server loads them as TF Serving does, the original untouched."""
    path = str(tmp_path / "00000123")
    _legacy_saved_model(path)
    written = open(os.path.join(path, SAVED_MODEL_FILE), "rb").read()
    with pytest.raises(ValueError, match="rank"):
        tf.saved_model.load(path)
    served = load("legacy", 123, path)
    example = tf.train.Example()
    example.features.feature["x"].float_list.value.append(2.0)
    answer = served.regression_signature("regress").run({"inputs": np.array([example.SerializeToString()], object)})
    assert answer["outputs"].reshape(-1).tolist() == [4.0]
    assert open(os.path.join(path, SAVED_MODEL_FILE), "rb").read() == written
    assert sorted(os.listdir(tmp_path)) == ["00000123"]


def test_only_the_empty_shapes_of_legacy_graphs_are_read_as_unknown(tmp_path):
    path = str(tmp_path / "1")
    _legacy_saved_model(path)
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, SAVED_MODEL_FILE), "rb") as f:
        saved_model.ParseFromString(f.read())
    newer = saved_model_pb2.SavedModel()
    newer.CopyFrom(saved_model)
    newer.meta_graphs[0].graph_def.versions.producer = LEGACY_PLACEHOLDER_PRODUCER + 1
    assert not legacy_shapes_as_unknown(newer)  # a scalar Placeholder there is a scalar
    assert legacy_shapes_as_unknown(saved_model)
    meta_graph = saved_model.meta_graphs[0]
    (placeholder,) = [node for node in meta_graph.graph_def.node if node.op == "Placeholder"]
    assert placeholder.attr["shape"].shape.unknown_rank
    signature = meta_graph.signature_def["regress"]
    assert all(info.tensor_shape.unknown_rank for info in (*signature.inputs.values(), *signature.outputs.values()))
    assert not legacy_shapes_as_unknown(saved_model)  # nothing left to rewrite


def test_a_signature_takes_what_its_model_computes_on_and_explains_what_it_refuses(tmp_path):
    """TF Serving's quick start: half_plus_two declares (None, 1) and is sent [1.0, 2.0, 5.0] (shape
    [3]); the graph decides, not the declaration. A shape the graph cannot use is explained by the
    declaration."""

    class HalfPlusTwo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def half_plus_two(self, x):
            return {"y": x * 0.5 + 2.0}

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def weighted(self, x):
            return {"y": tf.matmul(x, tf.ones([2, 1]))}

    module = HalfPlusTwo()
    path = str(tmp_path / "1")
    tf.saved_model.save(module, path, signatures={"serving_default": module.half_plus_two, "weighted": module.weighted})
    served = load("half_plus_two", 1, path)
    answer = served.signature(None).run({"x": np.array([1.0, 2.0, 5.0], np.float32)})
    assert answer["y"].tolist() == [2.5, 3.0, 4.5]
    with pytest.raises(InvalidArgument, match=r"^input 'x' has shape \[3\], the signature expects \(None, 2\)$"):
        served.signature("weighted").run({"x": np.array([1.0, 2.0, 5.0], np.float32)})


@pytest.mark.component  # A process of its own, where nothing imported TF Text before the server.
def test_a_model_that_tokenizes_with_tf_text_loads_and_answers(tmp_path):
    """TF Serving links TF Text's ops in; a SavedModel whose signature splits text with them loads here
    too, in a process that imports nothing but the server."""
    import tensorflow_text

    class Words(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def count(self, text):
            return {"words": tensorflow_text.WhitespaceTokenizer().tokenize(text).row_lengths()}

    module = Words()
    tf.saved_model.save(module, str(tmp_path / "1"), signatures=module.count)
    script = (
        "import sys, numpy as np\n"
        "from serving.servable import load\n"
        "answer = load('words', 1, sys.argv[1]).signature(None).run({'text': np.array([b'a b c', b'd'])})\n"
        "print(answer['words'].tolist())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "1")], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[3, 1]"
