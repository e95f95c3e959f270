"""Skew and drift of served traffic, judged by TFDV against the curated traffic schema.

A window of requests is summarised as TFDV statistics of its picture features (`monitoring.pictures`);
`compare` runs TFDV's comparators as the schema sets them: the skew comparator against the training
data's statistics, the drift comparator against the window before. What is over a threshold is an
anomaly in TFDV's own `Anomalies` proto, so TFDV's tools (and the Kubeflow and TFX visualisations) read it.
"""

import dataclasses
from typing import Dict, List, Optional

import numpy as np
import pandas as pd
import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

SKEW, DRIFT = "skew", "drift"


def read_schema(path: str) -> schema_pb2.Schema:
    with open(path, encoding="utf-8") as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())


def statistics(values: Dict[str, np.ndarray], schema: schema_pb2.Schema) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of a table of features (the schema tells which integers are categories)."""
    options = tfdv.StatsOptions(schema=schema)
    return tfdv.generate_statistics_from_dataframe(pd.DataFrame(values), stats_options=options)


@dataclasses.dataclass(frozen=True)
class Measurement:
    feature: str
    kind: str
    """SKEW (against training) or DRIFT (against the previous window)."""
    method: str
    """JENSEN_SHANNON_DIVERGENCE or L_INFTY."""
    value: float
    threshold: float

    @property
    def over(self) -> bool:
        return self.value > self.threshold


@dataclasses.dataclass(frozen=True)
class Comparison:
    anomalies: anomalies_pb2.Anomalies
    """TFDV's anomalies of the window: each feature over a skew or drift threshold."""
    measurements: List[Measurement]
    """Every comparator's value, over its threshold or not."""

    @property
    def drifted(self) -> List[str]:
        """The features over a threshold, in schema order."""
        return sorted(
            {m.feature for m in self.measurements if m.over}, key=[m.feature for m in self.measurements].index
        )


def _measurements(anomalies: anomalies_pb2.Anomalies, kind: str) -> List[Measurement]:
    found = []
    for info in anomalies.drift_skew_info:
        feature = ".".join(info.path.step)
        for m in info.skew_measurements if kind == SKEW else info.drift_measurements:
            method = type(m).Type.Name(m.type)
            found.append(Measurement(feature, kind, method, m.value, m.threshold))
    return found


def compare(
    window: statistics_pb2.DatasetFeatureStatisticsList,
    training: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    previous: Optional[statistics_pb2.DatasetFeatureStatisticsList] = None,
) -> Comparison:
    """The window's skew against training and drift against the previous window (if any)."""
    skew = tfdv.validate_statistics(training, schema, serving_statistics=window)
    anomalies = anomalies_pb2.Anomalies()
    anomalies.CopyFrom(skew)
    measurements = _measurements(skew, SKEW)
    if previous is not None:
        drift = tfdv.validate_statistics(window, schema, previous_statistics=previous)
        for name, info in drift.anomaly_info.items():
            if name in anomalies.anomaly_info:
                anomalies.anomaly_info[name].reason.extend(info.reason)
            else:
                anomalies.anomaly_info[name].CopyFrom(info)
        measurements += _measurements(drift, DRIFT)
    return Comparison(anomalies, measurements)
