"""The benchmark suites run, measure what they say and record it (the long runs themselves are the
records in `benchmarks/results/`); the records make the benchmarks page. The tests' records go to a
temporary folder (`conftest.benchmark_records`)."""

import argparse
import ast
import dataclasses
import os
import pkgutil

import numpy as np
import pytest

import benchmarks
from benchmarks import __main__ as entry
from benchmarks import (
    drawing,
    ensemble,
    inference,
    load,
    profile,
    results,
    suite,
    test_time_augmentation,
    time_to_accuracy,
    training,
)
from benchmarks import serving as serving_benchmark
from models import features
from models.config import Augmentation
from pipeline import configs, mnist
from reports.browser import DRAWN_DIGIT, PLACES
from reports.run_report import Digits
from tests.support import needs_chromium


def test_mnist_arrays():
    pixels, labels = mnist.load(mnist.TEST, 5)
    assert pixels.shape == (5, 28, 28) and labels.tolist() == [7, 2, 1, 0, 4]
    scaled = mnist.scaled(pixels)
    assert scaled.shape == (5, 28, 28, 1) and scaled.dtype == np.float32
    assert scaled.max() == 1.0 and scaled.min() == 0.0


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
    argv = "--images 256 --rounds 2 --steps 2 --variants pipeline"
    result = training.main(argv.split())
    speeds = result["images_per_s"]
    assert set(speeds) == {"notebook", "pipeline"}
    assert all(len(values) == 2 and min(values) > 0 for values in speeds.values())
    # Each round's ratio is that round's pipeline speed over the notebook's, and the median is theirs.
    ratios = [p / n for p, n in zip(speeds["pipeline"], speeds["notebook"])]
    assert result["ratio_to_notebook"]["pipeline"] == pytest.approx(ratios, rel=0.01)
    assert result["median_ratio_to_notebook"]["pipeline"] == pytest.approx(np.median(ratios), rel=0.01)
    # The medians are recorded, where the benchmarks page reads them, with the command that measured them.
    (record,) = [r for r in results.load(os.environ[results.RESULTS_ENV]) if r.topic == "training"]
    assert record.name == "notebook, pipeline" and record.command.endswith("-m benchmarks.training " + argv)
    assert record.figures["pipeline_ratio"] == pytest.approx(np.median(ratios), abs=0.001)
    assert record.figures["notebook_images_per_s"] == np.median(speeds["notebook"])


@pytest.mark.e2e
@needs_chromium
def test_drawing_benchmark_reports_what_the_model_read_at_every_place(smoke_output):
    result = drawing.main(["--output", smoke_output])
    reads, figures = result["read"], result["drawing page"]
    assert set(reads) == set(PLACES) and result["drawn"] == DRAWN_DIGIT
    assert all(digit in "0123456789" for digit in reads.values())
    assert all(0 <= p <= 1 for p in figures[f"probability_of_{DRAWN_DIGIT}"].values())
    assert figures["read_right"] == sum(digit == str(DRAWN_DIGIT) for digit in reads.values())


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
    # A record per way of calling the model, of its headline figures only.
    assert result["REST"] == {
        "p50_ms": result["rest_one_image"]["p50_ms"],
        "p99_ms": result["rest_one_image"]["p99_ms"],
        "batched_images_per_s": result["rest_batched"]["images_per_s"],
    }
    names = {"REST", "gRPC", "in-process", "first request after warmup", "first request without warmup"}
    assert {r.name for r in results.load(os.environ[results.RESULTS_ENV]) if r.topic == "serving"} >= names


def test_ensemble_members_are_read_in_seed_order(tmp_path):
    for name in ("member-10", "member-2", "member-3", "checkpoints", "member-notes"):
        (tmp_path / name).mkdir()
    found = [path.removeprefix(str(tmp_path)) for path in ensemble.member_dirs(str(tmp_path))]
    assert found == ["", "/member-2", "/member-3", "/member-10"]


def test_shared_mistakes_measure_how_alike_members_err():
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


def test_gains_count_the_cnns_test_time_augmentation_helped_and_hurt():
    assert test_time_augmentation.gains([0.99, 0.99, 0.98], [0.995, 0.985, 0.98]) == {
        "mean_gain_points": 0.0,
        "gained": 1,
        "lost": 1,
    }


