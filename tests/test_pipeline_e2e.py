"""The whole pipeline, `smoke` profile, under LocalDagRunner: bless and push; then the gates that refuse.

The tests share the session's smoke run folder, as a user's successive runs would; what a test needs
from an earlier run is a fixture, so that any test can run alone or in any order.
"""

import csv
import glob
import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from components.anomaly_gate import DataAnomaliesError
from models import features
from models.network import EXPORTED_WEIGHTS
from models.training import METRICS_CSV
from pipeline import configs, local_runner, summary
from reports import figures, run_report
from reports.browser import CHROMIUM, CHROMIUM_ARGS
from tests import support
from tests.support import needs_chromium

pytestmark = pytest.mark.e2e
SMOKE = configs.PROFILES["smoke"]


@pytest.fixture(scope="module")
def output_root(smoke_output) -> str:
    return smoke_output


@pytest.fixture(scope="module")
def smoke_result(smoke_run) -> summary.RunSummary:
    return smoke_run[1]


def _versions(output_root: str):
    return sorted(os.listdir(configs.serving_model_dir(output_root)))


@pytest.fixture(scope="module")
def refused_run(output_root):
    """A second run with an impossible bar, evaluated against the first run's model as its baseline:
    its summary, and the versions served before and after it."""
    before = _versions(output_root)
    local_runner.run(configs.settings("smoke", min_accuracy=0.9999), output_root=output_root)
    return summary.latest_run(configs.metadata_path(output_root)), before, _versions(output_root)


def test_smoke_run_blesses_and_pushes(output_root, smoke_result):
    result = smoke_result
    assert result.accuracy is not None and result.accuracy >= SMOKE.min_accuracy
    assert result.blessed and result.pushed and result.pushed_version.isdigit()
    assert result.pushed_to == os.path.join(configs.serving_model_dir(output_root), result.pushed_version)
    assert os.path.exists(os.path.join(result.pushed_to, "saved_model.pb"))
    # The serving canary served it first (the Pusher took its InfraBlessing), and the summary says so.
    assert result.canary_passed and result.canary.startswith("passed: AVAILABLE after"), result.canary
    assert "serving canary     passed" in "\n".join(result.lines())
    pipeline_root = configs.pipeline_root(output_root)
    for component in (
        "ServedBaseline",
        "ServingCanary",
        "AnomalyGate",
        "DigitExampleGen",
        "StatisticsGen",
        "SchemaGen",
        "ImportSchemaGen",
        "ExampleValidator",
        "Transform",
        "Trainer",
        "Evaluator",
        "Pusher",
    ):
        assert os.path.isdir(os.path.join(pipeline_root, component)), component
    # Trainer run directory: per-epoch CSV, TensorBoard events, exported checkpoint.
    with open(os.path.join(result.trainer_logs, METRICS_CSV)) as f:
        rows = list(csv.DictReader(f))
    assert 1 <= len(rows) <= SMOKE.trainer.epochs and {"accuracy", "val_accuracy", "lr"} <= set(rows[0])
    assert glob.glob(os.path.join(result.trainer_logs, "**", "events.out.tfevents.*"), recursive=True)
    assert glob.glob(os.path.join(result.trainer_logs, EXPORTED_WEIGHTS) + "*")


MAX_MODEL_MB = 5.0
"""889,322 float32 weights are 3.6 MB; the notebooks this replaces report about 5 MB."""


