"""Kaggle's Digit Recognizer files (a labelled train.csv and the unlabeled test.csv) with class names of
their own (a labels file beside them) and a model name of its own, run from the command line: the names
reach the exported model's signatures, the report, `digits predict` and the drawing page; the model is
pushed, recorded and served under its own name, apart from the digits; and BulkInferrer scores the
unlabeled digits into Kaggle's submission.csv (`ImageId,Label`, in order)."""

import csv
import os
import pathlib
import urllib.request

import pytest
import tensorflow as tf

from cli import main
from models import features
from pipeline import configs, summary
from reports import run_report
from serving.config import ServerOptions, single_model
from serving.server import ModelServer
from tests import support

pytestmark = pytest.mark.component

NAME = "spelled"
UNLABELED = 12
NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@pytest.fixture(scope="module")
def named_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("spelled-digits")
    support.write_csv(str(data / "train.csv"), *support.mnist_digits("train", 600))
    support.write_unlabeled_csv(str(data / "test.csv"), support.mnist_digits("t10k", UNLABELED)[0])
    (data / configs.DATASET_LABELS).write_text("".join(f"{name}\n" for name in NAMES))
    output = str(tmp_path_factory.mktemp("output"))
    flags = ["--profile", "smoke", "--data", str(data), "--model-name", NAME, "--min-accuracy", "0", "--output", output]
    assert main.main(["run", *flags]) == 0
    return output, summary.latest_run(configs.metadata_path(output, NAME))


def test_the_model_and_its_pipeline_have_the_name(named_run):
    output, run = named_run
    assert run.pushed and os.path.dirname(run.pushed_to) == configs.serving_model_dir(output, NAME)
    assert os.path.isdir(configs.pipeline_root(output, NAME))
    # Nothing under the digits' own name: their runs, baseline and drift reference stay apart.
    assert not os.path.exists(configs.pipeline_root(output)) and not os.path.exists(configs.serving_model_dir(output))
    assert pathlib.Path(run.pushed_to, features.CLASS_NAMES_FILE).read_text().split("\n")[:10] == list(NAMES)


def test_the_signatures_answer_with_the_names(named_run):
    output, run = named_run
    loaded = tf.saved_model.load(run.pushed_to)
    records, pixels, _ = support.pipeline_test_digits(output, 8, NAME)
    classified = loaded.signatures[features.CLASSIFY_SIGNATURE](**{features.CLASSIFY_INPUT: tf.constant(records)})
    assert [[c.decode() for c in row] for row in classified[features.CLASSES_OUTPUT].numpy()] == [list(NAMES)] * 8
    by_pixels = loaded.signatures[features.IMAGES_SIGNATURE](**{features.IMAGES_INPUT: tf.constant(pixels)})
    digits = by_pixels[features.DIGIT_OUTPUT].numpy()
    assert [n.decode() for n in by_pixels[features.CLASS_NAME_OUTPUT].numpy()] == [NAMES[d] for d in digits]
    by_bytes = loaded.signatures[features.IMAGE_BYTES_SIGNATURE](
        **{
            features.IMAGE_BYTES_INPUT: tf.constant(
                [support.png_bytes(p) for p in pixels] + [support.png_bytes(0 * pixels[0])]
            )
        }
    )
    names = [n.decode() for n in by_bytes[features.CLASS_NAME_OUTPUT].numpy()]
    assert names[-1] == "" and all(n in NAMES for n in names[:-1])  # A blank picture has no class.


def test_the_report_names_the_classes(named_run):
    output, run = named_run
    assert run.evaluation_uri
    folder = os.path.join(run_report.reports_root(output, NAME), run_report.LATEST)
    with open(os.path.join(folder, "classification_report.csv")) as f:
        rows = list(csv.reader(f))
    assert [row[0] for row in rows[1:11]] == list(NAMES)
    with open(os.path.join(folder, "confusion_matrix.csv")) as f:
        assert next(csv.reader(f))[1:] == list(NAMES)
    page = pathlib.Path(folder, "index.html").read_text()
    assert all(f"<th>{name}</th>" in page for name in NAMES)


def test_predict_and_the_page_use_the_names(named_run, tmp_path, capsys):
    output, run = named_run
    server = ModelServer(
        ServerOptions(models=single_model(NAME, configs.serving_model_dir(output, NAME)), rest_api_port=0, port=None)
    ).start()
    try:
        _, pixels, _ = support.pipeline_test_digits(output, 1, NAME)
        path = tmp_path / "digit.png"
        path.write_bytes(support.png_bytes(pixels[0]))
        assert main.main(["predict", str(path), "--server", server.rest_url, "--model-name", NAME]) == 0
        printed = capsys.readouterr().out.strip()
        assert printed.split(": ", 1)[1].split(" (")[0] in NAMES, printed
        with urllib.request.urlopen(server.rest_url + "/", timeout=30) as response:
            page = response.read().decode()
        assert f'const MODEL = "{NAME}";' in page and '"seven"' in page
    finally:
        server.stop()


def test_the_unlabeled_digits_are_scored_into_submission_csv(named_run):
    """The labels are the pushed model's own answers for those digits, in order, as digits (Kaggle's
    format), whatever the classes are called."""
    output, run = named_run
    assert run.submission, run
    with open(run.submission) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ImageId", "Label"] and [int(r[0]) for r in rows[1:]] == list(range(1, UNLABELED + 1))
    signature = tf.saved_model.load(run.pushed_to).signatures[features.IMAGES_SIGNATURE]
    unlabeled = support.mnist_digits("t10k", UNLABELED)[0].astype("float32")
    expected = signature(**{features.IMAGES_INPUT: tf.constant(unlabeled)})[features.DIGIT_OUTPUT]
    assert [int(r[1]) for r in rows[1:]] == expected.numpy().tolist()
