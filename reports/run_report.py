"""A run's report: curves, confusion matrix, error analysis, feature maps and data overview in one
offline `index.html`, built from the artifacts that run recorded in ML Metadata.

Written to a temporary folder and moved into place, so a report is either complete or absent.
"""

import csv
import dataclasses
import datetime
import html
import json
import os
import shutil
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging

from components.examples import split_files
from models import features, robustness
from models.batches import in_batches
from models.config import exported_class_names
from models.network import trained_model
from models.training import METRICS_CSV
from pipeline import configs, summary
from reports import analysis, figures

MISTAKES_SHOWN = 40
CONFUSION_PAIRS_SHOWN = 10
FEATURE_MAP_SAMPLES = 3
SAMPLES_READ_PER_SPLIT = 2000
"""Training digits decoded for the sample grid (labels are counted over the whole split)."""
LATEST = "latest"
"""`<output>/reports/<name>/latest`: a link to the newest report of a pipeline."""


PAGE_STYLE = """<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .6em 1em; min-width: 9em; }
.card b { display: block; font-size: 1.5em; }
table { border-collapse: collapse; margin: .5em 0; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: right; }
img { max-width: 100%; } code { font-size: .85em; } .note { color: #666; font-size: .9em; }
.over { color: firebrick; font-weight: bold; }
</style>"""
"""The reports' pages share one look."""


def cards_html(cards: Sequence[Tuple[str, str]]) -> str:
    """Headline figures as a row of cards."""
    return "".join(f'<div class="card">{html.escape(k)}<b>{html.escape(v)}</b></div>' for k, v in cards)


class ReportError(RuntimeError):
    """The run lacks what a report is made of (for example, it stopped before the Evaluator)."""


@dataclasses.dataclass
class Digits:
    pixels: np.ndarray
    """uint8 [n, 28, 28]: only the first `limit` read, see `read_split`."""
    labels: np.ndarray
    """int64 [total]: every example of the split."""


def reports_root(output_root: str, name: str = configs.PIPELINE_NAME) -> str:
    return os.path.join(output_root, "reports", name)


def read_split(examples_uri: str, split: str, pixels_limit: Optional[int] = None) -> Digits:
    """Labels of every example in an ExampleGen split, and the pixels of the first `pixels_limit`."""
    files = split_files(examples_uri, split)
    if not files:
        raise ReportError(f"no examples for split '{split}' at {os.path.join(examples_uri, f'Split-{split}', '*')}")
    spec = {
        features.IMAGE_KEY: tf.io.FixedLenFeature([features.NUM_PIXELS], tf.int64),
        features.LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64),
    }
    labels: List[np.ndarray] = []
    pixels: List[np.ndarray] = []
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(4096):
        parsed = tf.io.parse_example(batch, spec)
        labels.append(parsed[features.LABEL_KEY].numpy()[:, 0])
        if pixels_limit is None or sum(p.shape[0] for p in pixels) < pixels_limit:
            pixels.append(parsed[features.IMAGE_KEY].numpy().astype(np.uint8))
    images = np.concatenate(pixels)[:pixels_limit] if pixels else np.zeros((0, features.NUM_PIXELS), np.uint8)
    return Digits(images.reshape(-1, features.IMAGE_SIZE, features.IMAGE_SIZE), np.concatenate(labels))


def serving_model(model_uri: str) -> str:
    """The SavedModel inside a Trainer's Model artifact."""
    return os.path.join(model_uri, "Format-Serving")


def class_names(model_uri: str) -> Tuple[str, ...]:
    """The names the model answers with (its `assets.extra/labels.txt`; digits for models without)."""
    return exported_class_names(serving_model(model_uri)) or tuple(features.CLASS_LABELS)


def predict(model_uri: str, pixels: np.ndarray) -> np.ndarray:
    """Class probabilities from the exported model's raw-pixel signature: the path clients use."""
    signature = tf.saved_model.load(serving_model(model_uri)).signatures[features.IMAGES_SIGNATURE]
    return in_batches(lambda chunk: signature(**{features.IMAGES_INPUT: chunk})[features.PROBABILITIES_OUTPUT], pixels)


