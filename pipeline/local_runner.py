"""Runs the pipeline here, with LocalDagRunner, Beam's DirectRunner and a SQLite ML Metadata store."""

import os
from typing import List, Optional

from tfx import v1 as tfx

from components.digit_example_gen import subset
from pipeline import configs
from pipeline.pipeline import create_pipeline


def prepare_data(data_root: str, output_root: str, profile: configs.Profile) -> str:
    """The data the profile trains on: the dataset itself, or a small copy of it for quick profiles."""
    if profile.train_limit is None:
        return data_root
    dest = os.path.join(output_root, "data", profile.name)
    return subset.write_subset(data_root, dest, profile.train_limit, profile.test_limit)


def run(
    profile: configs.Profile,
    data_root: str = configs.DATA_ROOT,
    output_root: str = configs.OUTPUT_ROOT,
    beam_args: Optional[List[str]] = None,
    strategy: str = "default",
    seed: int = 42,
    min_accuracy: Optional[float] = None,
    schema_path: str = configs.SCHEMA_PATH,
    enable_cache: bool = True,
) -> None:
    """Runs every component in order; raises on the first that fails."""
    metadata_path = configs.metadata_path(output_root)
    os.makedirs(os.path.dirname(metadata_path), exist_ok=True)
    pipeline = create_pipeline(
        pipeline_root=configs.pipeline_root(output_root),
        data_root=prepare_data(data_root, output_root, profile),
        serving_model_dir=configs.serving_model_dir(output_root),
        trainer_config=configs.TrainerConfig.from_profile(profile, strategy=strategy, seed=seed),
        min_accuracy=profile.min_accuracy if min_accuracy is None else min_accuracy,
        beam_pipeline_args=configs.beam_args(beam_args),
        schema_path=schema_path,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
        enable_cache=enable_cache,
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
