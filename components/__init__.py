"""Custom TFX components of the digits pipeline."""

from typing import Any

import models  # noqa: F401  Sets TF_USE_LEGACY_KERAS before anything imports TensorFlow.

ARTIFACT_TYPES = ("ValidatedStatistics", "Submission")


def __getattr__(name: str) -> Any:
    """`components.ValidatedStatistics` and `components.Submission`, the import paths their TYPE_NAMEs
    name (see components/artifacts.py), imported only when asked for: TFX is not needed before."""
    if name in ARTIFACT_TYPES:
        from components import artifacts

        return getattr(artifacts, name)
    raise AttributeError(f"module 'components' has no attribute {name!r}")
