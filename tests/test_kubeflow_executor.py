"""The Kubeflow task entrypoint and the compile checks, on the exact shapes the KFP backend produces
(kubeflow/pipelines 2.2.0-2.5.0, `tests/kfp_launcher.py` cites the lines): each of the ways TFX 1.16's
own entrypoint or the compiled spec fails on a real backend, and what the project does instead."""

import json
import os

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.components.example_gen import driver as example_gen_driver
from tfx.components.example_gen import utils as example_gen_utils
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils
from tfx.types import standard_artifacts

from components.digit_example_gen import executor as example_gen_executor
from pipeline import configs, kubeflow_executor, kubeflow_runner
from serving.model_store import publish_version

EXAMPLES_SCHEMA = "title: tfx.Examples\ntype: object\n"
INPUTS_SPEC = {
    "artifacts": {"examples": {"artifactType": {"instanceSchema": EXAMPLES_SCHEMA}}},
    "parameters": {"model_name": {"parameterType": "STRING"}},
}
SESSION = '{"provider":"minio","params":{"endpoint":"minio-service.kubeflow:9000","region":"minio"}}'


def _executor_input(outputs=None):
    """What KFP 2.5's driver hands a task with one upstream Examples artifact: named by its store id,
    typed blank, its metadata as the store returns it; an `executor-logs` output beside the task's own."""
    return {
        "inputs": {
            "parameterValues": {"model_name": "digits"},
            "artifacts": {
                "examples": {
                    "artifacts": [
                        {
                            "name": "17",
                            "uri": "minio://mlpipeline/v2/artifacts/digits/run/DigitExampleGen/5e1f/examples",
                            "type": {"instanceSchema": ""},
                            "metadata": {
                                "split_names": '["train", "eval", "test"]',
                                "span": 0.0,
                                "custom:span": 0.0,
                                "input_fingerprint": "split:train,num_files:2",
                                "display_name": "examples",
                                "store_session_info": SESSION,
                            },
                        }
                    ]
                }
            },
        },
        "outputs": {
            "artifacts": outputs
            or {
                "blessing": {
                    "artifacts": [
                        {
                            "type": {"instanceSchema": "title: tfx.InfraBlessing\ntype: object\n"},
                            "uri": "minio://mlpipeline/v2/artifacts/digits/run/ServingCanary/9a0c/blessing",
                            "metadata": {},
                        }
                    ]
                },
                "executor-logs": {
                    "artifacts": [
                        {
                            "type": {"schemaTitle": "system.Artifact"},
                            "uri": "minio://mlpipeline/v2/artifacts/digits/run/ServingCanary/9a0c/executor-logs",
                            "metadata": {},
                        }
                    ]
                },
            },
            "outputFile": "/tmp/kfp_outputs/output_metadata.json",
        },
    }


def _parsed(executor_input: dict) -> pipeline_spec_pb2.ExecutorInput:
    message = pipeline_spec_pb2.ExecutorInput()
    json_format.ParseDict(executor_input, message)
    return message


def test_tfx_alone_crashes_on_what_the_open_source_backend_passes():
    """tensorflow/tfx#7768 (the blank input type) and the `executor-logs` output: TFX 1.16's own parsing
    fails on both. If TFX fixes them, this test says the workaround can go."""
    message = _parsed(_executor_input())
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'get'"):
        kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(message.inputs.artifacts)
    with pytest.raises(ImportError, match="system.Artifact"):
        kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(message.outputs.artifacts)


