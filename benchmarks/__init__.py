"""Benchmark commands: `python -m benchmarks.<name>` (see BENCHMARKS.md for what each measured)."""

import models  # noqa: F401  Sets TF_USE_LEGACY_KERAS before anything imports TensorFlow.
