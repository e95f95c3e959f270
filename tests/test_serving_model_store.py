"""`serving.model_store`: publishing versions, the version policies and labels, the watch over the
base path, and config reloads, on versions a fake loader reads (no SavedModel)."""

import os
import sys
import threading
import time

import pytest
import tensorflow as tf

from serving import config, errors
from serving.model_store import ModelStore, ServerCore, publish_version, version_number
from serving.servable import SAVED_MODEL_FILE, Servable


def _version(base, version, content: str = "ok") -> None:
    folder = os.path.join(base, str(version))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "model.txt"), "w") as f:
        f.write(content)
    with open(os.path.join(folder, SAVED_MODEL_FILE), "w") as f:
        f.write("")


def test_publish_version_makes_a_folder_a_candidate_only_once_it_is_whole(tmp_path, monkeypatch):
    """saved_model.pb, which makes a folder a candidate, appears last and whole: copied under another
    name, then renamed into place once everything else is there."""
    source = tmp_path / "model"
    (source / "variables").mkdir(parents=True)
    (source / "variables" / "variables.index").write_bytes(b"index")
    (source / SAVED_MODEL_FILE).write_bytes(b"graph" * 1000)
    target = tmp_path / "digits" / "7"
    renames = []
    real_replace = os.replace

    def replace(staged, final):
        renames.append((os.path.exists(final), (target / "variables" / "variables.index").exists()))
        assert os.path.basename(staged) != SAVED_MODEL_FILE and open(staged, "rb").read() == b"graph" * 1000
        real_replace(staged, final)

    monkeypatch.setattr(os, "replace", replace)
    assert publish_version(str(source), str(tmp_path / "digits"), 7) == str(target)
    assert renames == [(False, True)]
    assert sorted(p.name for p in target.iterdir()) == [SAVED_MODEL_FILE, "variables"]
    assert (target / SAVED_MODEL_FILE).read_bytes() == b"graph" * 1000


def _fake_loader(model_name: str, version: int, path: str) -> Servable:
    """Loads a version whose model.txt says "ok"; anything else fails as a corrupt SavedModel would."""
    with open(os.path.join(path, "model.txt")) as f:
        if f.read() != "ok":
            raise ValueError(f"{path} is corrupt")
    return Servable(model_name, version, {}, {})


def _store(base, options=None, **model) -> ModelStore:
    return ModelStore(config.ModelConfig("m", str(base), **model), _fake_loader, options or config.ServerOptions())


def test_newest_versions_serve_per_policy_and_older_ones_stand_in_for_broken_ones(tmp_path):
    for version in (1, 2):
        _version(tmp_path, version)
    store = _store(tmp_path)
    store.refresh()
    assert store.servable().version == 2 and [(s.version, s.state) for s in store.statuses()] == [(2, "AVAILABLE")]
    _version(tmp_path, 3, "broken")
    store.refresh()
    assert store.servable().version == 2  # 3 is wanted but fails: 2 stands in
    assert [(s.version, s.state, s.error_code) for s in store.statuses()] == [
        (3, "END", "UNKNOWN"),
        (2, "AVAILABLE", "OK"),
    ]
    assert "is corrupt" in store.statuses(3)[0].error_message
    with pytest.raises(errors.NotFound, match=r"Servable not found for request: Specific\(m, 3\)"):
        store.servable(version=3)
    with pytest.raises(errors.NotFound, match="Could not find version 9 of model m"):
        store.statuses(9)


def test_a_version_folder_is_named_by_an_integer_leading_zeros_allowed_as_tf_serving_parses_it(tmp_path):
    """`00000123/` is version 123, loaded from `00000123/` (TF Serving's own test models are written
    so); names that are not integers are no versions."""
    assert [version_number(name) for name in ("00000123", "7", "0", "v1", "1.0", "-1", "+2", "\u00b2", "")] == [
        123,
        7,
        0,
        None,
        None,
        None,
        None,
        None,
        None,
    ]
    _version(tmp_path, "00000123")
    _version(tmp_path, "0099", "broken")
    _version(tmp_path, "v200")
    loaded = []
    store = ModelStore(
        config.ModelConfig("m", str(tmp_path), config.VersionPolicy(all=True)),
        lambda name, version, path: (
            loaded.append((version, os.path.basename(path))) or _fake_loader(name, version, path)
        ),
        config.ServerOptions(),
    )
    store.refresh()
    assert sorted(loaded) == [(99, "0099"), (123, "00000123")]
    assert store.servable().version == 123 and store.servable(version=123).version == 123
    assert [(s.version, s.state) for s in store.statuses()] == [(123, "AVAILABLE"), (99, "END")]
    _version(tmp_path, 99)  # the same version without leading zeros is the one loaded
    store.refresh()
    assert loaded[-1] == (99, "99") and store.servable(version=99).version == 99


