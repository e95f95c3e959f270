"""Benchmark suites: `python -m benchmarks <suite>` (or `python -m benchmarks.<suite>`); each writes its
figures as records under `benchmarks/results/`, from which `python -m benchmarks results` makes the page."""

import models  # noqa: F401  Sets TF_USE_LEGACY_KERAS before anything imports TensorFlow.
