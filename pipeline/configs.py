"""Every knob of the digits pipeline, in one place.

A profile bundles what changes between a quick check and a real run (data size, epochs, accuracy bar);
everything else is shared by all profiles and all orchestrators.
"""

import dataclasses
import os
from typing import Dict, List, Optional

PIPELINE_NAME = "digits"
"""Also the Kubeflow pipeline name, so it must match [a-z0-9][a-z0-9-]*."""

MODEL_NAME = "digits"
"""The TF Serving model name: the Pusher writes `<serving base>/<MODEL_NAME>/<version>/`."""

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_ROOT = os.path.join(PROJECT_ROOT, "data", "mnist")
SCHEMA_PATH = os.path.join(PROJECT_ROOT, "schema", "schema.pbtxt")
OUTPUT_ROOT = os.path.join(os.getcwd(), "output")
"""Default for `--output`: pipeline artifacts, ML Metadata and the serving model directory."""

PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.model.run_fn"

# DigitExampleGen: hash buckets of the training files. 1 in 12 goes to `eval`; when a dataset has no
# test files, 1 in 12 more goes to `test`.
EVAL_HASH_BUCKETS = 1
TEST_HASH_BUCKETS = 1
TOTAL_HASH_BUCKETS = 12

# Evaluator: the candidate must not be worse than the latest blessed model by more than this.
MAX_ACCURACY_DROP = 0.0

DEFAULT_BEAM_ARGS = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
"""Beam 2.72 tries to download its Prism runner unless a runner is named; this machine is offline."""


DEFAULT_PRECISION = "mixed_bfloat16"


@dataclasses.dataclass(frozen=True)
class Profile:
    """What a run trains on and for how long, and the accuracy it must reach to be pushed."""

    name: str
    train_limit: Optional[int]
    """Use only the first N training records (None: all)."""
    test_limit: Optional[int]
    epochs: int
    min_accuracy: float
    """Absolute accuracy bar on the test split for a model to be blessed."""
    batch_size: int = 128
    learning_rate: float = 1e-3
    early_stopping_patience: int = 6
    reduce_lr_patience: int = 3
    reduce_lr_factor: float = 0.5
    min_learning_rate: float = 1e-5
    augment: bool = True
    steps_per_epoch: Optional[int] = None
    """Cap on training steps per epoch (None: one pass over `train`); for quick checks and tests."""
    precision: str = DEFAULT_PRECISION
    """Keras dtype policy of the CNN's layers: bfloat16 maths with float32 weights trains about 1.8x
    faster than "float32" on this CPU (AVX512_BF16), accuracy unchanged (BENCHMARKS.md, issue 6)."""


PROFILES: Dict[str, Profile] = {
    profile.name: profile
    for profile in (
        # Small batches give enough steps (4 x 138) for batch norm's moving averages (momentum 0.99) to
        # settle on little data; with fewer, inference-mode predictions collapse to one class.
        Profile("smoke", train_limit=2400, test_limit=600, epochs=4, min_accuracy=0.5, batch_size=16),
        Profile("standard", train_limit=None, test_limit=None, epochs=10, min_accuracy=0.993),
        Profile("full", train_limit=None, test_limit=None, epochs=30, min_accuracy=0.995),
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

PRECISIONS = ("float32", "mixed_bfloat16")
"""Keras dtype policies the Trainer accepts."""

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")
"""tf.distribute strategies the Trainer accepts; `mirrored` uses every local device."""


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """What run_fn reads from `custom_config` (a plain dict, so it crosses into the Trainer as JSON)."""

    epochs: int
    batch_size: int
    learning_rate: float
    early_stopping_patience: int
    reduce_lr_patience: int
    reduce_lr_factor: float
    min_learning_rate: float
    augment: bool
    steps_per_epoch: Optional[int] = None
    precision: str = DEFAULT_PRECISION
    strategy: str = "default"
    seed: int = 42

    @classmethod
    def from_profile(cls, profile: Profile, strategy: str = "default", seed: int = 42) -> "TrainerConfig":
        shared = {f.name for f in dataclasses.fields(cls)} & {f.name for f in dataclasses.fields(Profile)}
        return cls(strategy=strategy, seed=seed, **{k: getattr(profile, k) for k in shared})


def pipeline_root(output_root: str) -> str:
    return os.path.join(output_root, "pipelines", PIPELINE_NAME)


def metadata_path(output_root: str) -> str:
    return os.path.join(output_root, "metadata", PIPELINE_NAME, "metadata.db")


def serving_model_dir(output_root: str) -> str:
    """The Pusher's base directory for this model: versions go directly below it."""
    return os.path.join(output_root, "serving_model", MODEL_NAME)


def beam_args(extra: Optional[List[str]] = None) -> List[str]:
    """Default Beam args, overridden by any flag the user passes with the same name."""
    extra = list(extra or [])
    given = {arg.split("=", 1)[0] for arg in extra}
    return [a for a in DEFAULT_BEAM_ARGS if a.split("=", 1)[0] not in given] + extra

