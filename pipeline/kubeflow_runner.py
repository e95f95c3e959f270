"""Compiles the pipeline for Kubeflow Pipelines (KubeflowV2DagRunner -> pipeline spec JSON)."""

import os
import tempfile

from tfx import v1 as tfx

from components.digit_example_gen import component as example_gen
from pipeline import configs
from pipeline.pipeline import create_pipeline

def compile_pipeline(
    output_file: str,
    profile: configs.Profile,
    data_root: str = configs.KUBEFLOW_DATA_ROOT,
    pipeline_root: str = configs.KUBEFLOW_PIPELINE_ROOT,
    image: str = configs.KUBEFLOW_IMAGE,
) -> str:
    """Writes the pipeline spec JSON to `output_file` (whole or not at all) and returns its path.

    Paths inside the image (the schema, the default data) are the Dockerfile's. The data layout is
    detected when `data_root` is readable from here; otherwise (a bucket, or a path
    inside the image) MNIST IDX file names are assumed. No metadata config: Kubeflow provides its own.
    """
    if os.path.isdir(data_root):
        input_config = example_gen.detect_input_config(data_root)
    else:
        input_config = example_gen.split_patterns(example_gen.IDX_TRAIN, example_gen.IDX_TEST)
    pipeline = create_pipeline(
        pipeline_root=pipeline_root,
        data_root=data_root,
        serving_model_dir=os.path.join(pipeline_root, "serving_model", configs.MODEL_NAME),
        trainer_config=configs.TrainerConfig.from_profile(profile),
        min_accuracy=profile.min_accuracy,
        beam_pipeline_args=configs.beam_args(),
        input_config=input_config,
        schema_path=configs.KUBEFLOW_SCHEMA_PATH,
    )
    folder = os.path.dirname(os.path.abspath(output_file))
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as staging:
        runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
            config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
            output_dir=staging,
            output_filename=os.path.basename(output_file),
        )
        runner.run(pipeline)
        os.replace(os.path.join(staging, os.path.basename(output_file)), output_file)
    return output_file
