"""The compiled Kubeflow Pipelines spec, run task by task on the KFP backend's contract
(`tests/kfp_launcher.py`: artifacts on an S3 server, inputs typed blank and named by store ids, metadata
round-tripped through the store, an `executor-logs` output, each task a fresh process in a private mount
namespace), with the gate's semantics of a local run: a first run with no baseline and no reference
pushes; a second run on the same volume, under an `s3://` root, sees the first's served model as its
baseline and its statistics as the drift reference, and a one-step model under an impossible bar pushes
nothing. (The gate stopping a run on bad data is the same code locally: `tests/test_data_faults.py`.)"""

import dataclasses
import os

import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma

from components.anomaly_gate import REFERENCE_COPIES
from components.baseline import SERVED_VERSION
from models import features
from pipeline import configs, kubeflow_runner
from tests import kfp_launcher, support

pytestmark = [
    pytest.mark.component,
    pytest.mark.skipif(kfp_launcher.runnable() is not None, reason=str(kfp_launcher.runnable())),
]

IMAGE = "registry.example/team/digits-tfx:1"


@dataclasses.dataclass
class Project:
    """Compiles the smoke pipeline as `digits compile` would, and runs it on a cluster."""

    cluster: kfp_launcher.Cluster
    folder: str
    count: int = 0

    @property
    def volume(self) -> str:
        return self.cluster.volume(configs.KUBEFLOW_STATE_PVC)

    @property
    def serving_model_dir(self) -> str:
        return configs.serving_model_dir(self.volume, features.MODEL_NAME)

    def served(self):
        return sorted(os.listdir(self.serving_model_dir)) if os.path.isdir(self.serving_model_dir) else []

    def in_pod(self, path: str) -> str:
        """A path on the state volume as the pods see it."""
        return os.path.join(configs.KUBEFLOW_STATE_MOUNT, os.path.relpath(path, self.volume))

    def run(
        self, data: str = configs.DATA_ROOT, pipeline_root: str = "", kfp_version: str = "2.5", **overrides
    ) -> kfp_launcher.Run:
        self.count += 1
        trainer = {k: overrides.pop(k) for k in ("epochs", "steps_per_epoch") if k in overrides}
        settings = configs.settings("smoke", data_root=data, schema_path=configs.SCHEMA_PATH, **overrides)
        settings = dataclasses.replace(settings, trainer=dataclasses.replace(settings.trainer, **trainer))
        spec = kubeflow_runner.compile_pipeline(
            settings, os.path.join(self.folder, f"spec-{self.count}.yaml"), pipeline_root=pipeline_root, image=IMAGE
        )
        # As `kfp.Client().create_run_from_pipeline_package(spec, pipeline_root=...)`.
        return self.cluster.run(spec, f"run-{self.count}", pipeline_root or None, kfp_version)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kfp")
    cluster = kfp_launcher.Cluster(str(folder / "cluster"), kfp_version="2.5")
    yield Project(cluster, str(folder))
    cluster.stop()


@pytest.fixture(scope="module")
def first(project):
    """The README's way: compiled without a root, run without one: the backend's `minio://` default."""
    return project.run(min_accuracy=0.5)


def test_first_run_pushes_without_baseline_or_reference(project, first):
    assert first.pipeline_root == configs.KUBEFLOW_PIPELINE_ROOT + "/digits/run-1"
    assert "store_session_info" in first.metadata("DigitExampleGen", "examples")  # KFP 2.5's round trip.
    assert first.metadata("ServedBaseline", "baseline")[SERVED_VERSION] == 0
    assert "No model served from" in first.logs["ServedBaseline"]
    assert "No drift check: no data passed this gate before" in first.logs["AnomalyGate"]
    assert "evaluating the candidate alone" in first.logs["Evaluator"]
    assert first.metadata("Evaluator", "blessing")["blessed"] == 1
    # The canary served the candidate from inside its task (the project's server in a subprocess).
    assert first.metadata("ServingCanary", "blessing")["blessed"] == 1
    assert first.metadata("Pusher", "pushed_model")["pushed"] == 1
    (version,) = project.served()
    model = tf.saved_model.load(os.path.join(project.serving_model_dir, version))
    pixels, labels = support.mnist_digits("t10k", 100)
    answers = model.signatures[features.IMAGES_SIGNATURE](**{features.IMAGES_INPUT: tf.constant(pixels, tf.float32)})
    assert (answers[features.DIGIT_OUTPUT].numpy() == labels).mean() > 0.5
    # Ingestion ran without TFX's driver, and still recorded what it read.
    examples = first.metadata("DigitExampleGen", "examples")
    assert examples["input_fingerprint"].startswith("split:train,num_files:2") and examples["custom:span"] == 0
    assert "Verified 4 checksums" in first.logs["DigitExampleGen"]
    # Artifacts are on the object store, under their store URIs (not the pods' local copies).
    uri = first.uri("DigitExampleGen", "examples")
    assert uri.startswith(first.pipeline_root + "/DigitExampleGen/")
    keys = project.cluster.objects.keys(uri)
    assert {k.split("/")[-2] for k in keys} >= {"Split-train", "Split-eval", "Split-test"}
    # Every task's log is its executor-logs artifact, beside the outputs TFX wrote.
    logs = project.cluster.objects.keys(first.uri("Trainer", kfp_launcher.EXECUTOR_LOGS))
    assert [k.split("/")[-1] for k in logs] == ["log.txt"]
    # The gate recorded the data as the next run's drift reference, on the state volume.
    with open(configs.reference_file(project.volume)) as f:
        kept = f.read().strip()
    assert os.path.dirname(kept) == os.path.join(configs.KUBEFLOW_STATE_MOUNT, REFERENCE_COPIES)
    # What each pod needed, against what the spec asks the cluster for.
    for task, peak_mb in first.peak_mb.items():
        assert peak_mb < kubeflow_runner.resources(task)["memoryRequest"] * 1000, (task, first.peak_mb)


