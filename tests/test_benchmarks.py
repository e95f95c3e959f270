"""The benchmark commands run, and measure what they say (the long runs themselves are in BENCHMARKS.md)."""

import numpy as np
import pytest

from benchmarks import mnist, overhead, time_to_accuracy, tflite, training
from pipeline import cli, configs


def test_mnist_arrays():
    pixels, labels = mnist.load(mnist.TEST, 5)
    assert pixels.shape == (5, 28, 28) and labels.tolist() == [7, 2, 1, 0, 4]
    scaled = mnist.scaled(pixels)
    assert scaled.shape == (5, 28, 28, 1) and scaled.dtype == np.float32
    assert scaled.max() == 1.0 and scaled.min() == 0.0


def test_overhead_profile_keeps_mnist_proportions_and_trains_one_step():
    small = overhead.overhead_profile(7_000)
    assert (small.train_limit, small.test_limit, small.steps_per_epoch, small.epochs) == (6_000, 1_000, 1, 1)
    assert small.min_accuracy == 0.0
    full = overhead.overhead_profile(overhead.MNIST_SIZE)
    assert full.train_limit is None and full.test_limit is None


def test_overhead_run_times_every_component(tmp_path):
    timer = cli.setup_logging(verbose=False)
    times = overhead.timed_run(700, "in_memory", str(tmp_path), timer)
    components = {k: v for k, v in times.items() if k not in ("total_without_trainer", "wall")}
    assert {"DigitExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator", "Pusher"} <= set(components)
    assert times["total_without_trainer"] == pytest.approx(sum(components.values()) - components["Trainer"], abs=0.2)
    assert 0 < times["total_without_trainer"] < times["wall"]


def test_time_to_accuracy_holds_out_the_eval_share_and_keeps_test_apart():
    splits = time_to_accuracy.mnist_splits()
    assert [len(splits[f"{s}_labels"]) for s in ("train", "eval", "test")] == [55_000, 5_000, 10_000]
    assert splits["train_images"].shape[1:] == (28, 28, 1) and splits["test_images"].max() == 1.0
    # The pipeline's eval share (1 in 12 hash buckets), and the official test digits untouched.
    assert len(splits["eval_labels"]) / 60_000 == configs.EVAL_HASH_BUCKETS / configs.TOTAL_HASH_BUCKETS
    np.testing.assert_array_equal(splits["test_labels"], mnist.load(mnist.TEST)[1])


def test_training_benchmark_runs_variants_side_by_side():
    result = training.main(["--images", "256", "--rounds", "2", "--steps", "2", "--variants", "pipeline"])
    speeds = result["images_per_s"]
    assert set(speeds) == {"notebook", "pipeline"}
    assert all(len(values) == 2 and min(values) > 0 for values in speeds.values())
    assert result["ratio_to_notebook"]["notebook"] == [1.0, 1.0]
    assert result["median_ratio_to_notebook"]["pipeline"] > 0


def test_tflite_export_answers_as_the_saved_model(smoke_output, tmp_path):
    result = tflite.main(["--output", smoke_output, "--save-dir", str(tmp_path)])
    saved_model = result["saved_model_test_accuracy"]
    assert saved_model > 0.5
    exports = result["tflite"]
    assert set(exports) == set(tflite.CONVERSIONS)
    for conversion, measured in exports.items():
        assert (tmp_path / f"digits-{conversion}.tflite").stat().st_size == measured["bytes"]
        assert 0.0 <= measured["test_accuracy"] <= 1.0
    # Float exports answer as the SavedModel does; int8 ones lose accuracy on this CNN (BENCHMARKS.md).
    for conversion in ("float32", "float16"):
        assert abs(exports[conversion]["test_accuracy"] - saved_model) < 0.01, conversion
    assert exports["int8-dynamic-range"]["bytes"] < exports["float16"]["bytes"] < exports["float32"]["bytes"]
