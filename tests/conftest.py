"""Shared fixtures. Importing `models` first sets TF_USE_LEGACY_KERAS before TensorFlow loads."""

import os

import models  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from pipeline import configs  # noqa: E402


@pytest.fixture(scope="session")
def mnist_root() -> str:
    """The bundled MNIST, read-only: tests copy or subset it, never write into it."""
    return configs.DATA_ROOT


@pytest.fixture(scope="session")
def smoke_output(tmp_path_factory) -> str:
    """Output folder of one `smoke` pipeline run (blessed and pushed), shared by the tests that need a
    real pushed model. Tests that change what is served work on copies."""
    from pipeline import local_runner

    root = str(tmp_path_factory.mktemp("smoke"))
    local_runner.run(configs.PROFILES["smoke"], output_root=root)
    return root