@pytest.mark.e2e
def test_test_time_augmentation_benchmark_measures_what_the_export_serves(smoke_output, smoke_run):
    argv = ["--output", smoke_output, "--degrees", str(configs.TEST_TIME_ROTATION), "3"]
    result = test_time_augmentation.main(argv)
    (cnn,) = result["each_cnn"]
    assert set(cnn[features.TEST_SPLIT]) == {0.0, configs.TEST_TIME_ROTATION, 3.0}
    # The smoke export predicts with TTA at TEST_TIME_ROTATION; TFMA scored it in bfloat16, this in float32.
    assert cnn[features.TEST_SPLIT][configs.TEST_TIME_ROTATION] == pytest.approx(smoke_run[1].accuracy, abs=0.02)
    gains = result["test-time augmentation"]["over_all_cnns"]
    assert gains[features.EVAL_SPLIT]["3 degrees"]["gained"] in (0, 1)
    assert result["members_averaged"] == []


@pytest.mark.e2e
def test_size_figures_of_the_pushed_model(served_model):
    sizes = profile.size_figures(served_model)
    assert 0 < sizes["variables_mb"] < sizes["saved_model_mb"] < 5
    # float32 numbers: the variables file holds little else.
    assert sizes["weights"] * 4 / 1e6 == pytest.approx(sizes["variables_mb"], rel=0.05)


LOAD_CLIENTS, LOAD_REQUESTS, LOAD_SWAPS = 16, 5000, 6
RSS_GROWTH_LIMIT_MB = 230
"""Over the whole run, which loads six more versions: about 160 MB measured under this load (629 ->
788 MB, the allocator keeping what the first swaps freed); a leak keeping every version adds 280 MB."""
SWAP_GROWTH_LIMIT_MB = 90
"""Between the peak of the first three swaps and that of the last three: with one version kept (TF
Serving's default), each swap unloads the previous version, so memory must not climb with every swap.
A leak that kept every version would add one version's memory per swap, 47-49 MB for the smoke model
(measured with a `latest { num_versions: 10 }` policy, idle: 629, 677, 725, 769, 818, 861, 910 MB), so
about 140 MB here. Without a leak the peaks still differ by up to about 45 MB, because the allocator
and Python's cyclic collector keep what the first swaps freed (measured under this load: 753.5 -> 795.4;
749 -> 769 idle)."""


