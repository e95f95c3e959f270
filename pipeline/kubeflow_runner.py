"""Compiles the pipeline for Kubeflow Pipelines: the open-source KFP 2.x backend, or Vertex AI Pipelines.

Both targets are compiled by TFX's KubeflowV2DagRunner from the same `create_pipeline`, as PipelineSpec
schema 2.1.0, and then adjusted for what the orchestrator runs (docs/kubeflow.md says why;
`tests/kfp_launcher.py` cites the backend's source for each point):

- Every task runs `pipeline.kubeflow_executor`, TFX's entrypoint given an ExecutorInput it can read (the
  open-source driver types inputs blank, KFP 2.5 adds an `executor-logs` output, artifacts live on
  `minio://` and `s3://` stores that TensorFlow cannot open).
- `kubeflow` (open-source KFP 2.x): the PipelineSpec as YAML, what its UI and `kfp.Client` upload. Its
  backend does not run TFX's FileBasedExampleGen driver (`lifecycle.preCacheCheck`, which fingerprints
  the input files so that unchanged data is a cache hit on Vertex AI), so the hook is left out and
  DigitExampleGen, which then fingerprints its files itself, is never taken from KFP's cache: a changed
  file at the same path is always read. Under a `minio://` or `s3://` root the served models and the
  drift reference live on a PersistentVolumeClaim that the tasks using them mount (a second YAML
  document, the Kubernetes platform spec of kfp-kubernetes); under `gs://`, in the bucket.
- `vertex` (Vertex AI Pipelines): the PipelineJob JSON, driver included; `gs://` roots only.

Every task carries CPU and memory requests and limits (`configs.KUBEFLOW_RESOURCES`), in the fields
both KFP 2.2 (numbers) and 2.5 (strings) read. The tasks `always_run` names (the served baseline, the
anomaly gate, and ingestion when it reads a feedback root) are never cached, as locally. No metadata
connection is compiled in: the orchestrator provides its own.
"""

import json
import os
import re
import tempfile
from typing import Any, Dict, List

import yaml
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2 as kubernetes_config
from tfx import v1 as tfx

from components.digit_example_gen import component as example_gen
from pipeline import configs
from pipeline.pipeline import always_run, create_pipeline

KUBEFLOW, VERTEX = configs.KUBEFLOW_TARGETS
INGESTION = "DigitExampleGen"
SCHEMA_VERSION = "2.1.0"
ENTRYPOINT = ["python", "-m", "pipeline.kubeflow_executor"]
"""Every task's command (TFX compiles `python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor`,
which `pipeline.kubeflow_executor` wraps)."""
IMAGE_TAG = re.compile(r"^(?P<repository>[^@\s]+/[^@:\s]+)(:(?P<tag>[\w][\w.-]{0,127})|@sha256:[0-9a-f]{64})$")
"""`registry/path/name:tag` or `...@sha256:<digest>`: an image a cluster can pull, pinned."""


class CompileError(ValueError):
    """A setting the target cannot run with; the message says which and what to use instead."""


def check_image(image: str) -> str:
    """The image, if a cluster can pull it and it is pinned (a tag other than latest, or a digest)."""
    match = IMAGE_TAG.match(image or "")
    if not match or match.group("tag") == "latest":
        raise CompileError(
            f"--image {image!r}: name this project's image in a registry the cluster pulls from, with a tag "
            "other than latest or a digest (e.g. registry.example.com/team/digits-tfx:1.0); a :latest image is "
            "pulled again for every pod and can change between the tasks of one run"
        )
    return image


def check_root(target: str, pipeline_root: str) -> str:
    """The root, without a trailing slash, if the target's backend can keep artifacts there."""
    schemes = configs.KUBEFLOW_ROOT_SCHEMES[target]
    if not pipeline_root.startswith(schemes) or not re.match(r"^[a-z0-9]+://[^/?]+", pipeline_root):
        raise CompileError(
            f"--pipeline-root {pipeline_root!r}: the {target} target keeps artifacts in an object store, "
            f"{' or '.join(s + 'BUCKET/PATH' for s in schemes)}"
            + (" (a path without a scheme is refused by the backend)" if "://" not in pipeline_root else "")
        )
    return pipeline_root.rstrip("/")


def state_root(pipeline_root: str) -> str:
    """Where the served models and the drift reference live: under the root when TensorFlow opens its
    store, else on the state volume."""
    if pipeline_root.startswith(configs.TENSORFLOW_SCHEMES):
        return pipeline_root
    return configs.KUBEFLOW_STATE_MOUNT


def _pipeline_job(settings: configs.Settings, pipeline_root: str, image: str) -> Dict[str, Any]:
    """The PipelineJob TFX compiles (as a dict), for both targets."""
    data_root = settings.data_root or configs.KUBEFLOW_DATA_ROOT
    if os.path.isdir(data_root):
        input_config = example_gen.detect_input_config(data_root)
    else:  # A bucket, or a path inside the image: MNIST's IDX file names.
        input_config = example_gen.split_patterns(example_gen.IDX_TRAIN, example_gen.IDX_TEST)
    state = state_root(pipeline_root)
    pipeline = create_pipeline(
        pipeline_root=pipeline_root,
        data_root=data_root,
        schema_path=settings.schema_path or configs.KUBEFLOW_SCHEMA_PATH,
        serving_model_dir=configs.serving_model_dir(state, settings.model_name),
        reference_file=configs.reference_file(state),
        input_config=input_config,
        **configs.pipeline_values(settings, data_root),
    )
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image, use_pipeline_spec_2_1=True
        ),
    )
    return runner.run(pipeline, write_out=False)


