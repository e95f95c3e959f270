"""A model to serve beside a pipeline's own: the same CNN, untrained, exported exactly as the Trainer
exports (signatures, checks, warmup), so that a hot swap (in the serving tests and the load benchmark)
is to a model that answers visibly differently."""

import tensorflow_transform as tft

from models.config import DEFAULT_SEED
from models.export import PixelDomain, export_model
from models.network import build_model
from pipeline import configs


def export_untrained(transform_graph_uri: str, export_dir: str, seed: int = DEFAULT_SEED + 1) -> str:
    """An untrained CNN (random weights from `seed`) with the pipeline's Transform graph."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    export_model(
        build_model(learning_rate=1e-3),
        tft.TFTransformOutput(transform_graph_uri),
        export_dir,
        PixelDomain.from_schema(configs.SCHEMA_PATH),
    )
    return export_dir
