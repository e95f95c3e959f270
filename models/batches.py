"""A model over many inputs, a batch at a time: what the run report, the robustness figures and the
benchmarks each need, so that no caller holds ten thousand digits in one tensor."""

from typing import Callable, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

BATCH = 500


def in_batches(
    call: Callable[[tf.Tensor], tf.Tensor],
    values: Union[np.ndarray, Sequence],
    batch: int = BATCH,
    dtype: Optional[tf.dtypes.DType] = tf.float32,
) -> np.ndarray:
    """`call` (a model or a signature's one input) on `batch` values at a time, as tensors of `dtype` (None:
    as the values are, e.g. encoded pictures), its answers concatenated in order."""
    return np.concatenate(
        [call(tf.constant(values[i : i + batch], dtype)).numpy() for i in range(0, len(values), batch)]
    )
