"""`compile --target kubeflow`: the spec parses with KFP's own proto and holds every component."""

import json

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import configs, kubeflow_runner

pytestmark = pytest.mark.component

COMPONENTS = {
    "DigitExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "AnomalyGate",
    "Transform",
    "Trainer",
    "Evaluator",
    "Pusher",
}


def test_compiled_spec_has_every_component(tmp_path):
    path = kubeflow_runner.compile_pipeline(
        configs.settings("standard"), str(tmp_path / "spec" / "digits.json"), image="registry.example/digits:1"
    )
    with open(path) as f:
        job = json.load(f)
    spec = json_format.ParseDict(
        job.get("pipelineSpec", job), pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=True
    )
    assert spec.pipeline_info.name == configs.PIPELINE_NAME
    tasks = spec.root.dag.tasks
    assert set(tasks) >= COMPONENTS, f"missing: {COMPONENTS - set(tasks)}"
    # KFP has no resolver node: the compiler turns it into tasks that query the metadata store.
    baseline = tasks["Evaluator"].inputs.artifacts["baseline_model"].task_output_artifact.producer_task
    assert baseline.startswith("latest_blessed_model_resolver") and baseline in tasks
    reference = tasks["AnomalyGate"].inputs.artifacts["reference_statistics"].task_output_artifact.producer_task
    assert reference.startswith("latest_validated_statistics_resolver") and reference in tasks
    # The gate orders Transform after validation even though no artifact flows between them.
    assert "AnomalyGate" in tasks["Transform"].dependent_tasks
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"].values()
    images = {e["container"]["image"] for e in executors if "container" in e}
    assert images == {"registry.example/digits:1"}
    # Paths the pods read are inside the image, not on the machine that compiled the spec.
    schema_file = tasks["ImportSchemaGen"].inputs.parameters["schema_file"].runtime_value.constant_value.string_value
    assert schema_file == configs.KUBEFLOW_SCHEMA_PATH == "/app/schema/schema.pbtxt"
    assert list(tmp_path.joinpath("spec").iterdir()) == [tmp_path / "spec" / "digits.json"]
