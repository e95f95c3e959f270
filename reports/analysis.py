"""The numbers behind a run report: confusion matrix, per-class precision/recall/F1, the mistakes."""

import dataclasses
from typing import List, Sequence, Tuple

import numpy as np

from models import features


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Counts [true digit, predicted digit]."""
    matrix = np.zeros((features.NUM_CLASSES, features.NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each true digit's row as fractions (a digit absent from the data keeps a row of zeros)."""
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)


@dataclasses.dataclass(frozen=True)
class ClassScores:
    name: str
    """The class's name (a digit, or a dataset's own name), or `macro avg` / `accuracy`."""
    precision: float
    recall: float
    f1: float
    support: int


def classification_report(matrix: np.ndarray, names: Sequence[str] = tuple(features.CLASS_LABELS)) -> List[ClassScores]:
    """Precision, recall, F1 and support per class, then their macro average and accuracy (as
    scikit-learn's classification_report; 0 where a ratio has no denominator)."""
    correct = np.diag(matrix).astype(float)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(correct, predicted, out=np.zeros_like(correct), where=predicted > 0)
    recall = np.divide(correct, support, out=np.zeros_like(correct), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(correct), where=both > 0)
    rows = [ClassScores(names[d], precision[d], recall[d], f1[d], int(support[d])) for d in range(len(matrix))]
    total = int(support.sum())
    rows.append(ClassScores("macro avg", precision.mean(), recall.mean(), f1.mean(), total))
    accuracy = correct.sum() / total if total else 0.0
    rows.append(ClassScores("accuracy", accuracy, accuracy, accuracy, total))
    return rows


def report_text(rows: List[ClassScores]) -> str:
    width = max(10, *(len(r.name) for r in rows))
    lines = [f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>8}"]
    lines += [f"{r.name:>{width}} {r.precision:9.4f} {r.recall:9.4f} {r.f1:9.4f} {r.support:8d}" for r in rows]
    return "\n".join(lines) + "\n"


def confusion_pairs(matrix: np.ndarray, top: int) -> List[Tuple[int, int, int]]:
    """The most frequent (true, predicted, count) mistakes, largest first."""
    off_diagonal = matrix * (1 - np.eye(len(matrix), dtype=matrix.dtype))
    order = np.argsort(-off_diagonal, axis=None, kind="stable")[:top]
    pairs = [(int(t), int(p), int(off_diagonal[t, p])) for t, p in zip(*np.unravel_index(order, matrix.shape))]
    return [pair for pair in pairs if pair[2] > 0]


def worst_mistakes(labels: np.ndarray, probabilities: np.ndarray, top: int) -> np.ndarray:
    """Indices of misclassified examples, the most confident mistakes first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:top]
