"""Compiles the pipeline for Kubeflow Pipelines: the open-source KFP 2.x backend, or Vertex AI Pipelines.

Both targets are compiled by TFX's KubeflowV2DagRunner from the same `create_pipeline`, as PipelineSpec
schema 2.1.0, and then adjusted for what the orchestrator can run:

- `kubeflow` (open-source KFP 2.x): the PipelineSpec as YAML, what its UI and `kfp.Client` upload. Its
  backend does not run TFX's FileBasedExampleGen driver (`lifecycle.preCacheCheck`, which fingerprints
  the input files so that unchanged data is a cache hit on Vertex AI), so the hook is left out and
  DigitExampleGen, which then fingerprints its files itself, is never taken from KFP's cache: a changed
  file at the same path is always read.
- `vertex` (Vertex AI Pipelines): the PipelineJob JSON, driver included.

On both, the ALWAYS_RUN tasks (the served baseline, the anomaly gate) are never cached, as locally. No
metadata connection is compiled in: the orchestrator provides its own.
"""

import json
import os
import tempfile
from typing import Any, Dict

import yaml
from tfx import v1 as tfx

from components.digit_example_gen import component as example_gen
from pipeline import configs
from pipeline.pipeline import ALWAYS_RUN, create_pipeline

KUBEFLOW, VERTEX = configs.KUBEFLOW_TARGETS
INGESTION = "DigitExampleGen"
SCHEMA_VERSION = "2.1.0"


def _pipeline_job(settings: configs.Settings, pipeline_root: str, image: str) -> Dict[str, Any]:
    """The PipelineJob TFX compiles (as a dict), for both targets."""
    data_root = settings.data_root or configs.KUBEFLOW_DATA_ROOT
    if os.path.isdir(data_root):
        input_config = example_gen.detect_input_config(data_root)
    else:  # A bucket, or a path inside the image: MNIST's IDX file names.
        input_config = example_gen.split_patterns(example_gen.IDX_TRAIN, example_gen.IDX_TEST)
    pipeline = create_pipeline(
        pipeline_root=pipeline_root,
        data_root=data_root,
        schema_path=settings.schema_path or configs.KUBEFLOW_SCHEMA_PATH,
        serving_model_dir=os.path.join(pipeline_root, "serving_model", settings.model_name),
        input_config=input_config,
        **configs.pipeline_values(settings, data_root),
    )
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image, use_pipeline_spec_2_1=True
        ),
    )
    return runner.run(pipeline, write_out=False)


def _executor(spec: Dict[str, Any], task: str) -> Dict[str, Any]:
    label = spec["components"][spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]]["executorLabel"]
    return spec["deploymentSpec"]["executors"][label]


def adjust_for(target: str, spec: Dict[str, Any]) -> Dict[str, Any]:
    """What `target` can run, out of the PipelineSpec TFX compiled (changed in place, and returned)."""
    tasks = spec["root"]["dag"]["tasks"]
    uncached = list(ALWAYS_RUN)
    if target == KUBEFLOW:
        _executor(spec, INGESTION)["container"].pop("lifecycle", None)
        uncached.append(INGESTION)
    for task in uncached:
        tasks[task].pop("cachingOptions", None)
    return spec


def compile_pipeline(
    settings: configs.Settings,
    output_file: str,
    target: str = KUBEFLOW,
    pipeline_root: str = configs.KUBEFLOW_PIPELINE_ROOT,
    image: str = configs.KUBEFLOW_IMAGE,
) -> str:
    """Writes the target's file to `output_file` (whole or not at all) and returns its path.

    Paths inside the image (the schema, the default data) are the Dockerfile's. The data layout is
    detected when the data root is readable from here; otherwise MNIST IDX file names are assumed.
    """
    if target not in configs.KUBEFLOW_TARGETS:
        raise ValueError(f"Unknown target {target!r}: expected one of {', '.join(configs.KUBEFLOW_TARGETS)}")
    job = _pipeline_job(settings, pipeline_root, image)
    adjust_for(target, job["pipelineSpec"])
    if target == KUBEFLOW:  # Vertex AI reads the root from the PipelineJob's runtimeConfig.
        job["pipelineSpec"]["defaultPipelineRoot"] = pipeline_root
    text = _serialise(target, job)
    folder = os.path.dirname(os.path.abspath(output_file))
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as staging:
        staging.write(text)
    os.replace(staging.name, output_file)
    return output_file


def _serialise(target: str, job: Dict[str, Any]) -> str:
    """KFP's PipelineSpec as YAML, or Vertex AI's PipelineJob as JSON."""
    if target == KUBEFLOW:
        header = f"# PipelineSpec {SCHEMA_VERSION} for the open-source Kubeflow Pipelines 2.x backend.\n"
        return header + yaml.safe_dump(job["pipelineSpec"], sort_keys=True)
    return json.dumps(job, sort_keys=True, indent=1)
