"""The report's pictures (PNG, matplotlib without a display), kept small enough to commit."""

import time
from typing import Dict, List, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from models import features

DPI = 80
CLASSES = list(range(features.NUM_CLASSES))
DIGIT_NAMES = tuple(features.CLASS_LABELS)


def _save(fig: plt.Figure, path: str) -> str:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _digit_axes(ax: plt.Axes, pixels: np.ndarray, title: str = "", color: str = "black") -> None:
    ax.imshow(pixels.reshape(features.IMAGE_SIZE, features.IMAGE_SIZE), cmap="gray_r", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8, color=color)


def training_curves(epochs: Sequence[Dict[str, float]], path: str) -> str:
    """Loss and accuracy per epoch, train vs validation, from the Trainer's metrics.csv rows.

    Both on log scales (accuracy as its error rate, 1 - accuracy): near 99% accuracy the differences
    that matter are a fraction of a percent, and an early epoch's high loss would flatten the rest."""
    x = [int(row["epoch"]) + 1 for row in epochs]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    panels = (("loss", "loss", lambda v: v), ("accuracy", "error rate (1 - accuracy)", lambda v: 1.0 - v))
    for ax, (metric, title, shown) in zip(axes, panels):
        ax.plot(x, [shown(row[metric]) for row in epochs], "o-", label="train (augmented)")
        ax.plot(x, [shown(row[f"val_{metric}"]) for row in epochs], "o-", label="validation (eval split)")
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return _save(fig, path)


