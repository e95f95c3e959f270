"""Every knob of the digits pipeline, in one place.

A profile bundles what changes between a quick check and a real run (how many records, the training
settings, the accuracy bar). `Settings` is one run's profile with the command line's overrides applied:
the command line resolves it once and hands it to whichever runner runs or compiles the pipeline.
"""

import dataclasses
import os
import re
from typing import Any, Dict, List, Optional, Tuple, TypedDict

from models import features
from models.config import COSINE, Augmentation, Member, TrainerConfig, read_class_names

PIPELINE_NAME = features.MODEL_NAME
"""The default pipeline (and model) name; `--model-name` sets both, so that each dataset's runs, blessed
models and validated statistics stay apart. Also the Kubeflow pipeline name: [a-z0-9][a-z0-9-]*."""
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_ROOT = os.path.join(PROJECT_ROOT, "data", "mnist")
SCHEMA_PATH = os.path.join(PROJECT_ROOT, "schema", "schema.pbtxt")
OUTPUT_ROOT = os.path.join(os.getcwd(), "output")
"""Default for `--output`: pipeline artifacts, ML Metadata and the serving model directory."""

DATASET_LABELS = "labels.txt"
"""A dataset's class names, one per line in label order, beside its files (e.g. Fashion-MNIST's)."""
FASHION_LABELS = os.path.join(PROJECT_ROOT, "data", "labels", "fashion-mnist.txt")
"""Fashion-MNIST's ten class names (Debian's dataset-fashion-mnist ships only the IDX files)."""
FASHION_AUGMENTATION = Augmentation(rotation_degrees=0.0, zoom=0.0, shift=0.0, flip=True)
"""Clothes are photographed upright and centred: mirrored, never rotated, zoomed or shifted."""
COSINE_PEAK_RATE = 3e-3
"""The cosine profiles' peak learning rate, where the notebook starts at 1e-3: ahead of 1e-3 on `eval` for
each of three seeds raced, and the ensemble's members at 3e-3 all above those at 1e-3."""
TEST_TIME_ROTATION = 6.0
"""Degrees of test-time augmentation (TTA): the single-CNN digit profiles export a model that predicts
each picture as it is and rotated by +-6 degrees, and averages the three answers. On fourteen CNNs
already trained it corrected 0.04 points (a tenth of the mistakes) on `eval` and on test, for twelve of
the fourteen on each split; rotations of 9 and 12 degrees did as well, 3 less. Not the ensemble (its
members' average gained one `eval` digit, for three times five CNNs' inference) nor clothes, which are
photographed upright."""
ENSEMBLE_MEMBERS = (
    Member(),
    Member(learning_rate=COSINE_PEAK_RATE, deskew=True),
    Member(),
    Member(learning_rate=COSINE_PEAK_RATE, deskew=True),
    Member(learning_rate=COSINE_PEAK_RATE),
)
"""The `ensemble` profile's CNNs: `full`'s 30 epochs each, at peak rates of 1e-3 and 3e-3, as the four
`full` runs that averaged 99.68% on `eval` where 15-epoch ensembles scored at most 99.54%;
members 2 and 4 deskew the pictures first (`models.network.Deskew`), so that they err on other digits:
a deskewed and a plain CNN share fewer of their mistakes than two of a kind, and this ensemble scored
higher on `eval` than five plain CNNs."""

PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.training.run_fn"


@dataclasses.dataclass(frozen=True)
class SplitBuckets:
    """DigitExampleGen's hash buckets of the training files: 1 in 12 goes to `eval`; when a dataset has
    no test files, 1 in 12 more goes to `test`."""

    eval: int = 1
    test: int = 1
    total: int = 12


SPLIT_BUCKETS = SplitBuckets()

FEEDBACK_WINDOW = 3
"""How many of the newest sealed feedback spans a run trains on (`--feedback-window`): older spans drop
out, so that the corrections a model learns from follow what people draw now."""

MAX_ACCURACY_DROP = 0.0
"""Evaluator: the candidate must not be worse than the served model by more than this."""


@dataclasses.dataclass(frozen=True)
class CanarySettings:
    """ServingCanary: the candidate served in a model server subprocess before it may be pushed."""

    latency_budget_ms: float = 100.0
    """Largest p99 of one-digit requests (REST and gRPC alike); measured unloaded here: 3-4 ms."""
    requests: int = 100
    """One-digit requests per protocol for the latency check."""
    start_timeout_s: float = 180.0
    """How long the server may take to load and warm the candidate up before it is refused."""


