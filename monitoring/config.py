"""The monitor's settings: how many requests it judges, and when it says to train again."""

import dataclasses
import os

TRAFFIC_SCHEMA_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schema", "traffic.pbtxt"
)
"""The curated schema of served traffic: its features and their skew and drift thresholds."""


@dataclasses.dataclass(frozen=True)
class MonitorSettings:
    window: int = 500
    """Requests in a window (the newest); the window before it is the drift comparator's reference."""
    min_requests: int = 200
    """Fewer requests than this are not judged: windows of 200 clean test digits stay below every
    threshold of the traffic schema, windows of 100 do not always (`python -m benchmarks drift`)."""
    retrain_digits: int = 200
    """Labelled corrections in the open feedback span that are worth a training run on their own."""
    training_sample: int = 2000
    """Training digits whose features are the skew comparator's reference."""
