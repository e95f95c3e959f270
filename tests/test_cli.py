"""The `digits` command line: one settings object from profile and flags, shared by run and compile;
serve flags under TF Serving's names; failures a user can read."""

import logging

import pytest

from cli import logs, main
from models import features
from models.config import AUTO_PRECISION, DEFAULT_SEED, DEFAULT_STRATEGY, read_class_names
from pipeline import configs, local_runner
from serving import main as serving_main
from tests import support


def test_user_beam_args_override_defaults_by_flag_name():
    args = configs.beam_args(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert args == (
        "--runner=DirectRunner",
        "--sdk_container_image=none",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    )
    # Another runner gets the user's flags alone: the defaults are the DirectRunner's.
    flink = ["--runner=FlinkRunner", "--flink_master=localhost:8081"]
    assert configs.beam_args(flink) == tuple(flink)
    assert set(configs.beam_args(["--runner=DirectRunner"])) == set(configs.DEFAULT_BEAM_ARGS)


def test_tfx_packages_nothing_for_the_direct_runner():
    """TFX's Beam executors add a package of TFX itself, built in a new temporary folder, unless the
    args carry a dependency flag: none is wanted for the DirectRunner."""
    from tfx.utils import dependency_utils

    for args in (configs.beam_args(), configs.beam_args(["--direct_running_mode=multi_processing"])):
        assert dependency_utils.make_beam_dependency_flags(list(args)) == list(args)


def test_profiles_and_defaults():
    settings = main._settings(main.parser().parse_args(["run"]))
    assert settings.profile == configs.PROFILES[configs.DEFAULT_PROFILE]
    assert settings.trainer == configs.PROFILES[configs.DEFAULT_PROFILE].trainer
    assert (settings.trainer.seed, settings.trainer.strategy, settings.trainer.precision) == (
        DEFAULT_SEED,
        DEFAULT_STRATEGY,
        AUTO_PRECISION,
    )
    assert settings.data_root is None and settings.beam_args == configs.DEFAULT_BEAM_ARGS
    assert set(configs.PROFILES) == {"smoke", "standard", "full", "ensemble", "fashion", "finetune"}
    assert configs.PROFILES["finetune"].warm_start and not settings.warm_start
    assert configs.PROFILES["standard"].min_accuracy >= 0.993 and configs.PROFILES["full"].min_accuracy >= 0.995
    # Digits are never mirrored; clothes are, and a Fashion-MNIST model has a name of its own.
    digits = [p for p in configs.PROFILES.values() if p.name != "fashion"]
    assert all(not p.trainer.augmentation.flip and p.model_name == features.MODEL_NAME for p in digits)
    fashion = configs.PROFILES["fashion"]
    assert fashion.trainer.augmentation.flip and fashion.model_name == "fashion" and fashion.min_accuracy >= 0.92
    assert settings.model_name == configs.PIPELINE_NAME == features.MODEL_NAME and settings.labels_file is None
    # A single digit CNN's export reads each picture three times; an ensemble's and clothes' once.
    rotations = {name: p.trainer.test_time_rotation for name, p in configs.PROFILES.items()}
    assert rotations == {**dict.fromkeys(configs.PROFILES, configs.TEST_TIME_ROTATION), "ensemble": 0.0, "fashion": 0.0}


@pytest.mark.parametrize("command", ["run", "compile --target kubeflow --image registry.example/d:1"])
def test_run_and_compile_take_the_same_training_flags(command):
    flags = [
        "--profile",
        "smoke",
        "--precision",
        "float32",
        "--strategy",
        "mirrored",
        "--seed",
        "7",
        "--test-time-rotation",
        "0",
        "--min-accuracy",
        "0.4",
        "--data",
        "/d",
        "--schema",
        "/s.pbtxt",
        "--beam-arg=--direct_num_workers=2",
        "--model-name",
        "mnist-2",
        "--labels",
        "/l.txt",
    ]
    settings = main._settings(main.parser().parse_args(command.split() + flags))
    assert (settings.model_name, settings.labels_file) == ("mnist-2", "/l.txt")
    assert settings.profile.name == "smoke" and settings.min_accuracy == 0.4
    assert (settings.trainer.precision, settings.trainer.strategy, settings.trainer.seed) == ("float32", "mirrored", 7)
    assert settings.trainer.epochs == configs.PROFILES["smoke"].trainer.epochs
    assert settings.trainer.test_time_rotation == 0.0 != configs.PROFILES["smoke"].trainer.test_time_rotation
    assert (settings.data_root, settings.schema_path) == ("/d", "/s.pbtxt")
    assert settings.beam_args[-1] == "--direct_num_workers=2"


def test_settings_reach_create_pipeline_unchanged(monkeypatch, tmp_path):
    """The one path of a knob: flag -> Settings -> runner -> create_pipeline's arguments."""
    seen = {}

    def fake_create_pipeline(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stopped by the test")

    monkeypatch.setattr(local_runner, "create_pipeline", fake_create_pipeline)
    assert (
        main.main(["run", "--profile", "smoke", "--precision", "float32", "--seed", "3", "--output", str(tmp_path)])
        == 1
    )
    assert seen["trainer_config"].precision == "float32" and seen["trainer_config"].seed == 3
    assert seen["record_limits"] == {features.TRAIN_SPLIT: 2400, features.TEST_SPLIT: 600}
    assert seen["min_accuracy"] == configs.PROFILES["smoke"].min_accuracy
    assert seen["data_root"] == configs.DATA_ROOT and seen["schema_path"] == configs.SCHEMA_PATH
    assert seen["serving_model_dir"] == configs.serving_model_dir(str(tmp_path))
    assert seen["pipeline_name"] == configs.PIPELINE_NAME
    assert seen["trainer_config"].class_names == tuple(features.CLASS_LABELS)
    # A name of its own: its own pipeline (runs, baseline, drift reference), its own served model; and a
    # labels file beside the data names the classes.
    data = tmp_path / "clothes"
    support.write_small_mnist(str(data), 12, 12)
    (data / configs.DATASET_LABELS).write_text("".join(f"class {d}\n" for d in range(10)))
    main.main(["run", "--profile", "smoke", "--data", str(data), "--model-name", "clothes", "--output", str(tmp_path)])
    assert seen["pipeline_name"] == "clothes" and seen["pipeline_root"] == configs.pipeline_root(
        str(tmp_path), "clothes"
    )
    assert seen["serving_model_dir"] == configs.serving_model_dir(str(tmp_path), "clothes")
    assert seen["trainer_config"].class_names == tuple(f"class {d}" for d in range(10))
    labels = tmp_path / "names.txt"
    labels.write_text("\n".join(f"named {d}" for d in range(10)))
    main.main(["run", "--profile", "fashion", "--data", str(data), "--labels", str(labels), "--output", str(tmp_path)])
    assert seen["pipeline_name"] == "fashion" and seen["trainer_config"].augmentation.flip
    assert seen["trainer_config"].class_names == tuple(f"named {d}" for d in range(10))


def test_warm_start_gives_the_trainer_the_served_model(tmp_path):
    """`--warm-start` (or the finetune profile): the Trainer's base model is ServedBaseline's output,
    the model being served; without it the Trainer has no base model (and stays cacheable)."""

    def trainer_inputs(*flags: str) -> dict:
        settings = main._settings(main.parser().parse_args(["run", *flags]))
        pipeline = local_runner.build(settings, str(tmp_path))
        (trainer,) = [c for c in pipeline.components if c.id == "Trainer"]
        return trainer.inputs

    assert "base_model" not in trainer_inputs("--profile", "smoke")
    for flags in (("--profile", "smoke", "--warm-start"), ("--profile", "finetune")):
        base_model = trainer_inputs(*flags)["base_model"]
        assert base_model.producer_component_id == "ServedBaseline", flags


def test_flags_that_do_not_go_together_end_the_command_with_the_reason():
    with pytest.raises(SystemExit, match="digits run: profile 'ensemble': an ensemble's CNNs train from scratch"):
        main._settings(main.parser().parse_args(["run", "--profile", "ensemble", "--warm-start"]))


@pytest.mark.parametrize("name", ["Digits", "my_model", "-x", "a/b", ""])
def test_a_model_name_kubeflow_cannot_take_is_refused(name, capsys):
    with pytest.raises(SystemExit):
        main.parser().parse_args(["run", f"--model-name={name}"])
    assert f"model name {name!r}: use lower-case letters, digits and '-'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="lower-case letters"):
        configs.settings(model_name=name or "_")


def test_a_bad_labels_file_is_refused_by_name(tmp_path):
    path = tmp_path / "labels.txt"
    for text in ("a\nb\n", "\n".join(["same"] * 10)):
        path.write_text(text)
        with pytest.raises(ValueError, match=f"{path}: expected 10 different class names"):
            read_class_names(str(path))


def test_run_on_missing_data_fails_with_the_path(tmp_path, capsys):
    missing = tmp_path / "nothing-here"
    code = main.main(["run", "--data", str(missing), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{missing}: no digit data found" in err


def test_report_without_a_run_says_so(tmp_path, capsys):
    assert main.main(["report", "--output", str(tmp_path)]) == 1
    assert f"no runs of pipeline 'digits' under {tmp_path}" in capsys.readouterr().err


def test_serve_flags_take_tf_servings_names(tmp_path):
    args = main.parser().parse_args(
        [
            "serve",
            "--model_base_path",
            str(tmp_path),
            "--model_name",
            "mnist",
            "--port",
            "9000",
            "--rest_api_port",
            "0",
            "--file_system_poll_wait_seconds",
            "0.5",
            "--enable_batching",
        ]
    )
    options = serving_main.options_from_flags(args)
    assert [(m.name, m.base_path, m.policy.latest) for m in options.models] == [("mnist", str(tmp_path), 1)]
    assert (options.port, options.rest_api_port, options.file_system_poll_wait_seconds) == (9000, 0, 0.5)
    assert options.enable_batching and options.host == "127.0.0.1"
    aliases = main.parser().parse_args(
        ["serve", "--model-base-path", str(tmp_path), "--rest-port", "1", "--grpc-port", "2", "--poll-seconds", "3"]
    )
    assert (aliases.rest_api_port, aliases.port, aliases.file_system_poll_wait_seconds) == (1, 2, 3.0)


def test_serve_refuses_a_bad_config_file_by_name(tmp_path, capsys):
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "digits" base_path: "relative/path" } }')
    assert main.main(["serve", "--model_config_file", str(config)]) == 1
    assert f"{config}: Expected model digits to have an absolute path" in capsys.readouterr().err
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 8 }")
    assert main.main(["serve", "--batching_parameters_file", str(params), "--rest_api_port", "-1"]) == 1
    assert "without setting --enable_batching" in capsys.readouterr().err


def test_readable_logs_drop_known_noise_and_keep_real_warnings():
    def record(level, message):
        return logging.LogRecord("absl", level, "/elsewhere/lib.py", 1, message, None, None)

    readable = logs.ReadableLogs()
    assert not readable.filter(
        record(
            logging.WARNING,
            "AutoGraph could not transform <function create_autocast_variable at 0x7f> and will run it as-is.",
        )
    )
    assert readable.filter(record(logging.ERROR, "Input resolution error: the store is locked"))
    assert readable.filter(record(logging.WARNING, "AutoGraph could not transform <function preprocessing_fn>"))
    assert not readable.filter(record(logging.INFO, "library chatter"))


def test_monitor_without_logged_requests_says_where_it_looked(tmp_path, capsys):
    assert main.main(["monitor", "--output", str(tmp_path)]) == 1
    prefix = configs.request_log_prefix(str(tmp_path))
    assert f"no logged requests at {prefix}-*.tfrecord" in capsys.readouterr().err


def test_monitor_retrains_with_the_finetune_profile_unless_told(tmp_path):
    args = main.parser().parse_args(["monitor", "--retrain"])
    assert args.profile == "finetune" and main.parser().parse_args(["run"]).profile == configs.DEFAULT_PROFILE
    with pytest.raises(SystemExit):
        main.parser().parse_args(["monitor", "--retrain", "--seal"])