def test_the_pushed_version_carries_its_model_card(smoke_result, served_model):
    """What the version is, inside it: lineage, training settings, TFMA's figures, the canary's, the
    known weaknesses (robustness on perturbed test digits included); Markdown for people, JSON for tools."""
    card_dir = os.path.join(served_model, "assets.extra")
    with open(os.path.join(card_dir, "model_card.json")) as f:
        card = json.load(f)
    assert card["evaluation"]["test_accuracy"] == pytest.approx(smoke_result.accuracy)
    assert card["evaluation"]["blessed"] is True and card["evaluation"]["baseline"]["found"] is False
    assert set(card["evaluation"]["per_class_accuracy"]) == set(features.CLASS_LABELS)
    assert card["training"]["epochs"] == SMOKE.trainer.epochs and card["training"]["seed"] == SMOKE.trainer.seed
    assert card["data"]["examples"]["uri"] == smoke_result.examples_uri and card["data"]["examples"]["fingerprint"]
    assert card["serving_canary"]["blessed"] == 1 and card["serving_canary"]["summary"].startswith("passed")
    robust = card["known_weaknesses"]["robustness"]
    assert set(robust) == {"test_digits", "clean", "rotation", "shift", "noise"}
    assert robust["test_digits"] == SMOKE.test_limit and robust["clean"] == pytest.approx(smoke_result.accuracy)
    assert card["known_weaknesses"]["most_frequent_confusions"] and card["intended_use"]
    with open(os.path.join(card_dir, "model_card.md")) as f:
        text = f.read()
    assert text.startswith("# Model card: digits") and f"accuracy **{smoke_result.accuracy:.2%}**" in text
    assert smoke_result.model_card.endswith(os.path.join("assets.extra", "model_card.json"))


def test_pushed_model_is_small(served_model):
    folder = served_model
    size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(folder, "**"), recursive=True) if os.path.isfile(p))
    assert size < MAX_MODEL_MB * 2**20, f"{size / 2**20:.1f} MB"


def test_pushed_model_answers_every_signature(output_root, served_model):
    loaded = tf.saved_model.load(served_model)
    records, pixels, labels = support.pipeline_test_digits(output_root, 200)
    by_example = loaded.signatures[features.EXAMPLES_SIGNATURE](**{features.EXAMPLES_INPUT: tf.constant(records)})[
        features.PROBABILITIES_OUTPUT
    ].numpy()
    assert by_example.shape == (len(records), features.NUM_CLASSES)
    np.testing.assert_allclose(by_example.sum(axis=1), 1.0, rtol=1e-4)
    images = loaded.signatures[features.IMAGES_SIGNATURE]
    for shape in ((-1, 28, 28), (-1, 784)):
        out = images(**{features.IMAGES_INPUT: tf.constant(pixels.reshape(shape))})
        np.testing.assert_allclose(out[features.PROBABILITIES_OUTPUT].numpy(), by_example, atol=1e-5)
        np.testing.assert_array_equal(out[features.DIGIT_OUTPUT].numpy(), by_example.argmax(axis=1))
    assert (by_example.argmax(axis=1) == labels).mean() >= SMOKE.min_accuracy
    # Pictures through the in-graph decoder: a PNG of each test digit, and the same digit as dark ink
    # on white paper, are framed (nearly unchanged: MNIST's digits are framed already) and answered as
    # the pixel signature answers the framed digit; a blank picture has no digit.
    pngs = [support.png_bytes(p) for p in pixels[:20]]
    inverted = [support.png_bytes(255 - p) for p in pixels[:20]]
    by_bytes = loaded.signatures[features.IMAGE_BYTES_SIGNATURE]
    for batch in (pngs, inverted):
        out = by_bytes(**{features.IMAGE_BYTES_INPUT: tf.constant(batch)})
        framed = out[features.FRAMED_OUTPUT].numpy()
        assert np.abs(framed.astype(float) - pixels[:20]).mean() < 1.0
        again = images(**{features.IMAGES_INPUT: tf.constant(framed.astype(np.float32))})
        np.testing.assert_allclose(
            out[features.PROBABILITIES_OUTPUT].numpy(), again[features.PROBABILITIES_OUTPUT].numpy(), atol=1e-5
        )
        assert (out[features.DIGIT_OUTPUT].numpy() == by_example[:20].argmax(axis=1)).mean() >= 0.9
    blank = by_bytes(**{features.IMAGE_BYTES_INPUT: tf.constant([support.png_bytes(np.zeros((28, 28)))])})
    assert blank[features.DIGIT_OUTPUT].numpy().tolist() == [features.NO_DIGIT]
    assert blank[features.PROBABILITIES_OUTPUT].numpy().max() == 0.0


REPORT_FILES = {
    "index.html",
    "training_curves.png",
    "confusion_matrix.png",
    "mistakes.png",
    "feature_maps.png",
    "samples_per_class.png",
    "label_distribution.png",
    "classification_report.csv",
    "classification_report.txt",
    "confusion_matrix.csv",
    "confusion_pairs.csv",
    "model_card.md",
}


