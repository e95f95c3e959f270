"""The benchmark commands run, and measure what they say (the long runs themselves are in BENCHMARKS.md)."""

import argparse
import dataclasses

import numpy as np
import pytest

from benchmarks import drawing, mnist, overhead, positions, tflite, time_to_accuracy, tracing, training, turned_reading
from benchmarks import serving as serving_benchmark
from cli.logs import setup_logging
from models import features, robustness
from models.config import Augmentation
from pipeline import configs
from tests.support import needs_chromium


def test_mnist_arrays():
    pixels, labels = mnist.load(mnist.TEST, 5)
    assert pixels.shape == (5, 28, 28) and labels.tolist() == [7, 2, 1, 0, 4]
    scaled = mnist.scaled(pixels)
    assert scaled.shape == (5, 28, 28, 1) and scaled.dtype == np.float32
    assert scaled.max() == 1.0 and scaled.min() == 0.0


def test_overhead_settings_keep_mnist_proportions_and_train_one_step():
    small = overhead.overhead_settings(7_000, "multi_processing")
    assert (small.profile.train_limit, small.profile.test_limit) == (6_000, 1_000)
    assert (small.trainer.steps_per_epoch, small.trainer.epochs, small.min_accuracy) == (1, 1, 0.0)
    assert "--direct_running_mode=multi_processing" in small.beam_args
    full = overhead.overhead_settings(overhead.MNIST_SIZE, "in_memory")
    assert full.profile.train_limit is None and full.profile.test_limit is None


@pytest.mark.component
def test_overhead_run_times_every_component(tmp_path):
    timer = setup_logging(verbose=False)
    times = overhead.timed_run(700, "in_memory", str(tmp_path), timer)
    components = {k: v for k, v in times.items() if k not in ("total_without_trainer", "wall")}
    assert {"DigitExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator", "Pusher"} <= set(components)
    assert times["total_without_trainer"] == pytest.approx(sum(components.values()) - components["Trainer"], abs=0.2)
    assert 0 < times["total_without_trainer"] < times["wall"]


@pytest.mark.component
def test_time_to_accuracy_holds_out_the_eval_share_and_keeps_test_apart():
    splits = time_to_accuracy.mnist_splits()
    assert [len(splits[f"{s}_labels"]) for s in ("train", "eval", "test")] == [55_000, 5_000, 10_000]
    assert splits["train_images"].shape[1:] == (28, 28, 1) and splits["test_images"].max() == 1.0
    # The pipeline's eval share (1 in 12 hash buckets), and the official test digits untouched.
    assert len(splits["eval_labels"]) / 60_000 == configs.SPLIT_BUCKETS.eval / configs.SPLIT_BUCKETS.total
    np.testing.assert_array_equal(splits["test_labels"], mnist.load(mnist.TEST)[1])


def test_time_to_accuracy_variants_change_the_standard_trainer_field_by_field():
    standard = configs.PROFILES[configs.DEFAULT_PROFILE].trainer
    plain = time_to_accuracy.pipeline_config("pipeline", 10, 7)
    assert plain == dataclasses.replace(standard, epochs=10, seed=7)
    changed = time_to_accuracy.pipeline_config('pipeline:batch_size=64,augmentation={"noise":0}', 10, 7)
    assert changed == dataclasses.replace(plain, batch_size=64, augmentation=Augmentation(noise=0))
    # A JSON value may hold commas of its own.
    two = time_to_accuracy.pipeline_config('pipeline:augmentation={"noise":30,"flip":true},batch_size=64', 10, 7)
    assert two == dataclasses.replace(plain, batch_size=64, augmentation=Augmentation(noise=30, flip=True))
    for bad in ("pipeline:batch=64", "pipeline:batch_size", 'pipeline:schedule="step"', "notebook:batch_size=1"):
        with pytest.raises(argparse.ArgumentTypeError):
            time_to_accuracy.variant_name(bad)
    assert time_to_accuracy.variant_name("notebook-bf16") == "notebook-bf16"


@pytest.mark.component
def test_training_benchmark_runs_variants_side_by_side():
    result = training.main(["--images", "256", "--rounds", "2", "--steps", "2", "--variants", "pipeline"])
    speeds = result["images_per_s"]
    assert set(speeds) == {"notebook", "pipeline"}
    assert all(len(values) == 2 and min(values) > 0 for values in speeds.values())
    # Each round's ratio is that round's pipeline speed over the notebook's, and the median is theirs.
    ratios = [p / n for p, n in zip(speeds["pipeline"], speeds["notebook"])]
    assert result["ratio_to_notebook"]["pipeline"] == pytest.approx(ratios, rel=0.01)
    assert result["median_ratio_to_notebook"]["pipeline"] == pytest.approx(np.median(ratios), rel=0.01)


