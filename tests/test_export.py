"""The exported SavedModel: TF Serving's names, in-graph checks against the curated schema's domain
(so the real TF Serving refuses the same inputs), the classification signature, and warmup records."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from models import features, geometry
from models.export import PixelDomain, predict_with_tta
from pipeline import configs
from serving import servable
from serving.errors import InvalidArgument


def test_serving_names_are_tensorflows_own():
    assert features.EXAMPLES_SIGNATURE == tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
    assert features.CLASSIFY_INPUT == tf.saved_model.CLASSIFY_INPUTS
    assert features.CLASSES_OUTPUT == tf.saved_model.CLASSIFY_OUTPUT_CLASSES
    assert features.SCORES_OUTPUT == tf.saved_model.CLASSIFY_OUTPUT_SCORES
    assert features.CLASSIFY_METHOD == tf.saved_model.CLASSIFY_METHOD_NAME


def test_pixel_domain_comes_from_the_curated_schema(tmp_path):
    assert PixelDomain.from_schema(configs.SCHEMA_PATH) == PixelDomain(0, 255)
    narrower = tmp_path / "schema.pbtxt"
    narrower.write_text(
        open(configs.SCHEMA_PATH)
        .read()
        .replace('name: "pixel"\n    min: 0\n    max: 255', 'name: "pixel"\n    min: 0\n    max: 100')
    )
    assert PixelDomain.from_schema(str(narrower)) == PixelDomain(0, 100)
    (tmp_path / "none.pbtxt").write_text('feature { name: "image" type: INT }')
    with pytest.raises(ValueError, match="feature 'image' has no int_domain"):
        PixelDomain.from_schema(str(tmp_path / "none.pbtxt"))


def _column_reader() -> tf.keras.Model:
    """A stand-in CNN whose answer depends on where the ink is: softmax over its ten middle columns."""
    inputs = tf.keras.Input((28, 28, 1))
    columns = tf.keras.layers.Lambda(lambda x: tf.reduce_sum(x[..., 9:19, 0], axis=1) * 5.0)(inputs)
    return tf.keras.Model(inputs, tf.keras.layers.Softmax()(columns))


def test_tta_averages_the_picture_and_its_two_rotations():
    reader = _column_reader()
    images = tf.constant(np.random.default_rng(0).uniform(0, 1, (4, 28, 28, 1)).astype(np.float32))
    np.testing.assert_allclose(predict_with_tta(reader, images, 0.0).numpy(), reader(images).numpy())
    copies = [images, geometry.rotated(images, 6.0), geometry.rotated(images, -6.0)]
    expected = np.mean([reader(copy).numpy() for copy in copies], axis=0)
    np.testing.assert_allclose(predict_with_tta(reader, images, 6.0).numpy(), expected, rtol=1e-6)
    assert not np.allclose(expected, reader(images).numpy(), atol=1e-3)


@pytest.fixture(scope="module")
def loaded(served_model):
    return servable.load(features.MODEL_NAME, 1, served_model)


def _example(pixels) -> bytes:
    feature = {features.IMAGE_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=list(pixels)))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.mark.e2e
@pytest.mark.parametrize("bad", [256.0, -1.0, 1e30, float("nan"), float("inf")])
def test_pixel_signature_refuses_values_outside_the_domain(loaded, bad):
    images = np.zeros((3, 784), np.float32)
    images[2, 100] = bad
    with pytest.raises(
        InvalidArgument,
        match=rf"input 'images': pixel values must be numbers in 0-255 .*"
        rf"got {'nan' if bad != bad else ''}.* at \[example, pixel\] \[2 100\]",
    ):
        loaded.signature(features.IMAGES_SIGNATURE).run({features.IMAGES_INPUT: images})
    images[2, 100] = 255.0
    loaded.signature(features.IMAGES_SIGNATURE).run({features.IMAGES_INPUT: images})


@pytest.mark.e2e
@pytest.mark.parametrize(
    "signature, name",
    [(features.EXAMPLES_SIGNATURE, features.EXAMPLES_INPUT), (features.CLASSIFY_SIGNATURE, features.CLASSIFY_INPUT)],
)
def test_example_signatures_refuse_pixels_outside_the_domain(loaded, signature, name):
    good, bad = _example([0] * 784), _example([0] * 783 + [300])
    with pytest.raises(
        InvalidArgument,
        match=rf"input '{name}', feature 'image': pixel values .* got 300 at "
        r"\[example, pixel\] \[1 783\]",
    ):
        loaded.signature(signature).run({name: np.array([good, bad], dtype=object)})
    with pytest.raises(InvalidArgument, match="the model rejected the input"):
        loaded.signature(signature).run({name: np.array([_example([0] * 10)], dtype=object)})


@pytest.mark.e2e
def test_classification_signature_is_tf_servings(loaded):
    signature = loaded.classification_signature(features.CLASSIFY_SIGNATURE)
    assert signature.method_name == tf.saved_model.CLASSIFY_METHOD_NAME
    outputs = signature.run({features.CLASSIFY_INPUT: np.array([_example([0] * 784)] * 2, dtype=object)})
    assert outputs[features.CLASSES_OUTPUT].tolist() == [[c.encode() for c in features.CLASS_LABELS]] * 2
    assert outputs[features.SCORES_OUTPUT].shape == (2, 10)
    np.testing.assert_allclose(outputs[features.SCORES_OUTPUT].sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.e2e
def test_warmup_file_has_a_request_per_signature_and_replays(loaded, served_model):
    records = [
        prediction_log_pb2.PredictionLog.FromString(r.numpy())
        for r in tf.data.TFRecordDataset(f"{served_model}/{features.WARMUP_FILE}")
    ]
    kinds = [
        (
            r.WhichOneof("log_type"),
            (r.predict_log.request if r.HasField("predict_log") else r.classify_log.request).model_spec.signature_name,
        )
        for r in records
    ]
    assert sorted(kinds) == sorted(
        [
            ("predict_log", features.EXAMPLES_SIGNATURE),
            ("predict_log", features.IMAGES_SIGNATURE),
            ("predict_log", features.IMAGE_BYTES_SIGNATURE),
            ("classify_log", features.CLASSIFY_SIGNATURE),
        ]
    )
    count, seconds = servable.replay_warmup(loaded, served_model, 1024, 1 << 20)
    assert count == 4 and seconds > 0


@pytest.mark.e2e
def test_the_served_model_predicts_with_tta(served_model, smoke_output):
    """The smoke profile exports as `standard` does: the signatures average the CNN's answers for each
    picture and its rotations by +-TEST_TIME_ROTATION (test-time augmentation), and the saved Keras
    model is the CNN alone."""
    from pipeline import mnist
    from tests import support

    _, pixels, _ = support.pipeline_test_digits(smoke_output, 32)
    export = tf.saved_model.load(served_model)
    images = tf.constant(mnist.scaled(pixels))
    copies = [geometry.rotated(images, d) for d in (0.0, configs.TEST_TIME_ROTATION, -configs.TEST_TIME_ROTATION)]
    answers = [export(copy, training=False).numpy() for copy in copies]
    served = export.signatures[features.IMAGES_SIGNATURE](**{features.IMAGES_INPUT: tf.constant(pixels)})
    probabilities = served[features.PROBABILITIES_OUTPUT].numpy()
    np.testing.assert_allclose(probabilities, np.mean(answers, axis=0), atol=2e-3)  # bfloat16 where trained so
    assert np.abs(probabilities - answers[0]).max() > 1e-2