def test_prepared_input_is_what_tfx_reads():
    prepared, mapped = kubeflow_executor.prepare(json.dumps(_executor_input()), json.dumps(INPUTS_SPEC))
    message = _parsed(json.loads(prepared))
    inputs = kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(message.inputs.artifacts)
    outputs = kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(message.outputs.artifacts)
    (examples,) = inputs["examples"]
    assert isinstance(examples, standard_artifacts.Examples)
    # The store's round trip as TFX takes it: the span a double again an int, the rest custom properties.
    assert examples.span == 0 and examples.split_names == '["train", "eval", "test"]'
    assert examples.get_string_custom_property("display_name") == "examples"
    # Store URIs become the launcher's local copies; the launcher's own output is left to it.
    assert examples.uri == "/minio/mlpipeline/v2/artifacts/digits/run/DigitExampleGen/5e1f/examples"
    assert sorted(outputs) == ["blessing"]
    assert outputs["blessing"][0].uri == "/minio/mlpipeline/v2/artifacts/digits/run/ServingCanary/9a0c/blessing"
    assert mapped[examples.uri] == _executor_input()["inputs"]["artifacts"]["examples"]["artifacts"][0]["uri"]


def test_a_blank_type_with_nothing_declared_names_the_input():
    with pytest.raises(kubeflow_executor.ExecutorInputError, match="input artifact 'examples'"):
        kubeflow_executor.prepare(json.dumps(_executor_input()), json.dumps({"parameters": {}}))


@pytest.mark.parametrize(
    "uri, local",
    [
        ("minio://mlpipeline/v2/artifacts/x/y", "/minio/mlpipeline/v2/artifacts/x/y"),
        ("s3://bucket/tfx/x", "/s3/bucket/tfx/x"),
        ("gs://bucket/tfx/x", "gs://bucket/tfx/x"),  # TensorFlow and Beam open gs:// themselves.
        ("/local/folder", "/local/folder"),
    ],
)
def test_store_uris_are_read_where_the_launcher_puts_them(uri, local):
    assert kubeflow_executor.local_path(uri) == local


def test_the_executor_output_names_store_uris_again(tmp_path):
    output_file = tmp_path / "output_metadata.json"
    local = "/minio/mlpipeline/v2/artifacts/digits/run/Trainer/1/model"
    store = "minio://mlpipeline/v2/artifacts/digits/run/Trainer/1/model"
    output_file.write_text(json.dumps({"artifacts": {"model": {"artifacts": [{"uri": local, "metadata": {}}]}}}))
    kubeflow_executor.restore_uris(str(output_file), {local: store})
    written = json.loads(output_file.read_text())
    assert written["artifacts"]["model"]["artifacts"][0]["uri"] == store
    json_format.ParseDict(written, pipeline_spec_pb2.ExecutorOutput())  # Still what the launcher parses.


def test_local_output_folders_are_made_before_the_executor_runs(tmp_path):
    """The launcher makes only their parents; executors such as the canary's write straight into them.
    Outputs on a store TensorFlow opens itself are left as TFX leaves them."""
    blessing = {"type": {"instanceSchema": "title: tfx.InfraBlessing\n"}, "uri": str(tmp_path / "local" / "blessing")}
    model = {"type": {"instanceSchema": "title: tfx.Model\n"}, "uri": str(tmp_path / "direct" / "model")}
    executor_input = {
        "outputs": {"artifacts": {"blessing": {"artifacts": [blessing]}, "model": {"artifacts": [model]}}}
    }
    kubeflow_executor.make_local_output_dirs(executor_input, {blessing["uri"]: "minio://b/blessing"})
    assert os.path.isdir(blessing["uri"]) and not os.path.exists(tmp_path / "direct")


def test_vertex_ingestion_takes_the_drivers_span_and_missing_version():
    """Vertex AI runs TFX's ingestion driver first; its ExecutorOutput carries `span` as a JSON number
    and, for patterns without {VERSION}, no version. TFX's own update fails on both."""
    from ml_metadata.proto import metadata_store_pb2
    from tfx.proto import example_gen_pb2

    driver_said = {
        example_gen_utils.SPAN_PROPERTY_NAME: 0.0,
        example_gen_utils.FINGERPRINT_PROPERTY_NAME: "split:train,num_files:2,total_bytes:1",
        "input_config": json_format.MessageToJson(example_gen_pb2.Input()),
    }
    with pytest.raises((TypeError, KeyError)):
        example_gen_driver.update_output_artifact(driver_said, metadata_store_pb2.Artifact())
    fixed = example_gen_executor.fingerprint_inputs(driver_said)
    assert fixed[example_gen_utils.SPAN_PROPERTY_NAME] == 0 and fixed[example_gen_utils.VERSION_PROPERTY_NAME] is None
    artifact = metadata_store_pb2.Artifact()
    example_gen_driver.update_output_artifact(fixed, artifact)
    assert artifact.custom_properties["span"].int_value == 0 and "version" not in artifact.custom_properties


