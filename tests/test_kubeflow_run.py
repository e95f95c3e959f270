"""The compiled Kubeflow Pipelines spec, executed here task by task as the KFP launcher runs it (TFX's own
container entrypoint in each task, `tests/kfp_launcher.py`), with the gate's semantics of a local run: a
first run with no baseline and no reference pushes; a one-step model under an impossible bar pushes
nothing, refused by both the bar and the comparison with the served model; a vanished class stops the
run at the gate. The runs share one pipeline root, as the runs of a pipeline on a cluster do. (Each task runs TFX's
entrypoint in a process forked from one that imported it once, without the 6 s import every pod pays:
`tests/kfp_launcher.py`.)"""

import dataclasses
import os

import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma

from components.baseline import SERVED_VERSION
from models import features
from pipeline import configs, kubeflow_runner
from tests import kfp_launcher, support

pytestmark = pytest.mark.component


@dataclasses.dataclass
class Cluster:
    """A pipeline root that runs share, and the data the runs read."""

    root: str
    data: str
    count: int = 0

    @property
    def serving_model_dir(self) -> str:
        return os.path.join(self.root, "serving_model", features.MODEL_NAME)

    def served(self):
        return sorted(os.listdir(self.serving_model_dir)) if os.path.isdir(self.serving_model_dir) else []

    def run(self, data: str = "", **overrides) -> kfp_launcher.Run:
        """Compiles the smoke pipeline with `overrides` (as `digits compile` would) and runs it."""
        self.count += 1
        trainer = {k: overrides.pop(k) for k in ("epochs", "steps_per_epoch") if k in overrides}
        settings = configs.settings("smoke", data_root=data or self.data, schema_path=configs.SCHEMA_PATH, **overrides)
        settings = dataclasses.replace(settings, trainer=dataclasses.replace(settings.trainer, **trainer))
        spec = kubeflow_runner.compile_pipeline(
            settings, os.path.join(self.root, f"spec-{self.count}.yaml"), pipeline_root=self.root
        )
        return kfp_launcher.run_spec(spec, f"run-{self.count}")


SMOKE = configs.PROFILES["smoke"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The smoke profile's data: the first records of the bundled MNIST, read where they are."""
    return Cluster(str(tmp_path_factory.mktemp("kfp") / "pipeline_root"), configs.DATA_ROOT)


@pytest.fixture(scope="module")
def first(cluster):
    return cluster.run(min_accuracy=0.5)


def test_first_run_pushes_without_baseline_or_reference(cluster, first):
    assert first.metadata("ServedBaseline", "baseline")[SERVED_VERSION] == 0
    assert "No model served from" in first.logs["ServedBaseline"]
    assert "No drift check: no data passed this gate before" in first.logs["AnomalyGate"]
    assert "evaluating the candidate alone" in first.logs["Evaluator"]
    assert first.metadata("Evaluator", "blessing")["blessed"] == 1
    # The canary served the candidate from inside its task (the project's server in a subprocess).
    assert first.metadata("ServingCanary", "blessing")["blessed"] == 1
    assert first.metadata("Pusher", "pushed_model")["pushed"] == 1
    (version,) = cluster.served()
    model = tf.saved_model.load(os.path.join(cluster.serving_model_dir, version))
    pixels, labels = support.mnist_digits("t10k", 100)
    answers = model.signatures[features.IMAGES_SIGNATURE](**{features.IMAGES_INPUT: tf.constant(pixels, tf.float32)})
    assert (answers[features.DIGIT_OUTPUT].numpy() == labels).mean() > 0.5
    # Ingestion ran without TFX's driver, and still recorded what it read.
    examples = first.metadata("DigitExampleGen", "examples")
    assert examples["input_fingerprint"].startswith("split:train,num_files:2") and examples["custom:span"] == 0
    assert "Verified 4 checksums" in first.logs["DigitExampleGen"]
    # The gate recorded the data as the next run's drift reference, under the pipeline root.
    with open(os.path.join(cluster.root, "validated_statistics_reference.txt")) as f:
        assert f.read().strip() == first.uri("AnomalyGate", "validated_statistics")


def test_an_impossible_bar_and_a_worse_model_push_nothing(cluster, first):
    """One training step against an accuracy bar of 100%: the Evaluator refuses it on both counts, the
    bar and the served model (the baseline ServedBaseline found, with the reference the gate used)."""
    served = cluster.served()
    run = cluster.run(min_accuracy=1.0, epochs=1, steps_per_epoch=1)
    assert run.metadata("ServedBaseline", "baseline")[SERVED_VERSION] == int(served[-1])
    assert "evaluating the candidate alone" not in run.logs["Evaluator"]
    assert (
        f"Drift check against the last validated statistics, {first.uri('AnomalyGate', 'validated_statistics')}"
        in (run.logs["AnomalyGate"])
    )
    validation = tfma.load_validation_result(run.uri("Evaluator", "evaluation"))
    failures = [f for s in validation.metric_validations_per_slice for f in s.failures]
    kinds = {"change" if f.metric_key.is_diff else "value" for f in failures}
    assert kinds == {"change", "value"}, failures
    assert run.metadata("Evaluator", "blessing")["blessed"] == 0
    assert run.metadata("Pusher", "pushed_model")["pushed"] == 0
    assert cluster.served() == served


def test_a_vanished_class_stops_the_run_at_the_gate(cluster, first, tmp_path):
    images, labels = support.mnist_digits("train", SMOKE.train_limit)
    keep = labels != 7
    support.write_idx(str(tmp_path), "train", images[keep], labels[keep])
    support.write_idx(str(tmp_path), "t10k", *support.mnist_digits("t10k", SMOKE.test_limit))
    served = cluster.served()
    with pytest.raises(kfp_launcher.TaskFailedError) as failed:
        cluster.run(data=str(tmp_path), min_accuracy=0.0)
    assert failed.value.task == "AnomalyGate"
    assert "against the last validated data: distribution drift" in failed.value.log
    assert cluster.served() == served
