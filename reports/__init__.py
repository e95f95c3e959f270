"""Run reports: figures, error analysis and an offline index.html, from a run's artifacts."""

import models  # noqa: F401  Sets TF_USE_LEGACY_KERAS before anything imports TensorFlow.
