"""The whole pipeline, `smoke` profile, under LocalDagRunner: bless and push; then the gates that refuse.

The tests in this module share one output folder and run in order, as a user's successive runs would.
"""

import csv
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from components.anomaly_gate import DataAnomaliesError
from models import features
from models.model import BEST_WEIGHTS, METRICS_CSV
from pipeline import configs, local_runner, summary
from tests import digit_files

SMOKE = configs.PROFILES["smoke"]


@pytest.fixture(scope="module")
def output_root(smoke_output) -> str:
    return smoke_output


def _versions(output_root: str):
    return sorted(os.listdir(configs.serving_model_dir(output_root)))


def test_smoke_run_blesses_and_pushes(output_root):
    result = summary.latest_run(configs.metadata_path(output_root))
    assert result.accuracy is not None and result.accuracy >= SMOKE.min_accuracy
    assert result.blessed and result.pushed
    (version,) = _versions(output_root)
    assert version.isdigit()
    assert result.pushed_to == os.path.join(configs.serving_model_dir(output_root), version)
    pipeline_root = configs.pipeline_root(output_root)
    for component in ("DigitExampleGen", "StatisticsGen", "SchemaGen", "ImportSchemaGen", "ExampleValidator",
                      "Transform", "Trainer", "Evaluator", "Pusher"):
        assert os.path.isdir(os.path.join(pipeline_root, component)), component
    # Trainer run directory: per-epoch CSV, TensorBoard events, best checkpoint.
    with open(os.path.join(result.trainer_logs, METRICS_CSV)) as f:
        rows = list(csv.DictReader(f))
    assert 1 <= len(rows) <= SMOKE.epochs and {"accuracy", "val_accuracy", "lr"} <= set(rows[0])
    assert glob.glob(os.path.join(result.trainer_logs, "**", "events.out.tfevents.*"), recursive=True)
    assert glob.glob(os.path.join(result.trainer_logs, BEST_WEIGHTS) + "*")


def test_pushed_model_answers_every_signature(output_root):
    (version,) = _versions(output_root)
    loaded = tf.saved_model.load(os.path.join(configs.serving_model_dir(output_root), version))
    records, pixels, labels = digit_files.pipeline_test_digits(output_root, 200)
    by_example = loaded.signatures[features.EXAMPLES_SIGNATURE](
        **{features.EXAMPLES_INPUT: tf.constant(records)}
    )[features.PROBABILITIES_OUTPUT].numpy()
    assert by_example.shape == (len(records), features.NUM_CLASSES)
    np.testing.assert_allclose(by_example.sum(axis=1), 1.0, rtol=1e-4)
    images = loaded.signatures[features.IMAGES_SIGNATURE]
    for shape in ((-1, 28, 28), (-1, 784)):
        out = images(**{features.IMAGES_INPUT: tf.constant(pixels.reshape(shape))})
        np.testing.assert_allclose(out[features.PROBABILITIES_OUTPUT].numpy(), by_example, atol=1e-5)
        np.testing.assert_array_equal(out[features.DIGIT_OUTPUT].numpy(), by_example.argmax(axis=1))
    assert (by_example.argmax(axis=1) == labels).mean() >= SMOKE.min_accuracy
    # Pictures through the in-graph decoder: a PNG of each test digit, and the same digit as dark ink
    # on white paper, give the pixel signature's answer.
    pngs = [digit_files.png_bytes(p) for p in pixels[:20]]
    inverted = [digit_files.png_bytes(255 - p) for p in pixels[:20]]
    by_bytes = loaded.signatures[features.IMAGE_BYTES_SIGNATURE]
    for batch in (pngs, inverted):
        out = by_bytes(**{features.IMAGE_BYTES_INPUT: tf.constant(batch)})
        np.testing.assert_allclose(out[features.PROBABILITIES_OUTPUT].numpy(), by_example[:20], atol=1e-5)


def test_impossible_bar_is_not_blessed_and_keeps_the_served_version(output_root):
    before = _versions(output_root)
    local_runner.run(SMOKE, output_root=output_root, min_accuracy=0.9999)
    result = summary.latest_run(configs.metadata_path(output_root))
    assert result.blessed is False and result.pushed is False
    assert _versions(output_root) == before


def test_anomalies_stop_the_run_before_training(output_root, tmp_path):
    with open(configs.SCHEMA_PATH) as f:
        strict = f.read().replace('name: "digit"\n    min: 0\n    max: 9', 'name: "digit"\n    min: 0\n    max: 5')
    assert "max: 5" in strict
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(strict)
    trainer_runs = glob.glob(os.path.join(configs.pipeline_root(output_root), "Trainer", "model", "*"))
    before = _versions(output_root)
    with pytest.raises(DataAnomaliesError, match=r"split 'train', feature 'label': Out-of-range values"):
        local_runner.run(SMOKE, output_root=output_root, schema_path=str(schema))
    assert glob.glob(os.path.join(configs.pipeline_root(output_root), "Trainer", "model", "*")) == trainer_runs
    assert _versions(output_root) == before