@pytest.mark.component
def test_tracing_benchmark_times_the_first_step_with_tf_keras_rewritten_and_left_as_written():
    records = tracing.main(["--rounds", "1", "--precisions", "float32"])["records"]
    assert set(records) == {"as-installed float32", "skip-tf-keras float32"}
    assert [r["tf_keras_left_as_written"] for r in records["as-installed float32"]] == [False]
    assert [r["tf_keras_left_as_written"] for r in records["skip-tf-keras float32"]] == [True]
    # The first step includes the trace; the second is the step alone.
    assert all(r["first_step"] > r["second_step"] > 0 for rs in records.values() for r in rs)


def test_error_rates_by_position():
    correct = np.ones(24, bool)
    correct[[0, 12, 2]] = False  # Two misread at position 0 modulo 12, one at 2; all three even.
    rates = positions.error_rates(correct)
    assert rates["mod 12 = 0"] == 100.0 and rates["mod 12 = 2"] == 50.0 and rates["mod 12 = 1"] == 0.0
    assert rates["even"] == 25.0 and rates["odd"] == 0.0


@pytest.mark.e2e
def test_positions_benchmark_scores_every_mnist_digit(smoke_output):
    result = positions.main(["--output", smoke_output])
    train = result["train_error_percent"]
    assert len(train) == positions.GROUPS + 2 and all(0 <= rate <= 100 for rate in train.values())
    # Each parity's rate is the mean of its six positions' (equal counts: 60,000 is a multiple of 12).
    even = np.mean([train[f"mod 12 = {r}"] for r in range(0, 12, 2)])
    assert train["even"] == pytest.approx(even, abs=0.01)
    assert set(result["test_error_percent"]) == {"first half", "second half"}


@pytest.mark.e2e
def test_tflite_export_answers_as_the_saved_model(smoke_output, tmp_path):
    result = tflite.main(["--output", smoke_output, "--save-dir", str(tmp_path), "--test-digits", "2000"])
    saved_model = result["saved_model_test_accuracy"]
    assert saved_model > 0.5
    exports = result["tflite"]
    assert set(exports) == set(tflite.CONVERSIONS)
    for conversion, measured in exports.items():
        assert (tmp_path / f"digits-{conversion}.tflite").stat().st_size == measured["bytes"]
        assert measured["test_accuracy"] > 0.2, conversion  # Every export reads digits (chance is 0.1).
    # Float exports answer as the SavedModel's CNN does, reading each digit once as they do (its
    # signatures read it turned too); int8 ones lose accuracy on this CNN (BENCHMARKS.md).
    for conversion in ("float32", "float16"):
        assert abs(exports[conversion]["test_accuracy"] - result["saved_model_cnn_test_accuracy"]) < 0.01, conversion
    assert exports["int8-dynamic-range"]["bytes"] < exports["float16"]["bytes"] < exports["float32"]["bytes"]


@pytest.mark.e2e
@needs_chromium
def test_drawing_benchmark_reports_what_the_model_read_at_every_place(smoke_output):
    result = drawing.main(["--output", smoke_output])
    reads = result["results"]
    assert set(reads) == set(drawing.PLACES) and result["drawn"] == drawing.DRAWN_DIGIT
    assert all(r["read"] in "0123456789" and 0 <= r["probability_of_7"] <= 1 for r in reads.values())
    assert result["read_right"] == sum(r["read"] == "7" for r in reads.values())


@pytest.mark.e2e
def test_serving_benchmark_measures_rest_grpc_in_process_and_first_requests(smoke_output):
    result = serving_benchmark.main(
        ["--output", smoke_output, "--requests", "5", "--batch", "8", "--clients", "2", "--batches-per-client", "2"]
    )
    for way in ("in_process", "rest", "grpc"):
        assert result[f"{way}_one_image"]["requests"] == 5 and result[f"{way}_one_image"]["p50_ms"] > 0
        assert result[f"{way}_batched"]["images"] == 8 * 2 * 2 and result[f"{way}_batched"]["images_per_s"] > 0
    signatures = {features.IMAGES_SIGNATURE, features.IMAGE_BYTES_SIGNATURE, features.CLASSIFY_SIGNATURE}
    for warmup in ("with", "without"):
        assert set(result[f"first_request_ms_{warmup}_warmup"]) == signatures


def test_ensemble_members_are_read_in_seed_order(tmp_path):
    from benchmarks import ensemble

    for name in ("member-10", "member-2", "member-3", "checkpoints", "member-notes"):
        (tmp_path / name).mkdir()
    found = [path.removeprefix(str(tmp_path)) for path in ensemble.member_dirs(str(tmp_path))]
    assert found == ["", "/member-2", "/member-3", "/member-10"]