def test_report_of_the_blessed_run(output_root, smoke_result):
    result = smoke_result
    path = run_report.write_report(output_root, result)
    folder = os.path.dirname(path)
    assert REPORT_FILES <= set(os.listdir(folder))
    assert os.path.realpath(os.path.join(run_report.reports_root(output_root), run_report.LATEST)) == folder
    # The report's own predictions (raw-pixel signature) agree with TFMA's (tf.Example signature).
    with open(os.path.join(folder, "classification_report.csv")) as f:
        rows = {row["class"]: row for row in csv.DictReader(f)}
    assert float(rows["accuracy"]["f1"]) == pytest.approx(result.accuracy, abs=1e-6)
    assert int(rows["accuracy"]["support"]) == SMOKE.test_limit
    with open(os.path.join(folder, "confusion_matrix.csv")) as f:
        matrix = np.array([row[1:] for row in list(csv.reader(f))[1:]], dtype=int)
    assert matrix.shape == (10, 10) and matrix.sum() == SMOKE.test_limit
    assert np.trace(matrix) / matrix.sum() == pytest.approx(result.accuracy, abs=1e-6)
    page = pathlib.Path(path).read_text()
    assert f"model version<b>{result.pushed_version}</b>" in page and "blessed<b>yes</b>" in page
    assert f"{result.accuracy:.2%}" in page


@needs_chromium
def test_report_page_loads_every_image_in_chromium(output_root, smoke_result):
    from playwright.sync_api import sync_playwright

    path = run_report.write_report(output_root, smoke_result)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.goto(pathlib.Path(path).resolve().as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all(
            "img", "imgs => imgs.map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
        )
        browser.close()
    assert {src for src, _, _ in images} == {f for f in REPORT_FILES if f.endswith(".png")}
    assert all(complete and width > 0 for _, complete, width in images), images


def test_failed_report_leaves_the_previous_one_whole(output_root, smoke_result, monkeypatch):
    run_report.write_report(output_root, smoke_result)
    latest = os.path.join(run_report.reports_root(output_root), run_report.LATEST)
    before = sorted(os.listdir(latest))

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(figures, "feature_maps", broken)
    with pytest.raises(RuntimeError, match="drawing failed"):
        run_report.write_report(output_root, smoke_result)
    assert sorted(os.listdir(latest)) == before
    assert not [n for n in os.listdir(run_report.reports_root(output_root)) if n.startswith(".")]


def test_impossible_bar_is_not_blessed_and_keeps_the_served_version(refused_run):
    result, before, after = refused_run
    assert result.blessed is False and result.pushed is False
    assert after == before


def test_evaluation_notebook_runs_and_compares_with_the_baseline(output_root, refused_run, monkeypatch):
    import nbclient
    import nbformat

    # The refused run's evaluation is the newest: it holds a candidate and a baseline.
    monkeypatch.setenv("DIGITS_OUTPUT", output_root)
    notebook_dir = os.path.join(configs.PROJECT_ROOT, "notebooks")
    notebook = nbformat.read(os.path.join(notebook_dir, "evaluation.ipynb"), as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": notebook_dir}}
    ).execute()
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "baseline model:" in printed and "Validation failed" in printed
    pictures = [
        o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})
    ]
    assert len(pictures) == 2
    html = "".join(
        o.get("data", {}).get("text/html", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "facets-overview" in html  # TFDV's statistics view of the run's StatisticsGen output


def test_anomalies_stop_the_run_before_training(output_root, tmp_path):
    with open(configs.SCHEMA_PATH) as f:
        strict = f.read().replace('name: "digit"\n    min: 0\n    max: 9', 'name: "digit"\n    min: 0\n    max: 5')
    assert "max: 5" in strict
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(strict)
    trainer_runs = glob.glob(os.path.join(configs.pipeline_root(output_root), "Trainer", "model", "*"))
    before = _versions(output_root)
    with pytest.raises(DataAnomaliesError, match=r"split 'train', feature 'label': Out-of-range values"):
        local_runner.run(configs.settings("smoke", schema_path=str(schema)), output_root=output_root)
    assert glob.glob(os.path.join(configs.pipeline_root(output_root), "Trainer", "model", "*")) == trainer_runs
    assert _versions(output_root) == before