@pytest.mark.e2e
def test_load_with_hot_swaps_has_no_errors(served_model, other_model, tmp_path):
    """The load benchmark's run with six hot swaps between two *different* models, on the smoke model:
    16 keep-alive REST clients, 5,000 one-digit requests, server-side batching; zero errors, every
    answer from the version that should give it, memory steady across swaps."""
    result = load.run_load(
        (served_model, other_model), LOAD_CLIENTS, LOAD_REQUESTS, LOAD_SWAPS, batching=True, work_dir=str(tmp_path)
    )
    assert result["requests"] == LOAD_REQUESTS and result["errors"] == 0, result
    assert [s["version"] for s in result["swaps"]] == list(range(2, LOAD_SWAPS + 2))
    assert result["served_versions_after"] == [LOAD_SWAPS + 1]
    assert all(s["seconds_to_serve_alone"] is not None for s in result["swaps"]), result
    assert result["rss_mb_after"] - result["rss_mb_before"] < RSS_GROWTH_LIMIT_MB, result
    rss = [s["rss_mb"] for s in result["swaps"]]
    assert max(rss[LOAD_SWAPS // 2 :]) - max(rss[: LOAD_SWAPS // 2]) < SWAP_GROWTH_LIMIT_MB, result
    # Where the server's CPU went, by thread: the model's arithmetic in TensorFlow's own threads, the
    # front end in the REST event loop, the batching thread; together, the process's CPU.
    by_thread = result["server_cpu_s_by_thread"]
    assert {load.NATIVE_THREADS, "rest", "batch"} <= set(by_thread), by_thread
    assert sum(by_thread.values()) == pytest.approx(result["server_cpu_s"], rel=0.1, abs=0.5), result


@pytest.mark.e2e
def test_load_compares_the_model_in_process_with_the_server(served_model):
    """The in-process side of `--compare`: the same clients and batching on the signature itself."""
    result = load.run_in_process(served_model, clients=4, requests=200)
    assert result["requests"] == 200 and result["errors"] == 0, result
    assert result["requests_per_s"] > 0 and result["cpu_ms_per_request"] > 0


def test_server_cpu_is_summed_by_thread_role():
    before = {1: 1.0, 2: 0.5, 3: 0.0, 4: 2.0}
    after = {1: 3.0, 2: 0.75, 3: 0.25, 4: 2.0, 5: 1.5}
    names = {2: "batch-0", 3: "batch-1", 4: "rest", 5: "grpc_3"}
    assert load.cpu_by_thread(before, after, names) == {load.NATIVE_THREADS: 2.0, "grpc": 1.5, "batch": 0.5}
    mine = load.thread_cpu_seconds(os.getpid())
    assert os.getpid() in mine and all(seconds >= 0 for seconds in mine.values())


@pytest.mark.e2e
def test_inference_benchmark_measures_each_runtime_on_the_same_digits(served_model, monkeypatch):
    """The CNN in TensorFlow and in TF Lite's XNNPACK on the same readings: figures, and the same answers."""
    monkeypatch.setattr(inference, "ROUND_SECONDS", 0.2)
    tensorflow, xnnpack = (
        inference.measure(runtime, served_model, batch=4, rounds=1)
        for runtime in ("CNN alone, TensorFlow", "CNN alone, TF Lite (XNNPACK)")
    )
    for figures in (tensorflow, xnnpack):
        assert figures["digits_per_s"] > 0 and figures["cpu_ms_per_digit"] > 0
    probabilities = np.asarray(tensorflow["probabilities"])
    assert probabilities.shape == (3 * 4, features.NUM_CLASSES)
    assert np.abs(np.asarray(xnnpack["probabilities"]) - probabilities).max() < 1e-5
    assert inference.multiply_adds_per_picture() > 30_000_000  # Its largest convolution alone has 20 M.


def test_the_float32_peak_is_a_matrix_products_rate(monkeypatch):
    monkeypatch.setattr(inference, "ROUND_SECONDS", 0.1)
    assert inference.float32_peak(rounds=1, size=256) > 0.1  # Any CPU that runs TensorFlow does 0.1 GFLOP/s.


def _record(name: str, date: str, topic: str = "serving", **figures) -> results.Record:
    return results.Record(topic, name, f".venv/bin/python -m benchmarks.{topic}", date, "abc1234", "a CPU", figures)


def test_the_page_shows_each_measurement_newest_with_its_spread_over_runs():
    page = results.render(
        [
            _record("REST", "2026-12-01", p99_ms=4.0, errors=0),  # Oldest first, as `results.load` gives them.
            _record("REST", "2026-12-02", p99_ms=5.5, errors=0),
            _record("gRPC", "2026-12-02", p99_ms=2.5),
            _record("REST", "2026-12-03", p99_ms=3.0, errors=0),
        ]
    )
    (rest,) = [line for line in page.splitlines() if line.startswith("| REST |")]
    # The newest run first, then the range over every run; a figure that never changed counts its runs.
    assert "p99_ms: **3** (3 to 5.5 over 3 runs)" in rest and "errors: **0** (3 runs)" in rest
    assert "2026-12-03, abc1234" in rest
    (grpc,) = [line for line in page.splitlines() if line.startswith("| gRPC |")]
    assert "| p99_ms: **2.5** | 2026-12-02, abc1234 |" in grpc
    assert page.index(f"## {results.TOPICS['serving']}") < page.index("| REST |")


def test_the_page_shows_accuracies_as_percentages_and_nested_figures_by_their_path():
    page = results.render(
        [_record("standard", "2026-12-01", "accuracy", test_accuracy=0.9957, wall_s=374, sizes={"weights": 889322})]
    )
    assert "test_accuracy: **99.57%**" in page and "wall_s: **374**" in page
    assert "sizes.weights: **889,322**" in page


def test_levers_tried_and_not_kept_are_one_table_of_effect_and_decision():
    lever = _record("random erasing", "2026-12-05", "levers", effect="-0.02 points", decision="not kept")
    page = results.render([lever, _record("REST", "2026-12-05", p99_ms=3.0)])
    assert page.index(results.TOPICS["serving"]) < page.index(results.TOPICS["levers"])
    (row,) = [line for line in page.splitlines() if line.startswith("| random erasing |")]
    assert row.split(" | ")[1:3] == ["effect: -0.02 points", "not kept"]


def test_results_check_fails_on_a_stale_page(tmp_path, monkeypatch):
    records, page, readme = tmp_path / "records", tmp_path / "BENCHMARKS.md", tmp_path / "README.md"
    readme.write_text(f"# Digits\n\n{results.README_START}\n{results.README_END}\n")
    monkeypatch.setenv(results.RESULTS_ENV, str(records))
    results.write("load", "no swap", {"requests_per_s": 1498.6, "p99_ms": 30.0, "errors": 0}, "a command")
    paths = ["--results", str(records), "--out", str(page), "--readme", str(readme)]
    assert results.main(paths + ["--check"]) == 1  # Nothing generated yet.
    assert results.main(paths) == 0 and "1,499" in page.read_text() and "no swap" in readme.read_text()
    assert results.main(paths + ["--check"]) == 0
    # A new run of the measurement: the page no longer says what the records give.
    results.write("load", "no swap", {"requests_per_s": 1200.0, "p99_ms": 31.0, "errors": 0}, "a command")
    assert results.main(paths + ["--check"]) == 1
    assert entry.main(["results", *paths]) == 0 and entry.main(["results", *paths, "--check"]) == 0


def test_a_record_is_read_back_as_written(tmp_path, monkeypatch):
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path))
    path = results.write("accuracy", "standard", {"test_accuracy": 0.9957}, "a command", note="seed 42")
    assert os.path.dirname(path) == str(tmp_path)
    (record,) = results.load(str(tmp_path))
    assert (record.topic, record.name, record.note) == ("accuracy", "standard", "seed 42")
    assert record.figures == {"test_accuracy": 0.9957} and record.command == "a command"
    with pytest.raises(ValueError, match="unknown topic"):
        results.write("speed", "x", {}, "a command")