def conv_block_outputs(trainer_logs: str, transform_graph_uri: str, pixels: np.ndarray) -> List[Tuple[str, np.ndarray]]:
    """Activations of the last convolution of each block, for the trained weights (the exported checkpoint)."""
    model = trained_model(trainer_logs)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    # Each block is two convolutions: the second of each pair is what the block passes on.
    chosen = convs[1::2]
    probe = keras.Model(model.inputs, [layer.output for layer in chosen])
    raw = {features.IMAGE_KEY: tf.constant(pixels.reshape(len(pixels), -1), tf.int64)}
    images = tft.TFTransformOutput(transform_graph_uri).transform_raw_features(raw)[
        features.transformed_name(features.IMAGE_KEY)
    ]
    outputs = probe(images, training=False)
    names = [f"block {i + 1}: {c.filters} x {c.kernel_size[0]}x{c.kernel_size[1]}" for i, c in enumerate(chosen)]
    return [(name, out.numpy()) for name, out in zip(names, outputs)]


def _read_metrics_csv(trainer_logs: str) -> List[Dict[str, float]]:
    with open(os.path.join(trainer_logs, METRICS_CSV)) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _write_csv(path: str, header: List[str], rows: List[list]) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows(rows)


def move_into_place(staging: str, final: str) -> None:
    """Swaps the finished report in; an older report of the same run is removed only afterwards."""
    old = None
    if os.path.exists(final):
        old = tempfile.mkdtemp(prefix=".old-", dir=os.path.dirname(final))
        os.replace(final, os.path.join(old, "report"))
    os.replace(staging, final)
    if old:
        shutil.rmtree(old, ignore_errors=True)
    link = os.path.join(os.path.dirname(final), LATEST)
    tmp_link = f"{link}.{os.getpid()}.tmp"
    os.symlink(os.path.basename(final), tmp_link)
    os.replace(tmp_link, link)


def write_report(output_root: str, run: Optional[summary.RunSummary] = None, name: str = configs.PIPELINE_NAME) -> str:
    """Builds the report of `run` (default: the newest evaluated run of pipeline `name` under
    `output_root`); returns the path of its index.html."""
    evaluated = _Evaluated.of(run or newest_run(output_root, name, evaluated=True))
    final = os.path.join(reports_root(output_root, name), evaluated.run_id.replace(":", "-"))
    publish(final, lambda staging: _write_contents(evaluated, staging))
    return os.path.join(final, "index.html")


def newest_run(output_root: str, name: str, evaluated: bool = False) -> summary.RunSummary:
    """The newest run of pipeline `name` under `output_root` (that reached the Evaluator, if asked)."""
    metadata = configs.metadata_path(output_root, name)
    if not os.path.exists(metadata):
        raise ReportError(f"no runs of pipeline {name!r} under {output_root} (no {metadata})")
    return summary.latest_run(metadata, evaluated=evaluated)


