"""Versions of one model under a TF Serving base path, loaded and swapped while requests keep flowing.

As TF Serving does: versions are integer folders under `<base>/<model_name>/`, a version is ready once
its `saved_model.pb` is there (the Pusher copies it last), the newest ready versions are served, and a
version that fails to load is reported and skipped while the previous one stays in service.
"""

import dataclasses
import logging
import os
import shutil
import threading
import time
from typing import Dict, List, Optional, Tuple

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

log = logging.getLogger(__name__)

SAVED_MODEL_FILE = "saved_model.pb"


def copy_version(source: str, base_path: str, version: int) -> str:
    """Copies a SavedModel into `<base_path>/<version>/` as the Pusher writes one: everything else
    first, saved_model.pb last, so a server never sees a version half-written."""
    target = os.path.join(base_path, str(version))
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(SAVED_MODEL_FILE))
    shutil.copy(os.path.join(source, SAVED_MODEL_FILE), os.path.join(target, SAVED_MODEL_FILE))
    return target


class NotFoundError(LookupError):
    """Unknown model, version or label: a 404 for clients."""


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """One loaded version: its callable signatures and their SignatureDefs (for metadata)."""

    version: int
    signatures: Dict[str, tf.types.experimental.ConcreteFunction]
    signature_defs: Dict[str, meta_graph_pb2.SignatureDef]
    handle: object = dataclasses.field(repr=False, default=None)
    """The loaded SavedModel object, kept alive for as long as its functions may be called."""


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    version: int
    state: str  # TF Serving's ModelVersionStatus.State names: AVAILABLE, END, ...
    error: str = ""


def _signature_defs(path: str) -> Dict[str, meta_graph_pb2.SignatureDef]:
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, SAVED_MODEL_FILE), "rb") as f:
        saved_model.ParseFromString(f.read())
    return {k: v for k, v in saved_model.meta_graphs[0].signature_def.items() if not k.startswith("__")}


def load_version(path: str, version: int) -> LoadedModel:
    """Loads one version; raises if the SavedModel is unreadable or has no signatures."""
    loaded = tf.saved_model.load(path)
    signatures = dict(loaded.signatures)
    if not signatures:
        raise ValueError(f"{path} has no serving signatures")
    return LoadedModel(version, signatures, _signature_defs(path), loaded)


class ModelStore:
    """The served versions of one model.

    Requests read `self._models` once and keep the model they got, while a swap replaces the whole dict
    (one writer: the watch thread): a request in flight during a swap finishes on the version it started
    with, and none waits on a load.
    """

    def __init__(self, base_path: str, model_name: str, keep_versions: int = 2, labels: Optional[Dict[str, int]] = None):
        self.base_path = base_path
        self.model_name = model_name
        self.keep_versions = keep_versions
        self.labels = dict(labels or {})
        self._models: Dict[int, LoadedModel] = {}
        self._failed: Dict[int, Tuple[float, str]] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def ready_versions(self) -> List[int]:
        """Integer folders holding a saved_model.pb, newest first."""
        if not tf.io.gfile.isdir(self.base_path):
            return []
        versions = []
        for name in tf.io.gfile.listdir(self.base_path):
            name = name.rstrip("/")
            if name.isdigit() and tf.io.gfile.exists(os.path.join(self.base_path, name, SAVED_MODEL_FILE)):
                versions.append(int(name))
        return sorted(versions, reverse=True)

    def refresh(self) -> None:
        """Serves the newest `keep_versions` versions that load (older ones stand in for failed newer
        ones) and unloads the rest. Never raises: a bad version is reported in `status`."""
        keep: List[int] = []
        for version in self.ready_versions():
            if len(keep) == self.keep_versions:
                break
            if version not in self._models:
                self._load(version)
            if version in self._models:
                keep.append(version)
        dropped = sorted(set(self._models) - set(keep))
        if dropped:
            self._models = {v: m for v, m in self._models.items() if v in keep}
            log.info("Unloaded versions %s of %s", dropped, self.model_name)

    def _load(self, version: int) -> None:
        path = os.path.join(self.base_path, str(version))
        stamp = tf.io.gfile.stat(os.path.join(path, SAVED_MODEL_FILE)).mtime_nsec
        if version in self._failed and self._failed[version][0] == stamp:
            return  # Failed as it is now; tried again only once its saved_model.pb changes.
        started = time.time()
        try:
            model = load_version(path, version)
        except Exception as e:  # pylint: disable=broad-except
            message = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
            self._failed[version] = (stamp, message)
            log.error("Version %d of %s failed to load; still serving %s. %s",
                      version, self.model_name, sorted(self._models) or "nothing", message)
            return
        self._failed.pop(version, None)
        self._models = {**self._models, version: model}
        log.info("Loaded version %d of %s in %.1f s", version, self.model_name, time.time() - started)

    def get(self, version: Optional[int] = None, label: Optional[str] = None) -> LoadedModel:
        models = self._models
        if label is not None:
            if label not in self.labels:
                raise NotFoundError(f"Unknown label '{label}' for model '{self.model_name}'")
            version = self.labels[label]
        if version is None:
            if not models:
                raise NotFoundError(f"No versions of model '{self.model_name}' are available")
            return models[max(models)]
        if version not in models:
            raise NotFoundError(f"Version {version} of model '{self.model_name}' is not available")
        return models[version]

    def status(self, version: Optional[int] = None) -> List[VersionStatus]:
        statuses = [VersionStatus(v, "AVAILABLE") for v in sorted(self._models, reverse=True)]
        statuses += [VersionStatus(v, "END", message) for v, (_, message) in sorted(self._failed.items(), reverse=True)]
        if version is not None:
            statuses = [s for s in statuses if s.version == version]
            if not statuses:
                raise NotFoundError(f"Version {version} of model '{self.model_name}' is not available")
        return statuses

    def start(self, poll_seconds: float = 2.0) -> None:
        """Loads what is there now, then watches for new versions in a background thread."""
        self.refresh()

        def watch():
            while not self._stop.wait(poll_seconds):
                self.refresh()

        self._thread = threading.Thread(target=watch, name=f"watch-{self.model_name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