CANARY = CanarySettings()

DIRECT_RUNNER = "--runner=DirectRunner"
DEFAULT_BEAM_ARGS = (
    DIRECT_RUNNER,
    "--direct_running_mode=in_memory",
    "--direct_num_workers=1",
    "--sdk_container_image=none",
)
"""Beam 2.72 tries to download its Prism runner unless a runner is named; this machine is offline.

The DirectRunner runs every Beam stage in this process (or in subprocesses of it) and uses no container
image. Naming one anyway stops TFX from packaging its own installation for remote workers before every
Beam component of every run: a 52 MB copy in a new temporary folder, never deleted, about 2 s each, four a
run (5 s of a smoke run's 45)."""


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
    model_name: str = PIPELINE_NAME
    """The model (and pipeline) name a run of this profile uses unless `--model-name` says otherwise."""
    labels_file: Optional[str] = None
    """The class names a run of this profile uses unless `--labels` says otherwise (None: the data's own
    `labels.txt` if it has one, else the digits)."""
    warm_start: bool = False
    """Train from the served model's weights (the baseline), not from scratch."""


PROFILES: Dict[str, Profile] = {
    profile.name: profile
    for profile in (
        # Small batches give enough steps (4 x 138) for batch norm's moving averages (momentum 0.99) to
        # settle on little data; with fewer, inference-mode predictions collapse to one class.
        Profile(
            "smoke",
            min_accuracy=0.5,
            trainer=TrainerConfig(epochs=4, batch_size=16, test_time_rotation=TEST_TIME_ROTATION),
            train_limit=2400,
            test_limit=600,
        ),
        # The cosine schedule ends at a rate of zero, where plateau halving kept 10 epochs near the
        # starting rate; 15 epochs reach 99.5% within 10 minutes on 2 cores.
        Profile(
            "standard",
            min_accuracy=0.993,
            trainer=TrainerConfig(
                epochs=15, schedule=COSINE, learning_rate=COSINE_PEAK_RATE, test_time_rotation=TEST_TIME_ROTATION
            ),
        ),
        # Twice `standard`'s schedule: 99.6% on test, where 45 epochs gained nothing measurable.
        Profile(
            "full",
            min_accuracy=0.995,
            trainer=TrainerConfig(
                epochs=30, schedule=COSINE, learning_rate=COSINE_PEAK_RATE, test_time_rotation=TEST_TIME_ROTATION
            ),
        ),
        # Five CNNs from five seeds and settings, averaged in one exported model.
        Profile(
            "ensemble",
            min_accuracy=0.995,
            trainer=TrainerConfig(epochs=30, schedule=COSINE, ensemble=len(ENSEMBLE_MEMBERS), members=ENSEMBLE_MEMBERS),
        ),
        # New data for a served model: a few epochs from its weights, through the same gates as any
        # candidate (it must still beat the model it started from). The served model ended its cosine
        # schedule at a rate of zero: a steady 3e-4 undid it (99.52% -> 99.27%), so the
        # rate starts low and falls to zero again.
        Profile(
            "finetune",
            min_accuracy=0.993,
            trainer=TrainerConfig(
                epochs=3,
                learning_rate=1e-4,
                schedule=COSINE,
                warmup_epochs=0.0,
                test_time_rotation=TEST_TIME_ROTATION,
            ),
            warm_start=True,
        ),
        # Fashion-MNIST: clothes, so mirrored pictures are still the same class (never for digits).
        # Published 2-conv CNNs reach 92-93.4%; the bar is 92%.
        Profile(
            "fashion",
            min_accuracy=0.92,
            trainer=TrainerConfig(epochs=25, augmentation=FASHION_AUGMENTATION),
            model_name="fashion",
            labels_file=FASHION_LABELS,
        ),
    )
}
DEFAULT_PROFILE = "standard"

