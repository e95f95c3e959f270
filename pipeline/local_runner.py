"""Runs the pipeline here, with LocalDagRunner, Beam's DirectRunner and a SQLite ML Metadata store.

    python -m pipeline.local_runner                        # the standard profile, into ./output
    tfx pipeline create --engine local --pipeline_path pipeline/local_runner.py
    tfx run create --engine local --pipeline_name digits   # TFX's own CLI, as its templates teach

`digits run` calls `run` with the settings its flags resolve; run as a script, this module takes the
default settings.
"""

import os
import sys
from typing import Optional

if __name__ == "__main__" and not __package__:
    # Run as a script (TFX's CLI does): its own folder would shadow the `pipeline` package.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from tfx import v1 as tfx
from tfx.proto.orchestration import pipeline_pb2

from pipeline import configs
from pipeline.pipeline import always_run, create_pipeline


def build(settings: configs.Settings, output_root: str, enable_cache: bool = True) -> tfx.dsl.Pipeline:
    metadata_path = configs.metadata_path(output_root, settings.model_name)
    os.makedirs(os.path.dirname(metadata_path), exist_ok=True)
    data_root = settings.data_root or configs.DATA_ROOT
    pipeline_root = configs.pipeline_root(output_root, settings.model_name)
    return create_pipeline(
        pipeline_root=pipeline_root,
        data_root=data_root,
        schema_path=settings.schema_path or configs.SCHEMA_PATH,
        serving_model_dir=configs.serving_model_dir(output_root, settings.model_name),
        reference_file=configs.reference_file(pipeline_root),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
        enable_cache=enable_cache,
        **configs.pipeline_values(settings, data_root),
    )


class LocalDagRunner(tfx.orchestration.LocalDagRunner):
    """TFX's LocalDagRunner, with caching off for the nodes `always_run` names: TFX sets caching for a
    whole pipeline, and its launcher honours it per node. (`run` stays TFX's own, which TFX's CLI
    intercepts.)"""

    def run_with_ir(
        self, pipeline: pipeline_pb2.Pipeline, run_options: Optional[pipeline_pb2.RunOptions] = None
    ) -> None:
        for node in pipeline.nodes:
            compiled = node.pipeline_node
            if always_run(compiled.node_info.id, compiled.parameters.parameters):
                compiled.execution_options.caching_options.enable_cache = False
        super().run_with_ir(pipeline, run_options)


def run(settings: configs.Settings, output_root: str = configs.OUTPUT_ROOT, enable_cache: bool = True) -> None:
    """Runs every component in order; raises on the first that fails."""
    LocalDagRunner().run(build(settings, output_root, enable_cache))


if __name__ == "__main__":
    run(configs.settings(), configs.OUTPUT_ROOT)