def confusion_matrices(
    counts: np.ndarray, normalised: np.ndarray, path: str, names: Sequence[str] = DIGIT_NAMES
) -> str:
    """Counts and row-normalised fractions side by side; rows are the true classes."""
    long_names = max(map(len, names)) > 2
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5) if long_names else (11, 4.8))
    if long_names:  # Room for the right panel's class names beside the left one.
        fig.subplots_adjust(wspace=0.45)
    for ax, values, title, fmt in (
        (axes[0], counts, "counts", "{:d}"),
        (axes[1], normalised, "row-normalised (recall on the diagonal)", "{:.3f}"),
    ):
        shown = np.log1p(counts) if values is counts else values
        ax.imshow(shown, cmap="Blues")
        high = shown.max() * 0.6
        for t in CLASSES:
            for p in CLASSES:
                if counts[t, p]:
                    text = fmt.format(values[t, p].item())
                    ax.text(
                        p,
                        t,
                        text,
                        ha="center",
                        va="center",
                        fontsize=6.5,
                        color="white" if shown[t, p] > high else "black",
                    )
        ax.set_xticks(CLASSES, names, rotation=90 if long_names else 0)
        ax.set_yticks(CLASSES, names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def mistakes_grid(
    pixels: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    indices: np.ndarray,
    path: str,
    names: Sequence[str] = DIGIT_NAMES,
    columns: int = 10,
) -> str:
    """Misclassified pictures, in the order given (most confident first): true, predicted, confidence."""
    rows = max(1, -(-len(indices) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.35), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, indices):
        predicted = int(probabilities[i].argmax())
        ax.axis("on")
        title = f"{names[labels[i]]}→{names[predicted]} {probabilities[i, predicted]:.0%}"
        _digit_axes(ax, pixels[i], title, "firebrick")
    fig.suptitle("true → predicted (confidence)", fontsize=9)
    return _save(fig, path)


def feature_maps(pixels: np.ndarray, blocks: List[Tuple[str, np.ndarray]], path: str, channels: int = 8) -> str:
    """For each sample digit, the input and the first `channels` maps of each conv block."""
    rows = len(pixels) * len(blocks)
    fig, axes = plt.subplots(rows, channels + 1, figsize=((channels + 1) * 0.95, rows * 1.05), squeeze=False)
    for sample in range(len(pixels)):
        for b, (name, maps) in enumerate(blocks):
            row = axes[sample * len(blocks) + b]
            if b == 0:
                _digit_axes(row[0], pixels[sample], "input")
            else:
                row[0].axis("off")
            for c in range(channels):
                row[c + 1].imshow(maps[sample, :, :, c], cmap="viridis")
                row[c + 1].set_xticks([])
                row[c + 1].set_yticks([])
            row[1].set_title(name, fontsize=7, loc="left")
    return _save(fig, path)


def samples_per_class(
    pixels: np.ndarray, labels: np.ndarray, path: str, names: Sequence[str] = DIGIT_NAMES, per_class: int = 10
) -> str:
    """The first `per_class` training pictures of each class, one row per class."""
    fig, axes = plt.subplots(
        features.NUM_CLASSES, per_class, figsize=(per_class * 0.7, features.NUM_CLASSES * 0.7), squeeze=False
    )
    for label in CLASSES:
        chosen = np.flatnonzero(labels == label)[:per_class]
        for k, ax in enumerate(axes[label]):
            if k < len(chosen):
                _digit_axes(ax, pixels[chosen[k]])
            else:
                ax.axis("off")
        axes[label][0].set_ylabel(names[label], rotation=0, ha="right", va="center")
    return _save(fig, path)


def label_distribution(counts: Dict[str, np.ndarray], path: str, names: Sequence[str] = DIGIT_NAMES) -> str:
    """Examples per class in each split, as a share of the split so that splits of any size compare."""
    fig, ax = plt.subplots(figsize=(8, 3))
    width = 0.8 / max(1, len(counts))
    for k, (split, per_class) in enumerate(counts.items()):
        share = per_class / max(1, per_class.sum())
        ax.bar(
            np.array(CLASSES) + (k - (len(counts) - 1) / 2) * width,
            share,
            width,
            label=f"{split} ({per_class.sum():,})",
        )
    ax.set_xticks(CLASSES, names)
    ax.set_xlabel("class")
    ax.set_ylabel("share of split")
    ax.legend(fontsize=8, ncol=len(counts), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def feature_histograms(
    served: Dict[str, np.ndarray], training: Dict[str, np.ndarray], titles: Dict[str, str], path: str
) -> str:
    """Each feature's distribution in a window of served requests over the training data's, as shares
    on shared bins, so that a shift shows as two shapes apart."""
    names = [name for name in titles if name in served and name in training]
    columns = 3
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(11, rows * 2.4), squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        both = np.concatenate([served[name], training[name]]).astype(np.float64)
        bins = np.histogram_bin_edges(both, bins=min(30, max(len(np.unique(both)), 2)))
        for values, label in (
            (training[name], f"training ({len(training[name]):,})"),
            (served[name], f"served ({len(served[name]):,})"),
        ):
            weights = np.full(len(values), 1.0 / max(len(values), 1))
            ax.hist(values, bins=bins, weights=weights, histtype="step", linewidth=1.5, label=label)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def confidence_over_time(times: np.ndarray, confidence: np.ndarray, path: str) -> str:
    """The model's confidence in its answers, per log file (the requests begun together): the median
    and the share of answers below 90%, which rises when the model meets pictures unlike its training."""
    starts = np.unique(times)
    labels = [time.strftime("%m-%d %H:%M", time.gmtime(t)) for t in starts]
    median = [float(np.median(confidence[times == t])) for t in starts]
    unsure = [float(np.mean(confidence[times == t] < 0.9)) for t in starts]
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(labels, median, "o-", label="median confidence")
    ax.plot(labels, unsure, "s--", label="share below 90%")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("requests logged from (UTC)")
    ax.tick_params(axis="x", labelsize=7, rotation=30)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def digit_grid(pixels: np.ndarray, titles: Sequence[str], path: str, columns: int = 10) -> str:
    """Pictures with a caption each, in rows of `columns`."""
    rows = max(1, -(-len(pixels) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.35), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, picture, title in zip(axes.flat, pixels, titles):
        ax.axis("on")
        _digit_axes(ax, picture, title)
    return _save(fig, path)