def test_the_canary_copies_a_model_from_any_tensorflow_file_system(tmp_path):
    """A pipeline on gs:// hands the canary a remote model; `ram://` is TensorFlow's in-memory file
    system, another that is not the local disk."""
    import tensorflow as tf

    source = f"ram://{tmp_path.name}/model"
    tf.io.gfile.makedirs(f"{source}/variables")
    for name, content in (("saved_model.pb", "graph"), ("variables/variables.index", "index")):
        with tf.io.gfile.GFile(f"{source}/{name}", "w") as f:
            f.write(content)
    target = publish_version(source, str(tmp_path / "digits"), 1)
    assert open(os.path.join(target, "saved_model.pb")).read() == "graph"
    assert open(os.path.join(target, "variables", "variables.index")).read() == "index"


SETTINGS = configs.settings("smoke")


@pytest.mark.parametrize(
    "target, root, message",
    [
        ("kubeflow", "/tfx/pipelines", "a path without a scheme is refused by the backend"),
        ("kubeflow", "file:///tfx", "gs://BUCKET/PATH or minio://BUCKET/PATH or s3://BUCKET/PATH"),
        ("kubeflow", "minio://", "minio://BUCKET/PATH"),
        ("vertex", "minio://mlpipeline/v2/artifacts", "the vertex target keeps artifacts in an object store, gs://"),
        ("vertex", "", "Vertex AI keeps a run's artifacts in a gs:// bucket"),
    ],
)
def test_a_root_the_backend_cannot_use_is_refused(tmp_path, target, root, message):
    with pytest.raises(kubeflow_runner.CompileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        kubeflow_runner.compile_pipeline(SETTINGS, str(tmp_path / "spec"), target, root, "registry.example/d:1")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("image", ["", "digits-tfx:latest", "registry.example/digits-tfx", "registry.example/d:latest"])
def test_an_image_a_cluster_cannot_pin_is_refused(tmp_path, image):
    with pytest.raises(kubeflow_runner.CompileError, match="tag other than latest or a digest"):
        kubeflow_runner.compile_pipeline(SETTINGS, str(tmp_path / "spec"), "kubeflow", "gs://b/r", image)


@pytest.mark.parametrize(
    "image", ["registry.example/team/digits-tfx:1.0", "localhost:5000/digits:2", f"ghcr.io/a/b@sha256:{'0' * 64}"]
)
def test_a_pinned_image_in_a_registry_is_taken(image):
    assert kubeflow_runner.check_image(image) == image


def test_the_cli_says_what_is_wrong_without_a_stack_trace(capsys):
    from cli import main

    flags = ["compile", "--target", "kubeflow", "--image", "registry.example/d:1", "--pipeline-root", "/tfx"]
    assert main.main(flags) == 2
    error = capsys.readouterr().err
    assert error.startswith("digits compile: --pipeline-root '/tfx'") and "Traceback" not in error


def test_every_task_has_requests_and_limits_in_both_forms():
    trainer, other = kubeflow_runner.resources("Trainer"), kubeflow_runner.resources("Pusher")
    assert trainer["memoryLimit"] > other["memoryLimit"] and trainer["cpuLimit"] > other["cpuLimit"]
    for given in (trainer, other):
        assert given["cpuRequest"] <= given["cpuLimit"] and given["memoryRequest"] <= given["memoryLimit"]
        assert given["resourceMemoryLimit"] == f"{given['memoryLimit']:g}G"
        assert given["resourceCpuLimit"] == f"{given['cpuLimit']:g}"
        # KFP 2.2 reads the numbers, 2.5 the strings; both are what the pipeline spec's proto holds.
        json_format.ParseDict(given, pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec())