def test_a_status_read_while_versions_load_and_unload_misses_none(tmp_path):
    """A status request during a swap lists every version the store has served, as AVAILABLE or END,
    never none of the two (the watch thread moves versions while request threads read)."""
    _version(tmp_path, 1)
    store = _store(tmp_path)
    store.refresh()
    missed, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                seen = {s.version for s in store.statuses()}
            except Exception as e:  # A dict that changed while it was read, say.
                missed.append(repr(e))
                continue
            if seen != set(range(1, max(seen) + 1)):
                missed.append(sorted(seen))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # Switch threads as often as CPython allows, to meet the window.
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in range(2, 200):
            _version(tmp_path, version)
            store.refresh()
    finally:
        stop.set()
        reader.join()
        sys.setswitchinterval(interval)
    assert not missed, missed[:5]
    assert [s.state for s in store.statuses()] == ["AVAILABLE"] + ["END"] * 198


def test_a_half_copied_version_is_retried_once_complete(tmp_path):
    _version(tmp_path, 1)
    _version(tmp_path, 2, "half")
    store = _store(tmp_path, config.ServerOptions(max_num_load_retries=0))
    store.refresh()
    assert store.servable().version == 1
    store.refresh()  # Unchanged and out of retries: not tried again.
    assert store.statuses(2)[0].state == "END"
    _version(tmp_path, 2, "ok")  # The copy completes.
    store.refresh()
    assert store.servable().version == 2 and store.statuses(2)[0].state == "AVAILABLE"


def test_latest_two_specific_and_all_policies(tmp_path):
    for version in (1, 2, 3):
        _version(tmp_path, version)
    latest_two = _store(tmp_path, policy=config.VersionPolicy(latest=2))
    latest_two.refresh()
    assert [s.version for s in latest_two.statuses() if s.state == "AVAILABLE"] == [3, 2]
    specific = _store(tmp_path, policy=config.VersionPolicy(specific=(1,)))
    specific.refresh()
    assert specific.servable().version == 1
    every = _store(tmp_path, policy=config.VersionPolicy(all=True))
    every.refresh()
    assert [s.state for s in every.statuses()] == ["AVAILABLE"] * 3


def test_labels_name_versions_that_serve(tmp_path):
    for version in (1, 2):
        _version(tmp_path, version)
    store = _store(tmp_path, policy=config.VersionPolicy(latest=2), labels=(("stable", 1), ("canary", 2)))
    store.refresh()
    assert store.servable(label="stable").version == 1 and store.servable(label="canary").version == 2
    with pytest.raises(errors.InvalidArgument, match="Unrecognized servable version label: beta"):
        store.servable(label="beta")
    with pytest.raises(errors.FailedPrecondition, match="Request to assign label to version 7 of model m"):
        store.check_labels({"x": 7}, allow_unavailable=False)
    store.check_labels({"x": 7}, allow_unavailable=True)


def test_the_watch_survives_filesystem_errors_and_says_so_in_the_status(tmp_path, monkeypatch):
    base = tmp_path / "m"
    _version(base, 1)
    core = ServerCore(
        config.ServerOptions(models=(config.ModelConfig("m", str(base)),), file_system_poll_wait_seconds=0.05),
        _fake_loader,
    )
    core.start()
    try:
        store = core.store("m")
        real_listdir = tf.io.gfile.listdir
        failing = {"on": True}

        def flaky_listdir(path):
            if failing["on"]:
                raise OSError("the disk went away")
            return real_listdir(path)

        monkeypatch.setattr(tf.io.gfile, "listdir", flaky_listdir)
        time.sleep(0.3)
        assert "the disk went away" in store.statuses()[0].error_message
        assert store.statuses()[0].state == "AVAILABLE"  # Still serving what it had.
        _version(base, 2)
        failing["on"] = False
        deadline = time.time() + 10
        while store.servable().version != 2 and time.time() < deadline:
            time.sleep(0.05)
        assert store.servable().version == 2 and store.statuses()[0].error_message == ""
    finally:
        core.stop()


def test_config_reload_adds_and_removes_models_and_refuses_bad_labels(tmp_path):
    for name in ("a", "b"):
        _version(tmp_path / name, 1)
    core = ServerCore(config.ServerOptions(), _fake_loader)
    core.reload_config((config.ModelConfig("a", str(tmp_path / "a")),))
    assert core.model_names == ["a"]
    core.reload_config((config.ModelConfig("b", str(tmp_path / "b")),))
    assert core.model_names == ["b"]
    with pytest.raises(errors.NotFound, match=r"Servable not found for request: Latest\(a\)"):
        core.store("a")
    with pytest.raises(errors.FailedPrecondition):
        core.reload_config((config.ModelConfig("b", str(tmp_path / "b"), labels=(("stable", 5),)),))
    assert core.model_names == ["b"] and core.store("b").config.labels == ()
