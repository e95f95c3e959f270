"""The report's numbers against scikit-learn's, on random predictions, and its figures on tiny inputs."""

import numpy as np
import pytest
from sklearn import metrics

from reports import analysis, figures


@pytest.fixture(scope="module")
def predictions():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 10, size=500)
    probabilities = rng.dirichlet(np.ones(10) * 0.3, size=500)
    # Mostly right, as a trained model would be; digit 9 is never predicted (a zero denominator).
    probabilities[np.arange(400), labels[:400]] += 2.0
    probabilities[:, 9] = 0.0
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return labels, probabilities


def test_confusion_matrix_and_scores_match_scikit_learn(predictions):
    labels, probabilities = predictions
    predicted = probabilities.argmax(axis=1)
    matrix = analysis.confusion_matrix(labels, predicted)
    np.testing.assert_array_equal(matrix, metrics.confusion_matrix(labels, predicted, labels=range(10)))
    rows = analysis.classification_report(matrix)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        labels, predicted, labels=range(10), zero_division=0
    )
    np.testing.assert_allclose([r.precision for r in rows[:10]], precision)
    np.testing.assert_allclose([r.recall for r in rows[:10]], recall)
    np.testing.assert_allclose([r.f1 for r in rows[:10]], f1)
    assert [r.support for r in rows[:10]] == support.tolist()
    assert rows[-1].name == "accuracy" and rows[-1].f1 == pytest.approx(metrics.accuracy_score(labels, predicted))
    assert rows[-2].f1 == pytest.approx(metrics.f1_score(labels, predicted, average="macro", zero_division=0))
    assert "macro avg" in analysis.report_text(rows)


def test_row_normalised_rows_sum_to_one_and_empty_rows_stay_zero():
    matrix = analysis.confusion_matrix([0, 0, 1], [0, 1, 1])
    normalised = analysis.row_normalised(matrix)
    np.testing.assert_allclose(normalised[:2].sum(axis=1), 1.0)
    assert normalised[0, 1] == 0.5 and not normalised[2:].any()


def test_confusion_pairs_are_the_largest_off_diagonal_counts():
    labels = [4] * 5 + [9] * 3 + [7] * 2 + [1]
    predicted = [9] * 5 + [4] * 3 + [1] * 2 + [1]
    pairs = analysis.confusion_pairs(analysis.confusion_matrix(labels, predicted), top=10)
    assert pairs == [(4, 9, 5), (9, 4, 3), (7, 1, 2)]


def test_worst_mistakes_are_misclassified_and_most_confident_first(predictions):
    labels, probabilities = predictions
    worst = analysis.worst_mistakes(labels, probabilities, top=15)
    predicted = probabilities.argmax(axis=1)
    assert len(worst) == 15 and (predicted[worst] != labels[worst]).all()
    confidence = probabilities[worst, predicted[worst]]
    assert (np.diff(confidence) <= 0).all()
    wrong = predicted != labels
    assert confidence[0] == probabilities[wrong].max(axis=1).max()


def test_figures_are_png_files(tmp_path, predictions):
    labels, probabilities = predictions
    pixels = np.random.default_rng(0).integers(0, 256, (500, 28, 28)).astype(np.uint8)
    matrix = analysis.confusion_matrix(labels, probabilities.argmax(axis=1))
    epochs = [
        {"epoch": e, "loss": 1.0 / (e + 1), "val_loss": 1.2 / (e + 1), "accuracy": 0.9, "val_accuracy": 0.8}
        for e in range(3)
    ]
    paths = [
        figures.training_curves(epochs, str(tmp_path / "curves.png")),
        figures.confusion_matrices(matrix, analysis.row_normalised(matrix), str(tmp_path / "cm.png")),
        figures.mistakes_grid(
            pixels,
            labels,
            probabilities,
            analysis.worst_mistakes(labels, probabilities, 12),
            str(tmp_path / "mistakes.png"),
        ),
        figures.feature_maps(pixels[:2], [("block 1", np.random.rand(2, 28, 28, 8))], str(tmp_path / "maps.png")),
        figures.samples_per_class(pixels, labels, str(tmp_path / "samples.png")),
        figures.label_distribution({"train": np.bincount(labels, minlength=10)}, str(tmp_path / "labels.png")),
    ]
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", path