# Kubeflow Pipelines and Vertex AI. The container image is built from the project's Dockerfile, which
# installs the locked dependencies and this project at KUBEFLOW_APP_ROOT, with the bundled MNIST and the
# schema; it is named at compile time (`--image`), never a default.
KUBEFLOW_APP_ROOT = "/app"
KUBEFLOW_DATA_ROOT = os.path.join(KUBEFLOW_APP_ROOT, os.path.relpath(DATA_ROOT, PROJECT_ROOT))
KUBEFLOW_SCHEMA_PATH = os.path.join(KUBEFLOW_APP_ROOT, os.path.relpath(SCHEMA_PATH, PROJECT_ROOT))
KUBEFLOW_TARGETS = ("kubeflow", "vertex")
"""`digits compile --target`: the open-source KFP 2.x backend (PipelineSpec YAML), or Vertex AI Pipelines
(PipelineJob JSON)."""
KUBEFLOW_PIPELINE_ROOT = "minio://mlpipeline/v2/artifacts"
"""The open-source backend's own root when a run names none (`backend/src/v2/config/env.go`)."""
KUBEFLOW_ROOT_SCHEMES = {"kubeflow": ("gs://", "minio://", "s3://"), "vertex": ("gs://",)}
"""The object stores each target keeps artifacts in (the open-source launcher's `LocalPathForURI`)."""
TENSORFLOW_SCHEMES = ("gs://",)
"""Object stores TensorFlow and Beam read and write themselves: tasks use their URIs as they are, and the
served models and the drift reference live under such a root. Under a `minio://` or `s3://` root (no
file system for them in TensorFlow 2.16 or in this lock) tasks use the launcher's local copies, and
the state lives on KUBEFLOW_STATE_PVC."""
KUBEFLOW_STATE_PVC = "digits-state"
"""The PersistentVolumeClaim every task mounts under a `minio://` or `s3://` root: the served models
(Pusher, ServedBaseline, warm start) and the drift reference, kept between pods and runs."""
KUBEFLOW_STATE_MOUNT = "/digits-state"


@dataclasses.dataclass(frozen=True)
class TaskResources:
    """A Kubeflow task's CPU (cores) and memory (GB) requests and limits."""

    cpu_request: float = 1.0
    cpu_limit: float = 2.0
    memory_request: float = 4.0
    memory_limit: float = 8.0


KUBEFLOW_RESOURCES = TaskResources()
"""Every task's, unless KUBEFLOW_TASK_RESOURCES names it. The Kubeflow run tests check that each task of a
smoke run peaks below its request."""
KUBEFLOW_TASK_RESOURCES = {
    "Trainer": TaskResources(cpu_request=2.0, cpu_limit=4.0, memory_request=8.0, memory_limit=16.0)
}
"""The Trainer holds the training set in memory as floats, and an ensemble trains five CNNs in turn."""


def compiled_file(target: str, name: str = PIPELINE_NAME) -> str:
    """Default for `digits compile --output-file`."""
    extension = "yaml" if target == "kubeflow" else "json"
    return os.path.join(OUTPUT_ROOT, target, f"{name}_pipeline.{extension}")


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
    model_name: str = PIPELINE_NAME
    """The served model's name and the pipeline's (its runs, artifacts and ML Metadata context)."""
    labels_file: Optional[str] = None
    """The class names, one per line (default: `labels.txt` beside the data, if there is one; else the
    digits 0-9)."""
    warm_start: bool = False
    feedback_root: Optional[str] = None
    """Labelled pictures people drew, in sealed spans (`models.feedback`), trained on beside the data
    (None: none)."""
    feedback_window: int = FEEDBACK_WINDOW
    request_log_prefix: Optional[str] = None
    """The served model's request logs (their `filename_prefix`): with them, TrafficMonitor compares
    the newest logged requests with the run's training digits (None: no TrafficMonitor)."""

    def __post_init__(self) -> None:
        check_name(self.model_name)
        if self.feedback_window < 0:
            raise ValueError(f"feedback window {self.feedback_window}: how many sealed spans to read, 0 or more")
        if self.warm_start and self.trainer.ensemble > 1:
            raise ValueError(f"profile {self.profile.name!r}: an ensemble's CNNs train from scratch, not warm-started")


