"""Other models to serve beside a pipeline's own: the same CNN, untrained, exported exactly as the
Trainer exports (signatures, checks, warmup), so that a hot swap is to a model that answers visibly
differently."""

import os
import shutil

import tensorflow_transform as tft

from models import model
from models.config import DEFAULT_SEED
from models.export import PixelDomain, export_model
from pipeline import configs
from serving.servable import SAVED_MODEL_FILE


def export_untrained(transform_graph_uri: str, export_dir: str, seed: int = DEFAULT_SEED + 1) -> str:
    """An untrained CNN (random weights from `seed`) with the pipeline's Transform graph."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    export_model(
        model.build_model(learning_rate=1e-3),
        tft.TFTransformOutput(transform_graph_uri),
        export_dir,
        PixelDomain.from_schema(configs.SCHEMA_PATH),
    )
    return export_dir


def push_version(source: str, base_path: str, version: int) -> str:
    """Copies a SavedModel into `<base_path>/<version>/` as the Pusher writes one: everything else
    first, saved_model.pb last, so that a server never sees a version half-written."""
    target = os.path.join(base_path, str(version))
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(SAVED_MODEL_FILE))
    shutil.copy(os.path.join(source, SAVED_MODEL_FILE), os.path.join(target, SAVED_MODEL_FILE))
    return target
