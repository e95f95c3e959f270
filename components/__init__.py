"""Custom TFX components of the digits pipeline."""

import models  # noqa: F401  Sets TF_USE_LEGACY_KERAS before anything imports TensorFlow.
