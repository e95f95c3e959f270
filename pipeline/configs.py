"""Every knob of the digits pipeline, in one place.

A profile bundles what changes between a quick check and a real run (how many records, the training
settings, the accuracy bar). `Settings` is one run's profile with the command line's overrides applied:
the command line resolves it once and hands it to whichever runner runs or compiles the pipeline.
"""

import dataclasses
import os
from typing import Any, Dict, List, Optional, Tuple, TypedDict

from models import features
from models.config import TrainerConfig

PIPELINE_NAME = "digits"
"""Also the Kubeflow pipeline name, so it must match [a-z0-9][a-z0-9-]*."""

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_ROOT = os.path.join(PROJECT_ROOT, "data", "mnist")
SCHEMA_PATH = os.path.join(PROJECT_ROOT, "schema", "schema.pbtxt")
OUTPUT_ROOT = os.path.join(os.getcwd(), "output")
"""Default for `--output`: pipeline artifacts, ML Metadata and the serving model directory."""

PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.model.run_fn"


@dataclasses.dataclass(frozen=True)
class SplitBuckets:
    """DigitExampleGen's hash buckets of the training files: 1 in 12 goes to `eval`; when a dataset has
    no test files, 1 in 12 more goes to `test`."""

    eval: int = 1
    test: int = 1
    total: int = 12


SPLIT_BUCKETS = SplitBuckets()

MAX_ACCURACY_DROP = 0.0
"""Evaluator: the candidate must not be worse than the latest blessed model by more than this."""

DEFAULT_BEAM_ARGS = ("--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1")
"""Beam 2.72 tries to download its Prism runner unless a runner is named; this machine is offline."""


@dataclasses.dataclass(frozen=True)
class Profile:
    """What a run trains on and for how long, and the accuracy it must reach to be pushed."""

    name: str
    min_accuracy: float
    """Absolute accuracy bar on the test split for a model to be blessed."""
    trainer: TrainerConfig
    train_limit: Optional[int] = None
    """Ingest only the first N training records (None: all)."""
    test_limit: Optional[int] = None


PROFILES: Dict[str, Profile] = {
    profile.name: profile
    for profile in (
        # Small batches give enough steps (4 x 138) for batch norm's moving averages (momentum 0.99) to
        # settle on little data; with fewer, inference-mode predictions collapse to one class.
        Profile(
            "smoke", min_accuracy=0.5, trainer=TrainerConfig(epochs=4, batch_size=16), train_limit=2400, test_limit=600
        ),
        Profile("standard", min_accuracy=0.993, trainer=TrainerConfig(epochs=10)),
        Profile("full", min_accuracy=0.995, trainer=TrainerConfig(epochs=30)),
    )
}
DEFAULT_PROFILE = "standard"

# Kubeflow Pipelines: the container image is built from the project's Dockerfile, which installs the
# locked dependencies and this project at KUBEFLOW_APP_ROOT, with the bundled MNIST and the schema.
KUBEFLOW_IMAGE = "digits-tfx:latest"
KUBEFLOW_APP_ROOT = "/app"
KUBEFLOW_DATA_ROOT = os.path.join(KUBEFLOW_APP_ROOT, os.path.relpath(DATA_ROOT, PROJECT_ROOT))
KUBEFLOW_SCHEMA_PATH = os.path.join(KUBEFLOW_APP_ROOT, os.path.relpath(SCHEMA_PATH, PROJECT_ROOT))
KUBEFLOW_PIPELINE_ROOT = "/tfx/pipelines"


@dataclasses.dataclass(frozen=True)
class Settings:
    """One run: a profile with overrides. Paths left None are the bundled ones where the pipeline runs
    (this checkout locally, the image's copy on Kubeflow)."""

    profile: Profile
    trainer: TrainerConfig
    min_accuracy: float
    data_root: Optional[str] = None
    schema_path: Optional[str] = None
    beam_args: Tuple[str, ...] = DEFAULT_BEAM_ARGS
    model_name: str = features.MODEL_NAME


def beam_args(extra: Optional[List[str]] = None) -> Tuple[str, ...]:
    """Default Beam args, overridden by any flag the user passes with the same name."""
    extra = list(extra or [])
    given = {arg.split("=", 1)[0] for arg in extra}
    return tuple(a for a in DEFAULT_BEAM_ARGS if a.split("=", 1)[0] not in given) + tuple(extra)


def settings(
    profile: Optional[str] = None,
    *,
    data_root: Optional[str] = None,
    schema_path: Optional[str] = None,
    beam_arg: Optional[List[str]] = None,
    min_accuracy: Optional[float] = None,
    **trainer_overrides: Any,
) -> Settings:
    """The profile named (default: DEFAULT_PROFILE), with every override that is not None (trainer
    fields by their names)."""
    chosen = PROFILES[profile or DEFAULT_PROFILE]
    overrides = {k: v for k, v in trainer_overrides.items() if v is not None}
    return Settings(
        profile=chosen,
        trainer=dataclasses.replace(chosen.trainer, **overrides),
        min_accuracy=chosen.min_accuracy if min_accuracy is None else min_accuracy,
        data_root=data_root,
        schema_path=schema_path,
        beam_args=beam_args(beam_arg),
    )


def pipeline_root(output_root: str) -> str:
    return os.path.join(output_root, "pipelines", PIPELINE_NAME)


def metadata_path(output_root: str) -> str:
    return os.path.join(output_root, "metadata", PIPELINE_NAME, "metadata.db")


def serving_model_dir(output_root: str, model_name: str = features.MODEL_NAME) -> str:
    """The Pusher's base directory for a model: versions go directly below it."""
    return os.path.join(output_root, "serving_model", model_name)


class PipelineValues(TypedDict):
    """What every runner passes to `create_pipeline` from the settings and the knobs above."""

    pipeline_name: str
    preprocessing_fn: str
    run_fn: str
    trainer_config: TrainerConfig
    min_accuracy: float
    max_accuracy_drop: float
    split_buckets: SplitBuckets
    record_limits: Dict[str, int]
    beam_pipeline_args: List[str]


def pipeline_values(settings: Settings) -> PipelineValues:
    """What `create_pipeline` takes from the settings and from the knobs above, for every runner."""
    limits = {features.TRAIN_SPLIT: settings.profile.train_limit, features.TEST_SPLIT: settings.profile.test_limit}
    return {
        "pipeline_name": PIPELINE_NAME,
        "preprocessing_fn": PREPROCESSING_FN,
        "run_fn": RUN_FN,
        "trainer_config": settings.trainer,
        "min_accuracy": settings.min_accuracy,
        "max_accuracy_drop": MAX_ACCURACY_DROP,
        "split_buckets": SPLIT_BUCKETS,
        "record_limits": {split: limit for split, limit in limits.items() if limit is not None},
        "beam_pipeline_args": list(settings.beam_args),
    }
