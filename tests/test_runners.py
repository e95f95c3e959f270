"""The entry points TFX's templates teach: `python -m pipeline.local_runner` (or the file as a script)
runs the pipeline configured in pipeline/configs.py, and TFX's own CLI works on it."""

import json
import os
import runpy
import subprocess
import sys

import pytest
from ml_metadata.proto import metadata_store_pb2

from components.baseline import BaselineAwareEvaluator
from pipeline import configs, summary
from tests import support

RUNNER = os.path.join(configs.PROJECT_ROOT, "pipeline", "local_runner.py")


@pytest.mark.component
def test_tfx_cli_creates_the_local_pipeline(tmp_path):
    env = dict(os.environ, LOCAL_HOME=str(tmp_path / "tfx-home"), TF_CPP_MIN_LOG_LEVEL="3")
    tfx = os.path.join(os.path.dirname(sys.executable), "tfx")

    def cli(*args: str) -> str:
        done = subprocess.run([tfx, *args], capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done.stdout

    assert 'Pipeline "digits" created successfully' in cli(
        "pipeline", "create", "--engine", "local", "--pipeline_path", RUNNER
    )
    with open(tmp_path / "tfx-home" / "digits" / "pipeline_args.json") as f:
        saved = json.load(f)
    # What `tfx run create --engine local --pipeline_name digits` will run, writing where configs.py says.
    assert saved["pipeline_dsl_path"] == RUNNER
    assert saved["pipeline_root"] == configs.pipeline_root(os.path.join(str(tmp_path), "output"))


@pytest.mark.e2e
def test_the_runner_as_a_script_runs_what_configs_say(smoke_run, monkeypatch):
    """What `tfx run create` executes: the file as a script, with the defaults in configs.py (set here to
    the smoke profile and the smoke run's folder, so that every component comes from the cache)."""
    output_root, first = smoke_run
    monkeypatch.setattr(configs, "DEFAULT_PROFILE", "smoke")
    monkeypatch.setattr(configs, "OUTPUT_ROOT", output_root)
    monkeypatch.setattr(sys, "path", list(sys.path))
    runpy.run_path(RUNNER, run_name="__main__")
    latest = summary.latest_run(configs.metadata_path(output_root))
    assert latest.run_id != first.run_id
    states = {name: state for name, state, _ in support.executions(output_root, latest.run_id)}
    for component in ("DigitExampleGen", "StatisticsGen", "Transform", "Trainer"):
        assert states[component] == metadata_store_pb2.Execution.CACHED, states
    # The Evaluator runs again: the first run's model is now the blessed baseline it compares with.
    assert states[BaselineAwareEvaluator.__name__] == metadata_store_pb2.Execution.COMPLETE