def check_name(name: str) -> str:
    """A model (and pipeline) name as Kubeflow takes it; the name itself, or ValueError saying why."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"model name {name!r}: use lower-case letters, digits and '-', starting with a letter or digit "
            "(it also names the pipeline, and Kubeflow requires that)"
        )
    return name


def beam_args(extra: Optional[List[str]] = None) -> Tuple[str, ...]:
    """Default Beam args, overridden by any flag the user passes with the same name; with a runner other
    than the DirectRunner, the user's alone (the defaults are the DirectRunner's)."""
    extra = list(extra or [])
    given = {arg.split("=", 1)[0] for arg in extra}
    if "--runner" in given and DIRECT_RUNNER not in extra:
        return tuple(extra)
    return tuple(a for a in DEFAULT_BEAM_ARGS if a.split("=", 1)[0] not in given) + tuple(extra)


def settings(
    profile: Optional[str] = None,
    *,
    data_root: Optional[str] = None,
    schema_path: Optional[str] = None,
    beam_arg: Optional[List[str]] = None,
    min_accuracy: Optional[float] = None,
    model_name: Optional[str] = None,
    labels_file: Optional[str] = None,
    warm_start: Optional[bool] = None,
    feedback_root: Optional[str] = None,
    feedback_window: Optional[int] = None,
    request_log_prefix: Optional[str] = None,
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
        model_name=model_name or chosen.model_name,
        labels_file=labels_file or chosen.labels_file,
        warm_start=chosen.warm_start if warm_start is None else warm_start,
        feedback_root=feedback_root,
        feedback_window=FEEDBACK_WINDOW if feedback_window is None else feedback_window,
        request_log_prefix=request_log_prefix,
    )


def pipeline_root(output_root: str, name: str = PIPELINE_NAME) -> str:
    return os.path.join(output_root, "pipelines", name)


def metadata_path(output_root: str, name: str = PIPELINE_NAME) -> str:
    return os.path.join(output_root, "metadata", name, "metadata.db")


def request_log_prefix(output_root: str, model_name: str = PIPELINE_NAME) -> str:
    """Where `digits monitor` looks for a model's request logs unless told: the `filename_prefix` the
    docs' model config gives."""
    return os.path.join(output_root, "request_logs", model_name, "requests")


def serving_model_dir(output_root: str, model_name: str = PIPELINE_NAME) -> str:
    """The Pusher's base directory for a model: versions go directly below it."""
    return os.path.join(output_root, "serving_model", model_name)


REFERENCE_FILE = "validated_statistics_reference.txt"
"""Names the last statistics that passed AnomalyGate: the next run's drift reference."""


def reference_file(state_root: str) -> str:
    """The drift reference of the pipeline whose state lives under `state_root` (locally its pipeline
    root; on a cluster the bucket's root or the state volume)."""
    return os.path.join(state_root, REFERENCE_FILE)


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
    canary: CanarySettings
    warm_start: bool
    feedback_base: Optional[str]
    feedback_window: int
    request_log_prefix: Optional[str]


def tf_file_exists(path: str) -> bool:
    """Local paths and buckets alike (TensorFlow's file system); False where it cannot be read."""
    import tensorflow as tf

    try:
        return bool(tf.io.gfile.exists(path))
    except tf.errors.OpError:
        return False


def class_names(settings: Settings, data_root: str) -> Tuple[str, ...]:
    """The class names the model will answer with: the labels file named, or `labels.txt` beside the
    data when it can be read from here, or the digits."""
    path = settings.labels_file or os.path.join(data_root, DATASET_LABELS)
    if settings.labels_file or tf_file_exists(path):
        return read_class_names(path)
    return tuple(features.CLASS_LABELS)


def pipeline_values(settings: Settings, data_root: str) -> PipelineValues:
    """What `create_pipeline` takes from the settings and from the knobs above, for every runner."""
    limits = {features.TRAIN_SPLIT: settings.profile.train_limit, features.TEST_SPLIT: settings.profile.test_limit}
    return {
        "pipeline_name": settings.model_name,
        "preprocessing_fn": PREPROCESSING_FN,
        "run_fn": RUN_FN,
        "trainer_config": dataclasses.replace(settings.trainer, class_names=class_names(settings, data_root)),
        "min_accuracy": settings.min_accuracy,
        "max_accuracy_drop": MAX_ACCURACY_DROP,
        "split_buckets": SPLIT_BUCKETS,
        "record_limits": {split: limit for split, limit in limits.items() if limit is not None},
        "beam_pipeline_args": list(settings.beam_args),
        "canary": CANARY,
        "warm_start": settings.warm_start,
        "feedback_base": settings.feedback_root,
        "feedback_window": settings.feedback_window,
        "request_log_prefix": settings.request_log_prefix,
    }
