"""Shared fixtures. Importing `models` first sets TF_USE_LEGACY_KERAS before TensorFlow loads.

Fixtures, not test order, carry what tests share: `smoke_run` is one `smoke` pipeline run (blessed and
pushed; killed in training and resumed, as `interrupted_smoke_run` records) for every test that needs a
trained model; tests that run the pipeline again in its folder
(bad data, worse models) never push, and tests that change what is served work on copies.

The suite runs on two pytest-xdist workers (`-n 2 --dist loadgroup` in pyproject.toml). Every test that
uses the smoke run goes to the same worker, which makes the run once and is the only one to run the
pipeline again in its folder; every other test goes with the rest of its module, whose module fixtures
(a Kubeflow cluster and its first run, a served stub) are then set up once. The two longest groups go
first, one to each worker.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import time
from typing import Any, List, Tuple

import models  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from benchmarks import results
from pipeline import configs

SMOKE_RUN_FIXTURES = {"interrupted_smoke_run", "smoke_run", "smoke_output", "served_model", "other_model"}
LONGEST_GROUPS = ("smoke-run", "test_kubeflow_run")
"""The groups that take longest, handed out first (one to each worker) so that neither waits behind the
other: the smoke run's tests, and the two Kubeflow runs."""


@pytest.hookimpl(tryfirst=True)  # Before pytest-xdist's own hook reads the groups into the test ids.
def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    """One pytest-xdist group for the tests of the smoke run, one per module for the others; the longest
    groups first (xdist hands groups out in collection order, `--no-loadscope-reorder`)."""
    groups = {}
    for item in items:
        uses_smoke_run = SMOKE_RUN_FIXTURES & set(getattr(item, "fixturenames", ()))
        groups[item.nodeid] = "smoke-run" if uses_smoke_run else item.path.stem
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    rank = {group: n for n, group in enumerate(LONGEST_GROUPS)}
    items.sort(key=lambda item: rank.get(groups[item.nodeid], len(LONGEST_GROUPS)))


@pytest.fixture(scope="session", autouse=True)
def benchmark_records(tmp_path_factory) -> str:
    """Where the benchmarks that tests run write their records: a temporary folder, never the
    repository's `benchmarks/results/`."""
    folder = str(tmp_path_factory.mktemp("benchmark-records"))
    os.environ[results.RESULTS_ENV] = folder
    return folder


@dataclasses.dataclass(frozen=True)
class InterruptedRun:
    """A `smoke` run of the command line killed (SIGKILL) once training started, then run again."""

    output: str
    at_kill: List[Tuple[str, int, int]]
    """Every execution in ML Metadata when it was killed: (component type, state, id)."""
    served_at_kill: bool
    """Whether anything was in the serving folder then."""
    summary: Any
    """The `pipeline.summary.RunSummary` of the run again, taken right after it."""


@pytest.fixture(scope="session")
def interrupted_smoke_run(tmp_path_factory) -> InterruptedRun:
    """The shared `smoke` run, made the way a crash leaves one: `digits run --profile smoke` killed in
    its first epoch, then the same run again, which takes every finished component from the cache and
    completes. Every e2e test reads the result, so a resume that lost anything fails them all."""
    from pipeline import local_runner, summary
    from tests import support

    output = str(tmp_path_factory.mktemp("smoke"))
    log_path = os.path.join(output, "killed-run.log")
    with open(log_path, "w") as log:
        first = subprocess.Popen(
            [sys.executable, "-m", "cli", "run", "--profile", "smoke", "--output", output],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            cwd=configs.PROJECT_ROOT,
            start_new_session=True,
        )
        deadline = time.time() + 600
        while "Epoch 1/" not in open(log_path).read():
            assert first.poll() is None, open(log_path).read()[-3000:]
            assert time.time() < deadline, "training did not start in time"
            time.sleep(0.2)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    at_kill = support.executions(output)
    served_at_kill = os.path.exists(configs.serving_model_dir(output))
    local_runner.run(configs.settings("smoke"), output_root=output)
    return InterruptedRun(output, at_kill, served_at_kill, summary.latest_run(configs.metadata_path(output)))


@pytest.fixture(scope="session")
def smoke_run(interrupted_smoke_run):
    """The output folder of the shared `smoke` run, and its summary taken right after it."""
    return interrupted_smoke_run.output, interrupted_smoke_run.summary


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
