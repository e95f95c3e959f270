"""What `digits monitor` leaves: for each look at served traffic, a folder under the pipeline's reports
with TFDV's anomalies and statistics, a page (served against training distributions, the predicted-class
mix, confidence over time, the pictures served), Prometheus gauges, and the verdict as JSON.

    <output>/reports/<name>/monitor/<time>/   anomalies.pbtxt, window.stats.pb, training.stats.pb,
                                              index.html and its figures, metrics.prom, verdict.json
    <output>/reports/<name>/monitor/latest    the newest of them

The training reference is the newest run's training digits with the served model's answers for them,
kept in the monitor folder per (examples, model version) so that it is computed once.
"""

import datetime
import hashlib
import html
import json
import os
import time
from typing import Dict, List, Optional

import numpy as np
import tensorflow_data_validation as tfdv
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from components.baseline import served_version
from components.examples import first_digits, split_files
from models import features
from monitoring.monitor import Watch, reference_features
from monitoring.pictures import CONFIDENCE, DESCRIPTIONS, PREDICTED_CLASS
from pipeline import configs
from reports import figures, run_report

MONITOR = "monitor"
PICTURES_SHOWN = 40
METRIC_PREFIX = "digits_traffic"


def monitor_root(output_root: str, name: str) -> str:
    return os.path.join(run_report.reports_root(output_root, name), MONITOR)


def training_reference(output_root: str, name: str, sample: int) -> Dict[str, np.ndarray]:
    """The features of the newest run's first `sample` training digits, with the newest pushed
    version's answers for them (cached beside the monitor's reports)."""
    examples_uri = run_report.newest_run(output_root, name).examples_uri
    if not examples_uri:
        raise run_report.ReportError(f"the newest run of {name!r} has no examples")
    base = configs.serving_model_dir(output_root, name)
    version = served_version(base)
    if version is None:
        raise run_report.ReportError(f"no pushed model under {base}: run the pipeline until a model is pushed")
    model_dir = os.path.join(base, str(version))
    key = hashlib.sha256(f"{examples_uri}|{model_dir}|{sample}".encode()).hexdigest()[:16]
    cache = os.path.join(monitor_root(output_root, name), f"training-{key}.npz")
    if os.path.exists(cache):
        with np.load(cache) as saved:
            return {k: saved[k] for k in saved.files}
    pixels = first_digits(split_files(examples_uri, features.TRAIN_SPLIT), sample).pixels
    values = reference_features(pixels, model_dir)
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    partial = f"{cache}.{os.getpid()}.partial.npz"
    np.savez(partial, **values)
    os.replace(partial, cache)
    return values


def _verdict(watch: Watch, model_name: str) -> dict:
    window = watch.window
    return {
        "model_name": model_name,
        "requests": len(window),
        "blank_requests": window.blank,
        "versions": sorted({int(v) for v in window.versions}),
        "from": _when(float(window.times.min())) if len(window) else None,
        "judged": watch.comparison is not None,
        "drifted": watch.comparison.drifted if watch.comparison else [],
        "measurements": [
            {"feature": m.feature, "kind": m.kind, "method": m.method, "value": m.value, "threshold": m.threshold}
            for m in (watch.comparison.measurements if watch.comparison else [])
        ],
        "labelled_corrections_waiting": watch.new_digits,
        "retrain": watch.retrain,
        "reasons": watch.reasons,
    }


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def write_metrics(watch: Watch, model_name: str, path: str) -> None:
    """Prometheus gauges, in the text format node_exporter's textfile collector reads (written whole)."""
    registry = CollectorRegistry()
    labels = ["model_name", "feature"]
    mean = Gauge(
        f"{METRIC_PREFIX}_feature_mean",
        "Mean of a feature over the newest window of served requests.",
        labels,
        registry=registry,
    )
    for feature, values in watch.window_features.items():
        if len(values):
            mean.labels(model_name, feature).set(float(np.mean(values)))
    for kind in ("skew", "drift"):
        gauge = Gauge(
            f"{METRIC_PREFIX}_{kind}",
            f"The {kind} comparator's value for a feature (Jensen-Shannon divergence or L-infinity distance).",
            labels,
            registry=registry,
        )
        for m in watch.comparison.measurements if watch.comparison else []:
            if m.kind == kind:
                gauge.labels(model_name, m.feature).set(m.value)
    Gauge(
        f"{METRIC_PREFIX}_window_requests", "Requests in the window judged.", ["model_name"], registry=registry
    ).labels(model_name).set(len(watch.window))
    Gauge(
        f"{METRIC_PREFIX}_retrain", "1 when the monitor says to train again.", ["model_name"], registry=registry
    ).labels(model_name).set(int(watch.retrain))
    write_to_textfile(path, registry)


def _measurement_rows(watch: Watch) -> str:
    if watch.comparison is None:
        return "<tr><td colspan=5>too few requests to judge</td></tr>"
    return "".join(
        f"<tr{' class=over' if m.over else ''}><td>{m.feature}</td><td>{m.kind}</td><td>{m.method}</td>"
        f"<td>{m.value:.4f}</td><td>{m.threshold:g}</td></tr>"
        for m in watch.comparison.measurements
    )


