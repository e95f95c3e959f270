"""One look at served traffic: the newest window of logged requests against the training data and the
window before it, and whether the model should be trained again.

`watch` is what `digits monitor` runs after reading the logs, the training digits and the feedback
dataset; it takes arrays and gives a verdict, so a scheduler or a pipeline component can run it as well.
"""

import dataclasses
from typing import Dict, List, Optional

import numpy as np
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from models import features
from models.batches import in_batches
from monitoring import drift
from monitoring.config import MonitorSettings
from monitoring.pictures import picture_features
from monitoring.traffic import Traffic, read_traffic

DEFAULTS = MonitorSettings()


def read_windows(prefix: str, settings: MonitorSettings = DEFAULTS) -> Traffic:
    """The logged requests a look judges (`watch`): the newest window, and the window before it."""
    return read_traffic(prefix, limit=2 * settings.window)


def reference_features(pixels: np.ndarray, model_dir: str) -> Dict[str, np.ndarray]:
    """The features of training digits, with the answers of the SavedModel in `model_dir` (the served
    version) for them: what served traffic is compared with."""
    import tensorflow as tf

    signature = tf.saved_model.load(model_dir).signatures[features.IMAGES_SIGNATURE]
    probabilities = in_batches(
        lambda chunk: signature(**{features.IMAGES_INPUT: chunk})[features.PROBABILITIES_OUTPUT], pixels
    )
    return picture_features(pixels, probabilities)


@dataclasses.dataclass(frozen=True)
class Watch:
    window: Traffic
    window_features: Dict[str, np.ndarray]
    training_features: Dict[str, np.ndarray]
    window_statistics: Optional[statistics_pb2.DatasetFeatureStatisticsList]
    training_statistics: statistics_pb2.DatasetFeatureStatisticsList
    comparison: Optional[drift.Comparison]
    """None when the window holds fewer requests than `min_requests`."""
    new_digits: int
    """Labelled corrections waiting in the open feedback span."""
    reasons: List[str]
    """Why to train again (none: no need)."""

    @property
    def retrain(self) -> bool:
        return bool(self.reasons)


def watch(
    traffic: Traffic,
    training_features: Dict[str, np.ndarray],
    schema: schema_pb2.Schema,
    settings: MonitorSettings = DEFAULTS,
    new_digits: int = 0,
) -> Watch:
    """Judges the newest `settings.window` requests of `traffic` (which may hold the window before too)."""
    window = traffic.last(settings.window)
    window_features = picture_features(window.pixels, window.probabilities)
    training_statistics = drift.statistics(training_features, schema)
    reasons: List[str] = []
    comparison = window_statistics = None
    if len(window) >= settings.min_requests:
        window_statistics = drift.statistics(window_features, schema)
        before = traffic.slice(max(len(traffic) - 2 * settings.window, 0), len(traffic) - len(window))
        previous = None
        if len(before) >= settings.min_requests:
            previous = drift.statistics(picture_features(before.pixels, before.probabilities), schema)
        comparison = drift.compare(window_statistics, training_statistics, schema, previous)
        over = [m for m in comparison.measurements if m.over]
        if over:
            reasons.append(
                "served pictures moved: "
                + ", ".join(f"{m.feature} {m.kind} {m.value:.3f} > {m.threshold:g}" for m in over)
            )
    if new_digits >= settings.retrain_digits:
        reasons.append(f"{new_digits} labelled corrections are waiting (from {settings.retrain_digits} on)")
    return Watch(
        window,
        window_features,
        training_features,
        window_statistics,
        training_statistics,
        comparison,
        new_digits,
        reasons,
    )
