"""Compiles the pipeline for Kubeflow Pipelines (KubeflowV2DagRunner -> pipeline spec JSON)."""

import os
import tempfile

from tfx import v1 as tfx

from components.digit_example_gen import component as example_gen
from pipeline import configs
from pipeline.pipeline import create_pipeline


def compile_pipeline(
    settings: configs.Settings,
    output_file: str,
    pipeline_root: str = configs.KUBEFLOW_PIPELINE_ROOT,
    image: str = configs.KUBEFLOW_IMAGE,
) -> str:
    """Writes the pipeline spec JSON to `output_file` (whole or not at all) and returns its path.

    Paths inside the image (the schema, the default data) are the Dockerfile's. The data layout is
    detected when the data root is readable from here; otherwise (a bucket, or a path inside the image)
    MNIST IDX file names are assumed. No metadata config: Kubeflow provides its own.
    """
    data_root = settings.data_root or configs.KUBEFLOW_DATA_ROOT
    if os.path.isdir(data_root):
        input_config = example_gen.detect_input_config(data_root)
    else:
        input_config = example_gen.split_patterns(example_gen.IDX_TRAIN, example_gen.IDX_TEST)
    pipeline = create_pipeline(
        pipeline_root=pipeline_root,
        data_root=data_root,
        schema_path=settings.schema_path or configs.KUBEFLOW_SCHEMA_PATH,
        serving_model_dir=os.path.join(pipeline_root, "serving_model", settings.model_name),
        input_config=input_config,
        **configs.pipeline_values(settings),
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