def _html(watch: Watch, model_name: str, verdict: dict) -> str:
    e = html.escape
    cards = [
        ("requests judged", f"{len(watch.window):,}"),
        ("versions", ", ".join(map(str, verdict["versions"])) or "none"),
        ("features moved", str(len(verdict["drifted"]))),
        ("corrections waiting", f"{watch.new_digits:,}"),
        ("train again", "yes" if watch.retrain else "no"),
    ]
    reasons = "".join(f"<li>{e(r)}</li>" for r in watch.reasons) or "<li>nothing moved; no need to train again</li>"
    described = "".join(
        f"<tr><td>{e(k)}</td><td style='text-align:left'>{e(v)}</td></tr>" for k, v in DESCRIPTIONS.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(model_name)}: served traffic</title>
{run_report.PAGE_STYLE}</head><body>
<h1>Served traffic of <code>{e(model_name)}</code></h1>
<div class="cards">{run_report.cards_html(cards)}</div>
<p class="note">The newest {len(watch.window):,} logged requests with a digit (from {e(str(verdict["from"]))};
{watch.window.blank:,} blank pictures not counted) against {len(watch.training_features[CONFIDENCE]):,} training
digits and the window before; written {_when(time.time())}.</p>
<ul>{reasons}</ul>
<h2>Comparators</h2>
<table><tr><th>feature</th><th>against</th><th>measure</th><th>value</th><th>threshold</th></tr>
{_measurement_rows(watch)}</table>
<p class="note">skew: against the training digits; drift: against the window before. Thresholds are the
curated traffic schema's; TFDV's anomalies are in <a href="anomalies.pbtxt">anomalies.pbtxt</a>, its
statistics in <a href="window.stats.pb">window.stats.pb</a> and <a href="training.stats.pb">training.stats.pb</a>
(<code>tfdv.load_stats_binary</code>).</p>
<h2>Served against training</h2><img src="features.png" alt="feature distributions">
<h2>Predicted classes</h2><img src="predicted_classes.png" alt="predicted class mix">
<h2>Confidence over time</h2><img src="confidence.png" alt="confidence over time">
<h2>Pictures served</h2><img src="pictures.png" alt="served pictures">
<p class="note">The newest {PICTURES_SHOWN} of the window, as the model read them, with its answer and confidence.</p>
<h2>Features</h2><table>{described}</table>
</body></html>
"""


def _write_contents(watch: Watch, model_name: str, folder: str) -> None:
    verdict = _verdict(watch, model_name)
    if watch.comparison is not None:
        tfdv.write_anomalies_text(watch.comparison.anomalies, os.path.join(folder, "anomalies.pbtxt"))
    for name, stats in (("window", watch.window_statistics), ("training", watch.training_statistics)):
        if stats is not None:
            with open(os.path.join(folder, f"{name}.stats.pb"), "wb") as f:
                f.write(stats.SerializeToString())
    served, training = watch.window_features, watch.training_features
    if len(watch.window):
        figures.feature_histograms(served, training, DESCRIPTIONS, os.path.join(folder, "features.png"))
        counts = {
            "training digits (the model's answers)": np.bincount(
                training[PREDICTED_CLASS], minlength=features.NUM_CLASSES
            ),
            "served": np.bincount(served[PREDICTED_CLASS], minlength=features.NUM_CLASSES),
        }
        figures.label_distribution(counts, os.path.join(folder, "predicted_classes.png"))
        figures.confidence_over_time(watch.window.times, served[CONFIDENCE], os.path.join(folder, "confidence.png"))
        shown = watch.window.last(PICTURES_SHOWN)
        titles = [f"{p.argmax()} {p.max():.0%}" for p in shown.probabilities]
        figures.digit_grid(shown.pixels, titles, os.path.join(folder, "pictures.png"))
    write_metrics(watch, model_name, os.path.join(folder, "metrics.prom"))
    with open(os.path.join(folder, "verdict.json"), "w", encoding="utf-8") as f:
        json.dump(verdict, f, indent=2)
    with open(os.path.join(folder, "index.html"), "w", encoding="utf-8") as f:
        f.write(_html(watch, model_name, verdict))


def write(watch: Watch, output_root: str, model_name: str, prometheus_file: Optional[str] = None) -> str:
    """Writes one look's folder (whole or not at all) and points `latest` at it; its index.html. The
    gauges are also written to `prometheus_file` if given (for node_exporter's textfile collector)."""
    final = os.path.join(monitor_root(output_root, model_name), time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime()))
    run_report.publish(final, lambda staging: _write_contents(watch, model_name, staging))
    if prometheus_file:
        write_metrics(watch, model_name, prometheus_file)
    return os.path.join(final, "index.html")


def summary_lines(watch: Watch) -> List[str]:
    """What `digits monitor` prints."""
    versions = ", ".join(str(v) for v in sorted(set(watch.window.versions.tolist()))) or "none"
    lines = [f"requests judged    {len(watch.window):,} (versions {versions})"]
    if watch.comparison is None:
        lines.append("comparators        not run: too few requests")
    else:
        moved = watch.comparison.drifted
        lines.append(f"features moved     {', '.join(moved) if moved else 'none'}")
    lines.append(f"corrections        {watch.new_digits:,} labelled digits waiting")
    lines.append(f"train again        {'yes: ' + '; '.join(watch.reasons) if watch.retrain else 'no'}")
    return lines
