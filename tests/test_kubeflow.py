"""`digits compile`: from one `create_pipeline`, the open-source Kubeflow Pipelines target (PipelineSpec
2.1.0 YAML, loadable by the kfp SDK) and the Vertex AI target (PipelineJob JSON); every executor is the
project's image running TFX's container entrypoint on a class that imports; nothing a target cannot run;
and the image holds every package, data file and schema the spec names."""

import json
import os
import re

import pytest
import yaml
from kfp import components as kfp_components
from tfx.utils import import_utils

from cli import main
from pipeline import configs, kubeflow_runner
from pipeline.pipeline import ALWAYS_RUN
from tests import kfp_launcher

pytestmark = pytest.mark.component

IMAGE = "registry.example/digits:1"
ROOT = "gs://bucket/tfx"
DRIVER = ["python", "-m", "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver"]
TASKS = {
    "DigitExampleGen",
    "ImportSchemaGen",
    "StatisticsGen",
    "SchemaGen",
    "ExampleValidator",
    "AnomalyGate",
    "Transform",
    "Trainer",
    "ServedBaseline",
    "Evaluator",
    "ServingCanary",
    "ModelCard",
    "Pusher",
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compiled")
    paths = {}
    for target, name in (("kubeflow", "digits.yaml"), ("vertex", "digits.json")):
        paths[target] = str(folder / name)
        flags = ["--target", target, "--output-file", paths[target], "--image", IMAGE, "--pipeline-root", ROOT]
        assert main.main(["compile", *flags, "--profile", "standard", "--seed", "7"]) == 0
    assert sorted(os.listdir(folder)) == ["digits.json", "digits.yaml"]  # Nothing half-written beside them.
    with open(paths["kubeflow"]) as f:
        kubeflow = yaml.safe_load(f)
    with open(paths["vertex"]) as f:
        vertex = json.load(f)
    return {"kubeflow": kubeflow, "vertex": vertex["pipelineSpec"], "job": vertex, "paths": paths}


def _executors(spec):
    return {
        task: spec["deploymentSpec"]["executors"][spec["components"][t["componentRef"]["name"]]["executorLabel"]]
        for task, t in spec["root"]["dag"]["tasks"].items()
    }


@pytest.mark.parametrize("target", ["kubeflow", "vertex"])
def test_every_task_is_the_image_running_tfxs_entrypoint(compiled, target):
    spec = compiled[target]
    assert spec["schemaVersion"] == "2.1.0" and spec["pipelineInfo"]["name"] == configs.PIPELINE_NAME
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == TASKS
    for task, executor in _executors(spec).items():
        assert list(executor) == ["container"], (task, list(executor))  # No resolver, no importer.
        container = executor["container"]
        assert container["image"] == IMAGE and container["command"] == kubeflow_runner.ENTRYPOINT, task
        assert container["resources"] == kubeflow_runner.resources(task), task
        assert container["args"][:2] == ["--executor_class_path", container["args"][1]]
        assert "{{$}}" in container["args"], task
    # The gate orders Transform after validation though no artifact flows between them; the baseline
    # and the drift reference come from components every target runs, not from resolvers.
    assert "AnomalyGate" in tasks["Transform"]["dependentTasks"]
    baseline = tasks["Evaluator"]["inputs"]["artifacts"]["baseline_model"]["taskOutputArtifact"]
    assert baseline == {"producerTask": "ServedBaseline", "outputArtifactKey": "baseline"}
    parameters = {k: v["runtimeValue"]["constant"] for k, v in tasks["ServedBaseline"]["inputs"]["parameters"].items()}
    assert parameters == {"serving_model_dir": f"{ROOT}/serving_model/{configs.PIPELINE_NAME}"}
    reference = tasks["AnomalyGate"]["inputs"]["parameters"]["reference"]["runtimeValue"]["constant"]
    assert reference == f"{ROOT}/validated_statistics_reference.txt"
    # Never from a cache: what reads state outside its inputs (and, on KFP, ingestion).
    uncached = {task for task, t in tasks.items() if not t.get("cachingOptions", {}).get("enableCache")}
    assert uncached == (set(ALWAYS_RUN) & set(tasks)) | ({"DigitExampleGen"} if target == "kubeflow" else set())
    # The training flags reached the Trainer, and the paths the pods read are inside the image.
    trainer_config = json.loads(tasks["Trainer"]["inputs"]["parameters"]["custom_config"]["runtimeValue"]["constant"])
    assert trainer_config["seed"] == 7 and trainer_config["epochs"] == configs.PROFILES["standard"].trainer.epochs
    schema_file = tasks["ImportSchemaGen"]["inputs"]["parameters"]["schema_file"]["runtimeValue"]["constant"]
    assert schema_file == configs.KUBEFLOW_SCHEMA_PATH == "/app/schema/schema.pbtxt"
    input_base = tasks["DigitExampleGen"]["inputs"]["parameters"]["input_base"]["runtimeValue"]["constant"]
    assert input_base == configs.KUBEFLOW_DATA_ROOT == "/app/data/mnist"


def test_the_open_source_target_is_a_pipeline_spec_kfp_loads(compiled):
    spec = compiled["kubeflow"]
    assert spec["defaultPipelineRoot"] == ROOT
    # The launcher of the open-source backend runs no lifecycle hooks: there are none.
    assert not any("lifecycle" in e["container"] for e in _executors(spec).values())
    for task in spec["root"]["dag"]["tasks"]:
        kfp_launcher.container(spec, task)
    # Under gs:// the state is in the bucket: no volume to mount, a single YAML document.
    with open(compiled["paths"]["kubeflow"]) as f:
        assert len([d for d in yaml.safe_load_all(f) if d]) == 1
    loaded = kfp_components.load_component_from_file(compiled["paths"]["kubeflow"])
    assert loaded.name == configs.PIPELINE_NAME and loaded.pipeline_spec.schema_version == "2.1.0"
    assert set(loaded.pipeline_spec.root.dag.tasks) == TASKS


def test_the_vertex_target_is_a_pipeline_job_with_the_ingestion_driver(compiled):
    assert compiled["job"]["runtimeConfig"]["gcsOutputDirectory"] == ROOT
    ingestion = _executors(compiled["vertex"])["DigitExampleGen"]["container"]
    assert ingestion["lifecycle"]["preCacheCheck"]["command"] == DRIVER


def test_under_minio_every_task_mounts_the_state_volume(tmp_path):
    """The backend's own root (the default): the served models and the drift reference live on the
    PersistentVolumeClaim, which the tasks that use it mount in the platform spec (kfp-kubernetes' format)."""
    path = str(tmp_path / "digits.yaml")
    assert main.main(["compile", "--target", "kubeflow", "--output-file", path, "--image", IMAGE]) == 0
    spec, platform = kfp_launcher.load(path)
    assert spec["defaultPipelineRoot"] == configs.KUBEFLOW_PIPELINE_ROOT == "minio://mlpipeline/v2/artifacts"
    tasks = spec["root"]["dag"]["tasks"]
    parameters = {k: v["runtimeValue"]["constant"] for k, v in tasks["ServedBaseline"]["inputs"]["parameters"].items()}
    assert parameters == {"serving_model_dir": f"{configs.KUBEFLOW_STATE_MOUNT}/serving_model/{configs.PIPELINE_NAME}"}
    reference = tasks["AnomalyGate"]["inputs"]["parameters"]["reference"]["runtimeValue"]["constant"]
    assert reference == f"{configs.KUBEFLOW_STATE_MOUNT}/validated_statistics_reference.txt"
    volume = (configs.KUBEFLOW_STATE_PVC, configs.KUBEFLOW_STATE_MOUNT)
    mounting = {task for task in tasks if kfp_launcher.pvc_mounts(platform, spec, task) == [volume]}
    assert mounting == {"ServedBaseline", "AnomalyGate", "Pusher"}
    assert all(kfp_launcher.pvc_mounts(platform, spec, task) == [] for task in set(tasks) - mounting)
    # The form both KFP 2.2 (strict, no pvcNameParameter) and 2.5 read; kfp loads the file.
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert {json.dumps(c, sort_keys=True) for c in executors.values()} == {
        json.dumps({"pvcMount": [{"constant": "digits-state", "mountPath": "/digits-state"}]}, sort_keys=True)
    }
    assert kfp_components.load_component_from_file(path).name == configs.PIPELINE_NAME


def _dockerfile_copies() -> set:
    with open(kfp_launcher.DOCKERFILE) as f:
        return {m.group(1) for m in re.finditer(r"^COPY (\S+) \1$", f.read(), re.MULTILINE)}


def test_the_image_holds_what_the_spec_names(compiled):
    """Every executor class imports in the project's environment (which the image installs from the same
    lock), from a package the Dockerfile copies; the data and schema paths are the copied folders."""
    with open(kfp_launcher.DOCKERFILE) as f:
        dockerfile = f.read()
    assert "uv pip install --system --no-cache --compile-bytecode -r requirements/requirements.lock" in dockerfile
    assert "uv pip install --system --no-cache --no-deps -e ." in dockerfile
    copied = _dockerfile_copies()
    for target in ("kubeflow", "vertex"):
        for task, executor in _executors(compiled[target]).items():
            class_path = executor["container"]["args"][1]
            assert import_utils.import_class_by_path(class_path), (task, class_path)
            package = class_path.split(".")[0]
            assert package == "tfx" or package in copied, (task, class_path, copied)
    for inside in (configs.KUBEFLOW_SCHEMA_PATH, configs.KUBEFLOW_DATA_ROOT):
        relative = os.path.relpath(inside, configs.KUBEFLOW_APP_ROOT)
        assert relative.split(os.sep)[0] in copied and os.path.exists(os.path.join(configs.PROJECT_ROOT, relative))
    # Every package setup.py installs is in the image (the editable install finds them at /app).
    packages = {
        p for p in os.listdir(configs.PROJECT_ROOT) if os.path.isfile(f"{configs.PROJECT_ROOT}/{p}/__init__.py")
    }
    assert packages - {"tests", "benchmarks"} <= copied
    # Tasks run unprivileged, and can write the launcher's folders and the state volume's mount point.
    users = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    made = re.search(r"mkdir -p ([^\\&\n]+)", dockerfile).group(1).split()
    assert set(made) >= {"/minio", "/s3", "/gcs", configs.KUBEFLOW_STATE_MOUNT}
