"""What the Trainer's `run_fn` reads from `custom_config`, and the choices it accepts.

It lives with the model code because it is the model's contract: the pipeline fills it in, the Trainer
(on whatever machine runs it) reads it. Nothing here imports TensorFlow, so the command line can offer
the same choices without paying for TensorFlow's import.
"""

import dataclasses
import os
from typing import Any, Dict, Optional, Tuple

from models import features

AUTO_PRECISION = "auto"
DTYPE_POLICIES = ("float32", "mixed_bfloat16")
"""Keras dtype policies the CNN can be built with."""
PRECISIONS = (AUTO_PRECISION, *DTYPE_POLICIES)
"""What the Trainer accepts: a dtype policy, or `auto` to pick one on the machine that trains."""
STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")
"""tf.distribute strategies the Trainer accepts; `mirrored` uses every local device."""
DEFAULT_STRATEGY = "default"
PLATEAU, COSINE = "plateau", "cosine"
SCHEDULES = (PLATEAU, COSINE)
"""Learning-rate schedules: `plateau` halves it when `eval` accuracy stalls (the Kaggle notebook's);
`cosine` warms it up linearly, then lowers it along a half cosine to nothing at the last epoch."""
DEFAULT_SEED = 42
EXTENSION_KEY_PREFIX = "ai_platform_"
"""custom_config keys of TFX's Google Cloud training extension (tfx.extensions.google_cloud_ai_platform)."""
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
"""CPU features that make bfloat16 maths fast; without them TensorFlow emulates it, about ten times
slower than float32."""