def test_the_suite_record_reads_pytests_last_summary_line():
    output = "\n".join(
        [
            "===== 2 passed in 1.00s =====",  # An earlier pytest run (none in `make test` today).
            "FAILED tests/test_x.py::test_y - AssertionError",
            "==== 1 failed, 305 passed, 2 skipped, 1 error, 3 deselected in 662.05s (0:11:02) ====",
        ]
    )
    assert suite.pytest_summary(output) == {
        "passed": 305,
        "failed": 1,
        "skipped": 2,
        "errors": 1,
        "duration_s": 662.05,
    }
    assert suite.pytest_summary("== 307 passed in 9.5s ==")["failed"] == 0
    with pytest.raises(ValueError):
        suite.pytest_summary("make: *** [Makefile:44: check] Error 1")


def _suites_on_disk() -> set:
    """The modules of `benchmarks` that define a `main`, read without importing them."""
    folder = os.path.dirname(benchmarks.__file__)
    found = set()
    for module in pkgutil.iter_modules([folder]):
        with open(os.path.join(folder, f"{module.name}.py")) as source:
            tree = ast.parse(source.read())
        if module.name != "__main__" and any(
            isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body
        ):
            found.add(module.name)
    return found


def test_one_entry_point_lists_every_suite_with_a_line_each(capsys):
    assert set(entry.SUITES) == _suites_on_disk()
    assert entry.main(["--help"]) == 0
    listed = capsys.readouterr().out
    for name, about in entry.SUITES.items():
        assert f"  {name} " in listed and about in listed
    assert entry.main([]) == 2 and entry.main(["nonsense"]) == 2


def test_no_record_is_written_into_the_repository():
    folder = os.environ[results.RESULTS_ENV]
    assert folder and not os.path.abspath(folder).startswith(results.RESULTS_DIR)
