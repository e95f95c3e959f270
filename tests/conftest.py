"""Shared fixtures. Importing `models` first sets TF_USE_LEGACY_KERAS before TensorFlow loads.

Fixtures, not test order, carry what tests share: `smoke_run` is one `smoke` pipeline run (blessed and
pushed) for every test that needs a trained model; tests that run the pipeline again in its folder
(bad data, worse models) never push, and tests that change what is served work on copies.
"""

import os

import models  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from benchmarks import results
from pipeline import configs


@pytest.fixture(scope="session", autouse=True)
def benchmark_records(tmp_path_factory) -> str:
    """Where the benchmarks that tests run write their records: a temporary folder, never the
    repository's `benchmarks/results/`."""
    folder = str(tmp_path_factory.mktemp("benchmark-records"))
    os.environ[results.RESULTS_ENV] = folder
    return folder


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The output folder of one `smoke` run, and its summary taken right after it."""
    from pipeline import local_runner, summary

    root = str(tmp_path_factory.mktemp("smoke"))
    local_runner.run(configs.settings("smoke"), output_root=root)
    return root, summary.latest_run(configs.metadata_path(root))


@pytest.fixture(scope="session")
def smoke_output(smoke_run) -> str:
    return smoke_run[0]


@pytest.fixture(scope="session")
def served_model(smoke_run) -> str:
    """The smoke run's pushed SavedModel (read-only: copy it to serve it)."""
    return smoke_run[1].pushed_to


@pytest.fixture(scope="session")
def other_model(smoke_run, tmp_path_factory) -> str:
    """A different model exported exactly as the Trainer exports: the same CNN, untrained."""
    from pipeline import untrained

    return untrained.export_untrained(smoke_run[1].transform_graph_uri, str(tmp_path_factory.mktemp("other") / "model"))
