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
def smoke_run(tmp_path_factory):
    """One `smoke` pipeline run (blessed and pushed): its output folder and its summary, taken right
    after it, since later tests run the pipeline again in the same folder (with bad data, worse
    models), as a user would. None of those pushes; tests that change what is served work on copies."""
    from pipeline import local_runner, summary

    root = str(tmp_path_factory.mktemp("smoke"))
    local_runner.run(configs.PROFILES["smoke"], output_root=root)
    return root, summary.latest_run(configs.metadata_path(root))


@pytest.fixture(scope="session")
def smoke_output(smoke_run) -> str:
    return smoke_run[0]