def test_shared_mistakes_measure_how_alike_members_err():
    from benchmarks import ensemble

    labels = np.array([0, 1, 2, 3])

    def answers(*digits: int) -> np.ndarray:
        return np.eye(10)[list(digits)]

    first, same, other = answers(0, 1, 2, 0), answers(0, 1, 2, 0), answers(1, 1, 2, 3)
    assert ensemble.shared_mistakes([first, same], labels) == 1.0
    assert ensemble.shared_mistakes([first, other], labels) == 0.0
    assert ensemble.shared_mistakes([first, answers(1, 1, 2, 0)], labels) == 0.6667  # 1 shared of 1 and 2.
    assert ensemble.shared_mistakes([first, same, other], labels) == 0.3333  # The mean over three pairs.
    assert ensemble.shared_mistakes([first], labels) is None
    # The mean of all three misreads digit 3 (two of three read it as 0) and nothing else.
    assert ensemble.members_misreading([first, same, other], labels) == [0, 0, 1, 0]


def test_pooled_runs_are_compared_digit_by_digit_whatever_order_they_read_them_in():
    from benchmarks import ensemble
    from reports.run_report import Digits

    pixels, labels = mnist.load(mnist.TEST, 50)
    shuffled = np.random.default_rng(0).permutation(50)
    in_order = ensemble.in_digit_order
    one = {"test": in_order(Digits(pixels, labels))}
    other = {"test": in_order(Digits(pixels[shuffled], labels[shuffled]))}
    assert ensemble.same_digits(one, other)
    relabelled = labels.copy()
    relabelled[0] = (relabelled[0] + 1) % 10
    assert not ensemble.same_digits(one, {"test": in_order(Digits(pixels, relabelled))})
    assert not ensemble.same_digits(one, {"test": in_order(Digits(pixels[:49], labels[:49]))})


def test_batch_norm_statistics_refreshed_standardize_each_layers_inputs():
    import tf_keras as keras

    from benchmarks import batch_norm
    from models import model

    net = model.build_model(1e-3)
    pixels = np.random.default_rng(0).integers(0, 256, (600, 28, 28)).astype(np.float32)
    batch_norm.refresh_statistics(net, pixels)
    images = mnist.scaled(pixels)
    norms = [layer for layer in net.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 5
    for layer in norms:  # In inference each layer's outputs now have mean beta (0) and variance gamma^2 (1)
        out = keras.Model(net.input, layer.output)(images, training=False).numpy()
        flat = out.reshape(-1, out.shape[-1])
        variance = layer.moving_variance.numpy()  # (shrunk by the epsilon that keeps the division safe).
        np.testing.assert_allclose(flat.mean(axis=0), 0.0, atol=1e-2)
        np.testing.assert_allclose(flat.var(axis=0), variance / (variance + layer.epsilon), rtol=2e-2, atol=1e-3)


@pytest.mark.e2e
def test_batch_norm_benchmark_scores_both_ways(smoke_output):
    from benchmarks import batch_norm

    result = batch_norm.main(["--output", smoke_output, "--train-digits", "500"])
    for way in ("as_trained", "refreshed"):
        for split in (features.EVAL_SPLIT, features.TEST_SPLIT):
            assert set(result[way][split]) == {"clean", *robustness.PERTURBATIONS}
    # The float32 rebuild scores the test split as the exported CNN does (bfloat16), each reading once
    # (the export's signatures, which TFMA scored, read each digit turned too).
    assert abs(result["as_trained"][features.TEST_SPLIT]["clean"] - result["export_cnn_test_accuracy"]) < 0.02


def test_gains_count_the_cnns_a_turned_reading_helped_and_hurt():
    assert turned_reading.gains([0.99, 0.99, 0.98], [0.995, 0.985, 0.98]) == {
        "mean_gain_points": 0.0,
        "gained": 1,
        "lost": 1,
    }


@pytest.mark.e2e
def test_turned_reading_benchmark_measures_what_the_export_serves(smoke_output, smoke_run):
    result = turned_reading.main(["--output", smoke_output, "--degrees", str(configs.TEST_TIME_ROTATION), "3"])
    (cnn,) = result["cnns"]
    assert set(cnn[features.TEST_SPLIT]) == {0.0, configs.TEST_TIME_ROTATION, 3.0}
    # The smoke export reads turned by TEST_TIME_ROTATION; TFMA scored it in bfloat16, this in float32
    # (as in the batch-norm benchmark's check of the same rebuild).
    assert cnn[features.TEST_SPLIT][configs.TEST_TIME_ROTATION] == pytest.approx(smoke_run[1].accuracy, abs=0.02)
    assert result["over_all_cnns"][features.EVAL_SPLIT][3.0]["gained"] in (0, 1)
    assert result["members_averaged"] == []