def cpu_has_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this machine's CPU computes bfloat16 natively (Linux; other systems: no)."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            flags = {word for line in f if line.startswith("flags") for word in line.split(":", 1)[1].split()}
    except OSError:
        return False
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def resolve_precision(precision: str) -> str:
    """`auto` -> `mixed_bfloat16` where the CPU has bfloat16 instructions, else `float32`."""
    if precision == AUTO_PRECISION:
        return "mixed_bfloat16" if cpu_has_bfloat16() else "float32"
    return precision


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Random changes to the training pictures, composed into one affine resampling per batch. Digits
    are rotated, zoomed and shifted a little (the Kaggle notebook's settings) and never mirrored; a
    dataset of clothes may be mirrored, and aligned product photos gain nothing from rotations."""

    rotation_degrees: float = 10.0
    zoom: float = 0.1
    """Each axis is scaled by a factor in 1 +- zoom."""
    shift: float = 0.1
    """Shifts of up to this share of the width and the height."""
    flip: bool = False
    """Mirror half of the pictures left to right."""
    noise: float = 0.0
    """Additive Gaussian noise, in grey levels (0-255): each picture gets a sigma drawn between 0 and
    this, so the model sees clean pictures and grainy ones (scans, photos) alike."""


NOTEBOOK_AUGMENTATION = Augmentation()
"""The Kaggle notebook's: rotation 10, zoom 0.1, shifts 0.1."""
DIGIT_AUGMENTATION = Augmentation(noise=30.0)
"""The notebook's, and noise up to sigma 30: without it, noise of sigma 20 costs about 18 points of
accuracy on the test digits."""
NO_AUGMENTATION = Augmentation(rotation_degrees=0.0, zoom=0.0, shift=0.0, flip=False, noise=0.0)


@dataclasses.dataclass(frozen=True)
class Member:
    """What sets one ensemble member apart besides its seed (None: the ensemble's own setting). CNNs
    that differ only in their seed make nearly the same mistakes, so averaging them gains little."""

    learning_rate: Optional[float] = None
    augmentation: Optional[Augmentation] = None
    deskew: Optional[bool] = None


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """Training settings; a plain dataclass so that it crosses into the Trainer as JSON."""

    epochs: int
    batch_size: int = 128
    learning_rate: float = 1e-3
    """The starting rate (`plateau`), or the peak after the warmup (`cosine`)."""
    schedule: str = PLATEAU
    warmup_epochs: float = 1.0
    """`cosine`: epochs over which the rate climbs linearly from a tenth of the peak to the peak."""
    early_stopping_patience: int = 6
    """`plateau`: epochs without a better `eval` score before training stops (`cosine` runs them all)."""
    reduce_lr_patience: int = 3
    reduce_lr_factor: float = 0.5
    min_learning_rate: float = 1e-5
    augmentation: Augmentation = DIGIT_AUGMENTATION
    class_names: Tuple[str, ...] = tuple(features.CLASS_LABELS)
    """The name of each class, in label order: what the exported model answers with."""
    deskew: bool = False
    """Straighten each picture's slant and centre its ink before the CNN (in the model, so served
    pictures get it too): a member that sees the digits another way errs on other digits."""
    test_time_rotation: float = 0.0
    """Degrees of test-time augmentation (TTA): the exported model predicts each picture as it is and
    rotated by + and - this many, and averages the three answers (`models.export.predict_with_tta`); 0
    predicts it once. Training and its
    `eval` scores are the CNN's own."""
    steps_per_epoch: Optional[int] = None
    """Training steps per epoch (None: one pass over `train`); fewer for quick checks and tests."""
    precision: str = AUTO_PRECISION
    strategy: str = DEFAULT_STRATEGY
    seed: int = DEFAULT_SEED
    ensemble: int = 1
    """How many CNNs to train (seeds `seed`, `seed + 1`, ...); more than one are exported as one model
    that averages their probabilities, with the same signatures."""
    members: Tuple[Member, ...] = ()
    """Member i's own settings (members past the end: none of their own)."""

    def __post_init__(self) -> None:
        if self.ensemble < 1:
            raise ValueError(f"An ensemble of {self.ensemble} CNNs: expected at least 1")
        if len(self.members) > self.ensemble:
            raise ValueError(f"Settings for {len(self.members)} members of an ensemble of {self.ensemble} CNNs")
        if self.precision not in PRECISIONS:
            raise ValueError(f"Unknown precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Unknown learning-rate schedule {self.schedule!r}: expected {' or '.join(SCHEDULES)}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"Unknown training strategy {self.strategy!r}: expected one of {', '.join(STRATEGIES)}")
        if len(self.class_names) != features.NUM_CLASSES:
            raise ValueError(f"{len(self.class_names)} class names, the CNN has {features.NUM_CLASSES} classes")

    def member(self, index: int) -> "TrainerConfig":
        """Member `index`'s (from 0) settings: its own seed, and its own rate, augmentation and deskewing
        if it has them."""
        own = self.members[index] if index < len(self.members) else Member()
        return dataclasses.replace(
            self,
            seed=self.seed + index,
            learning_rate=self.learning_rate if own.learning_rate is None else own.learning_rate,
            augmentation=self.augmentation if own.augmentation is None else own.augmentation,
            deskew=self.deskew if own.deskew is None else own.deskew,
            members=(),
        )

    def as_custom_config(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_custom_config(cls, custom_config: Dict[str, Any]) -> "TrainerConfig":
        """The inverse of `as_custom_config` (JSON has no tuples and no nested dataclasses). Keys of
        TFX's cloud training extension (`ai_platform_...`, for the job, not for run_fn) are passed over."""
        ours = {k: v for k, v in custom_config.items() if not k.startswith(EXTENSION_KEY_PREFIX)}
        return cls(
            **{
                **ours,
                "augmentation": Augmentation(**ours.get("augmentation", {})),
                "class_names": tuple(ours.get("class_names", features.CLASS_LABELS)),
                "members": tuple(
                    Member(
                        learning_rate=member.get("learning_rate"),
                        augmentation=Augmentation(**member["augmentation"]) if member.get("augmentation") else None,
                        deskew=member.get("deskew"),
                    )
                    for member in ours.get("members", ())
                ),
            }
        )


def read_class_names(path: str) -> Tuple[str, ...]:
    """A labels file (one class name per line, in label order; local or in a bucket) -> the names;
    a mistake names the file."""
    import tensorflow as tf  # Only where a labels file is read.

    with tf.io.gfile.GFile(path) as f:
        names = tuple(line.strip() for line in f.read().splitlines() if line.strip())
    if len(names) != features.NUM_CLASSES or len(set(names)) != len(names):
        raise ValueError(
            f"{path}: expected {features.NUM_CLASSES} different class names, one per line, "
            f"found {len(names)} ({len(set(names))} different)"
        )
    return names


def exported_class_names(export_dir: str) -> Optional[Tuple[str, ...]]:
    """The class names an exported model answers with (its `assets.extra/labels.txt`), or None for a
    model without the file."""
    import tensorflow as tf  # Only where a model is read.

    path = os.path.join(export_dir, features.CLASS_NAMES_FILE)
    return read_class_names(path) if tf.io.gfile.exists(path) else None
