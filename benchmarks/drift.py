"""What the traffic monitor finds, and from how few requests: windows of clean MNIST test digits and of
synthetically shifted ones (`monitoring.shifts`), with the pushed model's answers, compared with the
training digits by TFDV's comparators under the curated traffic schema, as `digits monitor` compares them.

    .venv/bin/python -m benchmarks.drift [--output output] [--windows 100] [--note TEXT]

False alarms: the share of windows of clean test digits (drawn at random) in which any feature is over
its threshold, per window size. Detection, per shift: the smallest window of shifted digits found in at
least 95% of the windows drawn where at most 5% of clean windows of that size raise an alarm, and the
smallest share of shifted digits among clean ones found in 95% of windows of the monitor's default size.
Recorded under the topic "monitoring".
"""

import argparse
import sys
from typing import Dict, List, Optional

import numpy as np

from benchmarks import report, runs
from models import features
from models.batches import in_batches
from monitoring import drift, pictures, shifts
from monitoring.config import TRAFFIC_SCHEMA_PATH, MonitorSettings
from pipeline import mnist

WINDOW_SIZES = (10, 20, 50, 100, 200, 500)
SHARES = (0.02, 0.05, 0.1, 0.2, 0.5)
DETECTED = 0.95
"""A shift counts as found at a size when at least this share of its windows raise an anomaly..."""
FALSE_ALARMS = 0.05
"""... and at most this share of clean windows of that size do."""
TRAINING_DIGITS = 2000
CLEAN_DIGITS = 5000
SHIFTED_DIGITS = 2000


def _answers(model_dir: str, pixels: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    signature = tf.saved_model.load(model_dir).signatures[features.IMAGES_SIGNATURE]
    return in_batches(lambda chunk: signature(**{features.IMAGES_INPUT: chunk})[features.PROBABILITIES_OUTPUT], pixels)


def _alarm_rate(
    pools: List[Dict[str, np.ndarray]], shares: List[float], size: int, windows: int, schema, training, seed: int
) -> float:
    """The share of `windows` windows of `size` requests, drawn from `pools` in `shares`, with an anomaly."""
    rng = np.random.default_rng(seed)
    alarms = 0
    for _ in range(windows):
        counts = rng.multinomial(size, shares)
        parts = [
            {k: v[rng.choice(len(v), n, replace=False)] for k, v in pool.items()} for pool, n in zip(pools, counts) if n
        ]
        window = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        alarms += bool(drift.compare(drift.statistics(window, schema), training, schema).drifted)
    return alarms / windows


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    runs.add_output_flag(parser)
    parser.add_argument("--windows", type=int, default=100, help="windows drawn per size and shift")
    parser.add_argument("--note", default="", help="what the records should say of this run")
    args = parser.parse_args(argv)
    schema = drift.read_schema(TRAFFIC_SCHEMA_PATH)
    model = runs.pushed_model(args.output)
    train_pixels, _ = mnist.load(mnist.TRAIN, TRAINING_DIGITS)
    training = drift.statistics(pictures.picture_features(train_pixels, _answers(model, train_pixels)), schema)
    test_pixels, _ = mnist.load(mnist.TEST, CLEAN_DIGITS + SHIFTED_DIGITS)
    clean_pixels = test_pixels[:CLEAN_DIGITS]
    clean = pictures.picture_features(clean_pixels, _answers(model, clean_pixels))
    window = MonitorSettings().window
    false_alarms = {
        f"window_{size}": _alarm_rate([clean], [1.0], size, args.windows, schema, training, seed=size)
        for size in WINDOW_SIZES
    }
    print(f"false alarms on clean test digits, by window: {false_alarms}", file=sys.stderr, flush=True)
    measurements: Dict[str, Dict] = {"false alarms on clean test digits": false_alarms}
    details: Dict[str, Dict] = {}
    for name, shift in shifts.SHIFTS.items():
        moved = shift(test_pixels[CLEAN_DIGITS:], np.random.default_rng(0))
        shifted = pictures.picture_features(moved, _answers(model, moved))
        by_size = {
            size: _alarm_rate([shifted], [1.0], size, args.windows, schema, training, seed=size)
            for size in WINDOW_SIZES
        }
        by_share = {
            share: _alarm_rate([clean, shifted], [1 - share, share], window, args.windows, schema, training, seed=7)
            for share in SHARES
        }
        print(f"{name}: found by window {by_size}, by share {by_share}", file=sys.stderr, flush=True)
        found = [
            size
            for size, rate in by_size.items()
            if rate >= DETECTED and false_alarms[f"window_{size}"] <= FALSE_ALARMS
        ]
        found_share = [share for share, rate in by_share.items() if rate >= DETECTED]
        measurements[f"detection: {name}"] = {
            "smallest_window": found[0] if found else None,
            f"smallest_share_of_{window}": found_share[0] if found_share else None,
        }
        details[name] = {
            "detection_rate_by_window": by_size,
            f"detection_rate_by_share_of_{window}": by_share,
            "features_moved_at_window_50": sorted(
                set(
                    drift.compare(
                        drift.statistics({k: v[:50] for k, v in shifted.items()}, schema), training, schema
                    ).drifted
                )
            ),
        }
    return report.recorded("monitoring", measurements, "benchmarks.drift", argv, {"details": details}, args.note)


if __name__ == "__main__":
    main()