def test_a_second_run_sees_the_first_as_baseline_and_reference(project, first):
    """One training step against an accuracy bar of 100%: the Evaluator refuses it on both counts, the
    bar and the served model (the baseline ServedBaseline found on the volume, with the reference the
    gate kept there). The cluster is KFP 2.2 this time (no `executor-logs`, no `store_session_info`),
    and the run's root an `s3://` bucket: state stays on the volume whatever the root."""
    served = project.served()
    with open(configs.reference_file(project.volume)) as f:
        reference = f.read().strip()
    root = "s3://digits-artifacts/tfx"
    run = project.run(pipeline_root=root, min_accuracy=1.0, epochs=1, steps_per_epoch=1, kfp_version="2.2")
    assert project.cluster.objects.keys(f"{root}/digits") and run.pipeline_root.startswith(root)
    assert kfp_launcher.EXECUTOR_LOGS not in run.outputs["Trainer"]
    assert "store_session_info" not in run.metadata("Trainer", "model")
    assert run.metadata("ServedBaseline", "baseline")[SERVED_VERSION] == int(served[-1])
    assert "evaluating the candidate alone" not in run.logs["Evaluator"]
    assert f"Drift check against the last validated statistics, {reference}" in run.logs["AnomalyGate"]
    evaluation = os.path.join(project.folder, "evaluation")
    project.cluster.objects.download(run.uri("Evaluator", "evaluation"), evaluation)
    validation = tfma.load_validation_result(evaluation)
    failures = [f for s in validation.metric_validations_per_slice for f in s.failures]
    kinds = {"change" if f.metric_key.is_diff else "value" for f in failures}
    assert kinds == {"change", "value"}, failures
    assert run.metadata("Evaluator", "blessing")["blessed"] == 0
    assert run.metadata("Pusher", "pushed_model")["pushed"] == 0
    assert project.served() == served


def test_vertex_runs_tfxs_ingestion_driver_before_the_executor(tmp_path):
    """Vertex AI runs the `lifecycle.preCacheCheck` hook (TFX's FileBasedExampleGen driver) first, with the
    same ExecutorInput and output file; the span it reports as a float and the version it leaves out
    reach DigitExampleGen's executor. Ingestion only: the rest of a Vertex run needs `gs://`, which no GCS
    emulator from PyPI serves to TensorFlow (docs/kubeflow.md), so its artifacts go to the S3 server."""
    cluster = kfp_launcher.Cluster(str(tmp_path / "vertex"), vertex=True)
    try:
        settings = configs.settings("smoke", data_root=configs.DATA_ROOT, schema_path=configs.SCHEMA_PATH)
        job = kubeflow_runner.compile_pipeline(settings, str(tmp_path / "job.json"), "vertex", "gs://b/tfx", IMAGE)
        run = cluster.run(job, "vertex-1", configs.KUBEFLOW_PIPELINE_ROOT, only=[kubeflow_runner.INGESTION])
        assert cluster.objects.keys(run.uri(kubeflow_runner.INGESTION, "examples"))
    finally:
        cluster.stop()
    log = run.logs[kubeflow_runner.INGESTION]
    assert "Calculated span: 0" in log and "Calculated fingerprint: split:train,num_files:2" in log
    examples = run.metadata(kubeflow_runner.INGESTION, "examples")
    assert examples["custom:span"] == 0 and examples["input_fingerprint"].startswith("split:train,num_files:2")
    assert "version" not in examples and "custom:version" not in examples
