"""The digits TFX pipeline: configs, wiring, runners for LocalDagRunner and Kubeflow Pipelines, CLI."""

import models  # noqa: F401  Sets TF_USE_LEGACY_KERAS before anything imports TensorFlow.
