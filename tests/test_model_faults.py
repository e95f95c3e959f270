"""Bad models never get served: a worse candidate is not blessed or pushed, and a run killed during
training completes when run again, reusing what had finished."""

import dataclasses
import os

import pytest
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs, local_runner, summary
from tests import support

pytestmark = pytest.mark.e2e


def test_a_candidate_worse_than_the_baseline_is_not_pushed(smoke_output):
    """Trained for one step, with no absolute bar at all: only the comparison with the blessed
    baseline can refuse it, and it does."""
    served = sorted(os.listdir(configs.serving_model_dir(smoke_output)))
    settings = configs.settings("smoke", min_accuracy=0.0)
    one_step = dataclasses.replace(settings, trainer=dataclasses.replace(settings.trainer, epochs=1, steps_per_epoch=1))
    local_runner.run(one_step, output_root=smoke_output)
    result = summary.latest_run(configs.metadata_path(smoke_output))
    baseline = summary.overall_accuracy(result.evaluation_uri, tfma.BASELINE_KEY)
    assert baseline is not None and result.accuracy < baseline
    assert result.blessed is False and result.pushed is False
    validation = tfma.load_validation_result(result.evaluation_uri)
    (failure,) = [f for s in validation.metric_validations_per_slice for f in s.failures]
    assert failure.metric_key.is_diff and failure.metric_threshold.HasField("change_threshold")
    assert sorted(os.listdir(configs.serving_model_dir(smoke_output))) == served


def test_a_run_killed_during_training_completes_on_rerun_from_cache(interrupted_smoke_run):
    """`digits run` killed (SIGKILL) after its first epoch; the same run again reuses every finished
    component and trains, evaluates and pushes. The shared smoke run is made this way."""
    output, before = interrupted_smoke_run.output, interrupted_smoke_run.at_kill
    assert ("Trainer", metadata_store_pb2.Execution.RUNNING) in {(name, state) for name, state, _ in before}
    assert not interrupted_smoke_run.served_at_kill
    again = interrupted_smoke_run.summary
    rerun = {name: state for name, state, _ in support.executions(output, again.run_id)}
    for name in ("DigitExampleGen", "StatisticsGen", "ExampleValidator", "Transform"):
        assert rerun[name] == metadata_store_pb2.Execution.CACHED, (name, rerun)
    assert rerun["Trainer"] == metadata_store_pb2.Execution.COMPLETE
    assert again.blessed and again.pushed