def _executor_label(spec: Dict[str, Any], task: str) -> str:
    return spec["components"][spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]]["executorLabel"]


def _executor(spec: Dict[str, Any], task: str) -> Dict[str, Any]:
    return spec["deploymentSpec"]["executors"][_executor_label(spec, task)]


def resources(task: str) -> Dict[str, Any]:
    """The container's `resources`: KFP 2.2 reads the numbers (GB of memory), 2.5 the strings."""
    chosen = configs.KUBEFLOW_TASK_RESOURCES.get(task, configs.KUBEFLOW_RESOURCES)
    return {
        "cpuRequest": chosen.cpu_request,
        "cpuLimit": chosen.cpu_limit,
        "memoryRequest": chosen.memory_request,
        "memoryLimit": chosen.memory_limit,
        "resourceCpuRequest": f"{chosen.cpu_request:g}",
        "resourceCpuLimit": f"{chosen.cpu_limit:g}",
        "resourceMemoryRequest": f"{chosen.memory_request:g}G",
        "resourceMemoryLimit": f"{chosen.memory_limit:g}G",
    }


def adjust_for(target: str, spec: Dict[str, Any]) -> Dict[str, Any]:
    """What `target` can run, out of the PipelineSpec TFX compiled (changed in place, and returned)."""
    tasks = spec["root"]["dag"]["tasks"]
    uncached = [name for name, task in tasks.items() if always_run(name, task.get("inputs", {}).get("parameters", {}))]
    if target == KUBEFLOW:
        _executor(spec, INGESTION)["container"].pop("lifecycle", None)
        uncached.append(INGESTION)
    for task in uncached:
        tasks[task].pop("cachingOptions", None)
    for task in tasks:
        container = _executor(spec, task)["container"]
        container["command"] = list(ENTRYPOINT)
        container["resources"] = resources(task)
    return spec


def state_tasks(spec: Dict[str, Any]) -> List[str]:
    """The tasks that read or write the state volume: those a parameter of which names a path on it
    (the served baseline, the gate, the Pusher). Only they mount it, so that a ReadWriteOnce claim binds
    as few pods as it can."""
    prefix = configs.KUBEFLOW_STATE_MOUNT + "/"
    return sorted(
        name
        for name, task in spec["root"]["dag"]["tasks"].items()
        if any(
            prefix in json.dumps(p.get("runtimeValue", {}))
            for p in task.get("inputs", {}).get("parameters", {}).values()
        )
    )


def platform_spec(spec: Dict[str, Any]) -> Dict[str, Any]:
    """The Kubernetes platform spec (kfp-kubernetes' format) mounting the state volume in the tasks that
    use it.

    The PVC is named as a constant, the form KFP 2.2's driver parses (it refuses the newer
    `pvcNameParameter`) and 2.5's still reads."""
    mount = kubernetes_config.PvcMount(constant=configs.KUBEFLOW_STATE_PVC, mount_path=configs.KUBEFLOW_STATE_MOUNT)
    config = json_format.MessageToDict(kubernetes_config.KubernetesExecutorConfig(pvc_mount=[mount]))
    executors = sorted(_executor_label(spec, task) for task in state_tasks(spec))
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {e: config for e in executors}}}}}


def compile_pipeline(
    settings: configs.Settings,
    output_file: str,
    target: str = KUBEFLOW,
    pipeline_root: str = "",
    image: str = "",
) -> str:
    """Writes the target's file to `output_file` (whole or not at all) and returns its path.

    Paths inside the image (the schema, the default data) are the Dockerfile's. The data layout is
    detected when the data root is readable from here; otherwise MNIST IDX file names are assumed.
    Raises CompileError for a root or an image the target cannot use.
    """
    if target not in configs.KUBEFLOW_TARGETS:
        raise CompileError(f"Unknown target {target!r}: expected one of {', '.join(configs.KUBEFLOW_TARGETS)}")
    if not pipeline_root and target == VERTEX:
        raise CompileError("--pipeline-root: Vertex AI keeps a run's artifacts in a gs:// bucket; name one")
    pipeline_root = check_root(target, pipeline_root or configs.KUBEFLOW_PIPELINE_ROOT)
    job = _pipeline_job(settings, pipeline_root, check_image(image))
    adjust_for(target, job["pipelineSpec"])
    documents: List[Dict[str, Any]] = [job]
    if target == KUBEFLOW:  # Vertex AI reads the root from the PipelineJob's runtimeConfig.
        job["pipelineSpec"]["defaultPipelineRoot"] = pipeline_root
        if state_root(pipeline_root) == configs.KUBEFLOW_STATE_MOUNT:
            documents.append(platform_spec(job["pipelineSpec"]))
    text = _serialise(target, documents)
    folder = os.path.dirname(os.path.abspath(output_file))
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as staging:
        staging.write(text)
    os.replace(staging.name, output_file)
    return output_file


def _serialise(target: str, documents: List[Dict[str, Any]]) -> str:
    """KFP's PipelineSpec as YAML (and its platform spec as a second document), or Vertex AI's
    PipelineJob as JSON."""
    job, *platform = documents
    if target == KUBEFLOW:
        header = f"# PipelineSpec {SCHEMA_VERSION} for the open-source Kubeflow Pipelines 2.x backend.\n"
        return header + yaml.safe_dump_all([job["pipelineSpec"], *platform], sort_keys=True)
    return json.dumps(job, sort_keys=True, indent=1)