def publish(final: str, write_contents: Callable[[str], None]) -> None:
    """Writes a report folder whole or not at all: `write_contents` fills a staging folder beside
    `final`, which then takes its place (see `move_into_place`)."""
    root = os.path.dirname(final)
    os.makedirs(root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=root)
    os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide the report from other users of a shared output.
    try:
        write_contents(staging)
        move_into_place(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@dataclasses.dataclass(frozen=True)
class _Evaluated:
    """A run that reached the Evaluator: every artifact a report is made of is there."""

    run: summary.RunSummary
    run_id: str
    examples_uri: str
    model_uri: str
    evaluation_uri: str
    trainer_logs: str
    transform_graph_uri: str

    @classmethod
    def of(cls, run: summary.RunSummary) -> "_Evaluated":
        names = [f.name for f in dataclasses.fields(cls) if f.name != "run"]
        missing = [name for name in names if not getattr(run, name)]
        if missing:
            raise ReportError(f"run {run.run_id or '(none)'} has no {', '.join(missing)}: did it reach the Evaluator?")
        return cls(run, **{name: getattr(run, name) for name in names})


def _write_contents(run: _Evaluated, folder: str) -> None:
    def out(name: str) -> str:
        return os.path.join(folder, name)

    logging.info("Report: reading the splits of %s", run.examples_uri)
    test = read_split(run.examples_uri, features.TEST_SPLIT)
    train = read_split(run.examples_uri, features.TRAIN_SPLIT, SAMPLES_READ_PER_SPLIT)
    evaluation = read_split(run.examples_uri, features.EVAL_SPLIT, 0)
    logging.info("Report: predicting %d test digits with %s", len(test.labels), run.model_uri)
    probabilities = predict(run.model_uri, test.pixels)
    names = class_names(run.model_uri)
    predicted = probabilities.argmax(axis=1)
    matrix = analysis.confusion_matrix(test.labels, predicted)
    scores = analysis.classification_report(matrix, names)
    pairs = analysis.confusion_pairs(matrix, CONFUSION_PAIRS_SHOWN)
    mistakes = analysis.worst_mistakes(test.labels, probabilities, MISTAKES_SHOWN)

    logging.info("Report: drawing figures")
    epochs = _read_metrics_csv(run.trainer_logs)
    figures.training_curves(epochs, out("training_curves.png"))
    figures.confusion_matrices(matrix, analysis.row_normalised(matrix), out("confusion_matrix.png"), names)
    figures.mistakes_grid(test.pixels, test.labels, probabilities, mistakes, out("mistakes.png"), names)
    samples = np.array([np.flatnonzero(test.labels == d)[0] for d in range(3) if (test.labels == d).any()])
    samples = samples[:FEATURE_MAP_SAMPLES]
    blocks = conv_block_outputs(run.trainer_logs, run.transform_graph_uri, test.pixels[samples])
    figures.feature_maps(test.pixels[samples], blocks, out("feature_maps.png"))
    figures.samples_per_class(train.pixels, train.labels[: len(train.pixels)], out("samples_per_class.png"), names)
    counts = {
        split: np.bincount(digits.labels, minlength=features.NUM_CLASSES)
        for split, digits in (
            (features.TRAIN_SPLIT, train),
            (features.EVAL_SPLIT, evaluation),
            (features.TEST_SPLIT, test),
        )
    }
    figures.label_distribution(counts, out("label_distribution.png"), names)

    _write_csv(
        out("classification_report.csv"),
        ["class", "precision", "recall", "f1", "support"],
        [[s.name, f"{s.precision:.6f}", f"{s.recall:.6f}", f"{s.f1:.6f}", s.support] for s in scores],
    )
    with open(out("classification_report.txt"), "w") as f:
        f.write(analysis.report_text(scores))
    _write_csv(
        out("confusion_matrix.csv"),
        ["true\\predicted", *names],
        [[names[d]] + matrix[d].tolist() for d in range(features.NUM_CLASSES)],
    )
    named_pairs = [(names[t], names[p], n) for t, p, n in pairs]
    _write_csv(out("confusion_pairs.csv"), ["true", "predicted", "count"], [list(p) for p in named_pairs])
    baseline = summary.overall_accuracy(run.evaluation_uri, model_name=tfma.BASELINE_KEY)
    robust = _robustness_rows(run.run.model_card, out("model_card.md"))
    page = _html(
        run, baseline, float(np.mean(predicted == test.labels)), scores, named_pairs, counts, epochs, names, robust
    )
    with open(out("index.html"), "w", encoding="utf-8") as f:
        f.write(page)


def _robustness_rows(card_json: Optional[str], copy_to: str) -> str:
    """The model card's robustness figures as table rows (the card's Markdown copied beside the report)."""
    if not card_json or not tf.io.gfile.exists(card_json):
        return ""
    tf.io.gfile.copy(card_json.removesuffix(".json") + ".md", copy_to, overwrite=True)
    with tf.io.gfile.GFile(card_json) as f:
        figures = json.load(f)["known_weaknesses"]["robustness"]
    clean = figures["clean"]
    return f"<tr><td>clean</td><td>{clean:.2%}</td><td></td></tr>" + "".join(
        f"<tr><td>{html.escape(robustness.DESCRIPTIONS[k])}</td><td>{figures[k]:.2%}</td>"
        f"<td>{100 * (figures[k] - clean):+.2f} points</td></tr>"
        for k in robustness.PERTURBATIONS
    )


def _percent(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _html(
    evaluated: _Evaluated,
    baseline: Optional[float],
    recomputed: float,
    scores: List[analysis.ClassScores],
    pairs: List[Tuple[str, str, int]],
    counts: Dict[str, np.ndarray],
    epochs: List[Dict[str, float]],
    names: Sequence[str],
    robust: str,
) -> str:
    e = html.escape
    run = evaluated.run
    version = (run.pushed_version or "unknown") if run.pushed else "not pushed"
    minutes = "n/a" if run.run_seconds is None else f"{run.run_seconds / 60:.1f} min"
    cards = [
        ("test accuracy (TFMA)", _percent(run.accuracy)),
        ("blessed", "yes" if run.blessed else "no"),
        ("serving canary", "n/a" if run.canary_passed is None else ("passed" if run.canary_passed else "refused")),
        ("model version", version),
        ("run time", minutes),
        ("baseline accuracy", _percent(baseline) if baseline is not None else "none (first model)"),
        ("epochs", str(len(epochs))),
    ]
    score_rows = "".join(
        f"<tr><td>{e(s.name)}</td><td>{s.precision:.4f}</td><td>{s.recall:.4f}</td><td>{s.f1:.4f}</td>"
        f"<td>{s.support:,}</td></tr>"
        for s in scores
    )
    pair_rows = "".join(f"<tr><td>{e(t)}</td><td>{e(p)}</td><td>{n}</td></tr>" for t, p, n in pairs) or (
        "<tr><td colspan=3>no mistakes</td></tr>"
    )
    split_rows = "".join(
        f"<tr><td>{e(split)}</td><td>{c.sum():,}</td>" + "".join(f"<td>{v:,}</td>" for v in c) + "</tr>"
        for split, c in counts.items()
    )
    classes_header = "".join(f"<th>{e(name)}</th>" for name in names)
    created = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>digits run {e(evaluated.run_id)}</title>
{PAGE_STYLE}</head><body>
<h1>Digits pipeline run <code>{e(evaluated.run_id)}</code></h1>
<div class="cards">{cards_html(cards)}</div>
<p class="note">Test split: {int(counts[features.TEST_SPLIT].sum()):,} digits; accuracy recomputed here from the
exported model's <code>{features.IMAGES_SIGNATURE}</code> signature: {_percent(recomputed)}.
Model <code>{e(evaluated.model_uri)}</code>; TFMA output <code>{e(evaluated.evaluation_uri)}</code>; report written
{created}.</p>
<p class="note">Serving canary (the candidate in a model server subprocess, every signature over REST and
gRPC): {e(run.canary or "not run")}.</p>
<h2>Training curves</h2><img src="training_curves.png" alt="training curves">
<p class="note">Per epoch from the Trainer's <code>metrics.csv</code>; training figures are on augmented batches.</p>
<h2>Confusion matrix (test split)</h2><img src="confusion_matrix.png" alt="confusion matrix">
<p class="note"><a href="confusion_matrix.csv">confusion_matrix.csv</a></p>
<h2>Classification report</h2>
<table><tr><th></th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{score_rows}</table>
<p class="note"><a href="classification_report.csv">CSV</a> · <a href="classification_report.txt">text</a></p>
<h2>Error analysis</h2>
<h3>Most frequent confusions</h3>
<table><tr><th>true</th><th>predicted</th><th>count</th></tr>{pair_rows}</table>
<h3>Most confident mistakes</h3><img src="mistakes.png" alt="misclassified digits">
<h2>Robustness</h2>
{
        f'''<table><tr><th>test digits</th><th>accuracy</th><th>against clean</th></tr>{robust}</table>
<p class="note">The first test digits (seeded perturbations, the same for every model), from the
<a href="model_card.md">model card</a> pushed with the model.</p>'''
        if robust
        else "<p class=note>no model card</p>"
    }
<h2>Feature maps</h2><img src="feature_maps.png" alt="feature maps">
<p class="note">The first 8 channels of the last convolution of each block, for a few test digits.</p>
<h2>Data</h2>
<table><tr><th>split</th><th>total</th>{classes_header}</tr>{split_rows}</table>
{f'<p class="note">Corrected digits among the training files: feedback {e(run.feedback)}.</p>' if run.feedback else ""}
<img src="label_distribution.png" alt="label distribution">
<h3>Sample training digits per class</h3><img src="samples_per_class.png" alt="sample digits">
</body></html>
"""
