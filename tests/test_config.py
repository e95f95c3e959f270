"""The Trainer's settings (`models.config`): their checks, the ensemble's members, the precision chosen
on the machine that trains, and their crossing into the Trainer as JSON."""

import json

import pytest

from models import config as model_config
from models.config import DIGIT_AUGMENTATION, Augmentation, Member, TrainerConfig
from pipeline import configs


def test_ensemble_members_have_their_own_seed_and_settings():
    wider = Augmentation(rotation_degrees=15.0)
    members = (Member(augmentation=wider), Member(learning_rate=3e-3, deskew=True))
    config = TrainerConfig(epochs=2, learning_rate=1e-3, seed=5, ensemble=3, members=members)
    assert [(m.seed, m.learning_rate, m.augmentation, m.deskew, m.members) for m in map(config.member, range(3))] == [
        (5, 1e-3, wider, False, ()),
        (6, 3e-3, DIGIT_AUGMENTATION, True, ()),
        (7, 1e-3, DIGIT_AUGMENTATION, False, ()),  # Past the members' settings: the ensemble's own.
    ]
    assert TrainerConfig.from_custom_config(json.loads(json.dumps(config.as_custom_config()))) == config
    ensemble = configs.PROFILES["ensemble"].trainer
    assert TrainerConfig.from_custom_config(json.loads(json.dumps(ensemble.as_custom_config()))) == ensemble
    assert len({(m.learning_rate, m.augmentation) for m in map(ensemble.member, range(ensemble.ensemble))}) > 1
    with pytest.raises(ValueError, match="Settings for 2 members of an ensemble of 1 CNNs"):
        TrainerConfig(epochs=1, members=(Member(), Member()))


def test_an_ensemble_is_not_warm_started():
    with pytest.raises(ValueError, match="from scratch"):
        configs.settings("ensemble", warm_start=True)
    with pytest.raises(ValueError, match="at least 1"):
        TrainerConfig(epochs=1, ensemble=0)


def test_trainer_config_checks_its_choices_and_crosses_as_json():
    config = TrainerConfig(epochs=3, precision="float32", strategy="mirrored", seed=7)
    assert TrainerConfig.from_custom_config(json.loads(json.dumps(config.as_custom_config()))) == config
    with pytest.raises(ValueError, match="Unknown precision 'float16'"):
        TrainerConfig(epochs=1, precision="float16")
    with pytest.raises(ValueError, match="Unknown training strategy 'tpu'"):
        TrainerConfig(epochs=1, strategy="tpu")
    named = TrainerConfig(
        epochs=1,
        class_names=tuple("abcdefghij"),
        augmentation=Augmentation(0.0, 0.0, 0.05, True),
        test_time_rotation=6.0,
    )
    assert TrainerConfig.from_custom_config(json.loads(json.dumps(named.as_custom_config()))) == named
    with pytest.raises(ValueError, match="3 class names, the CNN has 10 classes"):
        TrainerConfig(epochs=1, class_names=("a", "b", "c"))
    # The keys of TFX's cloud training extension share the Trainer's custom_config.
    extended = {**config.as_custom_config(), "ai_platform_training_args": {"project": "p"}}
    assert TrainerConfig.from_custom_config(extended) == config


@pytest.mark.parametrize(
    "flags, native",
    [
        ("fpu vme avx2 fma avx512f avx512_bf16 amx_tile", True),
        ("fpu vme avx2 fma amx_bf16 amx_tile", True),
        ("fpu vme avx2 fma avx512f avx512bw", False),
    ],
)
def test_auto_precision_is_bfloat16_only_where_the_cpu_computes_it(tmp_path, monkeypatch, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert model_config.cpu_has_bfloat16(str(cpuinfo)) is native
    monkeypatch.setattr(model_config, "cpu_has_bfloat16", lambda: native)
    assert model_config.resolve_precision("auto") == ("mixed_bfloat16" if native else "float32")
    assert model_config.resolve_precision("float32") == "float32"
    assert model_config.resolve_precision("mixed_bfloat16") == "mixed_bfloat16"


def test_no_cpuinfo_means_float32(tmp_path):
    assert model_config.cpu_has_bfloat16(str(tmp_path / "missing")) is False
