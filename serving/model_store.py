"""The served models: each model's versions under its base path, loaded and swapped while requests
keep flowing, as TF Serving's ServerCore does.

Versions are integer folders under a model's base path; a version is a candidate once its
`saved_model.pb` is there (or, with `--prefer_tflite_model`, its `model.tflite`, which is then served
instead: `serving.tflite`). The version policy (latest N, specific, all) picks the versions to serve;
a version that fails to load (or to warm up) is reported as END with its error while the versions
already loaded keep serving, and it is tried again when its folder changes (a half-copied version
loads once complete) or, unchanged, up to `max_num_load_retries` times `load_retry_interval_micros`
apart. Requests read a model's servables once and keep the version they got, while a swap replaces the
whole mapping, so a request in flight during a swap finishes on the version it started with.
"""

import dataclasses
import logging
import os
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import tensorflow as tf

from serving import servable as servables
from serving import tflite
from serving.config import ModelConfig, RequestLogging, ServerOptions, read_model_config
from serving.errors import FailedPrecondition, InvalidArgument, NotFound
from serving.servable import SAVED_MODEL_FILE, Servable

log = logging.getLogger(__name__)


def publish_version(source: str, base_path: str, version: int) -> str:
    """Copies a SavedModel into `<base_path>/<version>/` so that a server polling the base path never
    reads it half-written: everything else first, then saved_model.pb (what makes the folder a
    candidate) under a temporary name, renamed into place in one step. The source is read through
    TensorFlow's file systems (a local folder, or `gs://` where a pipeline keeps its artifacts); the
    copy is local."""
    target = os.path.join(base_path, str(version))
    for folder, _, files in tf.io.gfile.walk(source):
        here = os.path.join(target, os.path.relpath(folder, source))
        os.makedirs(here, exist_ok=True)
        for name in files:
            if name != SAVED_MODEL_FILE or folder.rstrip("/") != source.rstrip("/"):
                tf.io.gfile.copy(os.path.join(folder, name), os.path.join(here, name), overwrite=True)
    staged = os.path.join(target, f"{SAVED_MODEL_FILE}.tmp")
    tf.io.gfile.copy(os.path.join(source, SAVED_MODEL_FILE), staged, overwrite=True)
    os.replace(staged, os.path.join(target, SAVED_MODEL_FILE))
    return target


Loader = Callable[[str, int, str], Servable]
"""(model name, version, path) -> a loaded, warmed-up servable; raises if it cannot load."""


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    version: int
    state: str
    """TF Serving's ModelVersionStatus.State name: AVAILABLE, or END once unloaded or failed."""
    error_code: str = "OK"
    error_message: str = ""


@dataclasses.dataclass
class _Failure:
    fingerprint: Tuple
    attempts: int
    last_attempt: float
    message: str


def folder_fingerprint(path: str) -> Tuple:
    """Every file's relative path, size and modification time: changes whenever a copy progresses."""
    entries = []
    for root, _, files in tf.io.gfile.walk(path):
        for name in files:
            stat = tf.io.gfile.stat(os.path.join(root, name))
            entries.append((os.path.relpath(os.path.join(root, name), path), stat.length, stat.mtime_nsec))
    return tuple(sorted(entries))


def version_number(folder: str) -> Optional[int]:
    """The version a folder under a base path holds, or None if its name is not a version: TF Serving
    parses the name as an integer, so `00000123` is version 123 (but `v1` or `1.0` is no version)."""
    if not (folder.isascii() and folder.isdigit()):
        return None
    return int(folder)


class ModelStore:
    """The versions of one model."""

    def __init__(self, config: ModelConfig, loader: Loader, options: ServerOptions):
        self.config = config
        self._loader = loader
        self._options = options
        self._servables: Dict[int, Servable] = {}
        self._ended: Dict[int, VersionStatus] = {}
        self._versions_lock = threading.Lock()
        """Held while a version moves between `_servables` and `_ended` and while a status reads both, so
        that a status request never misses a version in the middle of its move (nor reads a dict that
        changes under it). Requests read `_servables`, replaced whole, without it."""
        self._failures: Dict[int, _Failure] = {}
        self._folders: Dict[int, str] = {}
        """Each version's folder name under the base path, as last listed."""
        self.watch_error: Optional[str] = None
        """The last error of watching the base path, until a watch succeeds again."""

    @property
    def name(self) -> str:
        return self.config.name

    def candidate_versions(self) -> List[int]:
        """The versions of the folders named by an integer (leading zeros allowed: `00000123/` is version
        123, as TF Serving parses the name) that hold a saved_model.pb, or a model.tflite when TF Lite
        models are preferred. Of two folders naming the same version, the one written without leading
        zeros, else the first in name order, is the version."""
        base = self.config.base_path
        if not tf.io.gfile.isdir(base):
            raise FileNotFoundError(f"Could not find base path {base} for servable {self.name}")
        folders: Dict[int, str] = {}
        for name in sorted(name.rstrip("/") for name in tf.io.gfile.listdir(base)):
            version = version_number(name)
            if version is None or not self._holds_model(os.path.join(base, name)):
                continue
            if version not in folders or name == str(version):
                folders[version] = name
        self._folders = folders
        return list(folders)

    def _holds_model(self, folder: str) -> bool:
        return serves_tflite(self._options, folder) or bool(tf.io.gfile.exists(os.path.join(folder, SAVED_MODEL_FILE)))

    def refresh(self) -> None:
        """Loads the versions the policy wants (newest first) and unloads the rest once one of them
        serves; older loaded versions stand in for wanted ones that fail. Raises on filesystem errors
        (the caller retries at the next poll)."""
        candidates = self.candidate_versions()
        wanted = self.config.policy.choose(candidates)
        for version in wanted:
            if version not in self._servables:
                self._try_load(version)
        serving = [v for v in wanted if v in self._servables]
        if not serving and not self._servables:
            # Nothing wanted loads and nothing serves (a corrupt newest version at start-up): the newest
            # older version that loads stands in, where TF Serving would serve nothing.
            for version in sorted(set(candidates) - set(wanted), reverse=True):
                self._try_load(version)
                if version in self._servables:
                    break
        # Until a wanted version serves, the loaded ones stand in for it: never serve nothing.
        dropped = sorted(set(self._servables) - set(serving)) if serving else []
        if dropped:
            with self._versions_lock:
                self._servables = {v: s for v, s in self._servables.items() if v not in dropped}
                self._ended.update({version: VersionStatus(version, "END") for version in dropped})
            log.info("Unloaded versions %s of %s", dropped, self.name)

    def _try_load(self, version: int) -> None:
        path = os.path.join(self.config.base_path, self._folders.get(version, str(version)))
        fingerprint = folder_fingerprint(path)
        failure = self._failures.get(version)
        now = time.monotonic()
        if failure and failure.fingerprint == fingerprint:
            retry_due = now - failure.last_attempt >= self._options.load_retry_interval_micros / 1e6
            if failure.attempts > self._options.max_num_load_retries or not retry_due:
                return
        attempts = failure.attempts + 1 if failure and failure.fingerprint == fingerprint else 1
        started = time.time()
        try:
            loaded = self._loader(self.name, version, path)
        except Exception as e:
            message = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
            self._failures[version] = _Failure(fingerprint, attempts, now, message)
            with self._versions_lock:
                self._ended[version] = VersionStatus(version, "END", "UNKNOWN", message)
            log.error(
                "Version %d of %s failed to load (attempt %d); still serving %s. %s",
                version,
                self.name,
                attempts,
                sorted(self._servables) or "nothing",
                message,
            )
            return
        self._failures.pop(version, None)
        with self._versions_lock:
            self._ended.pop(version, None)
            self._servables = {**self._servables, version: loaded}
        log.info("Loaded version %d of %s in %.1f s", version, self.name, time.time() - started)

    def servable(self, version: Optional[int] = None, label: Optional[str] = None) -> Servable:
        """The servable a request names: the newest available version, a version, or a label's."""
        servables_now = self._servables
        if label is not None:
            if label not in self.config.label_map:
                raise InvalidArgument(f"Unrecognized servable version label: {label}")
            version = self.config.label_map[label]
        if version is None:
            if not servables_now:
                raise NotFound(f"Servable not found for request: Latest({self.name})")
            return servables_now[max(servables_now)]
        if version not in servables_now:
            raise NotFound(f"Servable not found for request: Specific({self.name}, {version})")
        return servables_now[version]

    def statuses(self, version: Optional[int] = None) -> List[VersionStatus]:
        """Every version this store has served or tried, newest first (unloaded ones stay as END)."""
        watch = f"watching {self.config.base_path} failed: {self.watch_error}" if self.watch_error else ""
        with self._versions_lock:
            found = {v: VersionStatus(v, "AVAILABLE", error_message=watch) for v in self._servables}
            found.update({v: s for v, s in self._ended.items() if v not in found})
        statuses = [found[v] for v in sorted(found, reverse=True)]
        if version is not None:
            statuses = [s for s in statuses if s.version == version]
            if not statuses:
                raise NotFound(f"Could not find version {version} of model {self.name}")
        elif not statuses:
            raise NotFound(f"Could not find any versions of model {self.name}")
        return statuses

    def check_labels(self, labels: Dict[str, int], allow_unavailable: bool) -> None:
        """TF Serving's rule: a label may only name a version that serves now (unless allowed)."""
        for version in sorted(labels.values()):
            if version not in self._servables and not allow_unavailable:
                raise FailedPrecondition(
                    f"Request to assign label to version {version} of model {self.name}, "
                    "which is not currently available for inference"
                )

    def unload_all(self) -> None:
        with self._versions_lock:
            self._ended.update({version: VersionStatus(version, "END") for version in self._servables})
            self._servables = {}


class ServerCore:
    """Every configured model, and the thread that watches their folders and the config file."""

    def __init__(self, options: ServerOptions, loader: Loader):
        self.options = options
        self._loader = loader
        self._stores: Dict[str, ModelStore] = {}
        self._config_stamp: Optional[Tuple[int, int]] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        """Held while the watch thread or a reload request changes which models exist."""

    def store(self, name: str) -> ModelStore:
        if not name:
            raise InvalidArgument("ModelSpec has no name specified.")
        stores = self._stores
        if name not in stores:
            raise NotFound(f"Servable not found for request: Latest({name})")
        return stores[name]

    @property
    def model_names(self) -> List[str]:
        return sorted(self._stores)

    def request_logging(self, name: str) -> Optional[RequestLogging]:
        """The model's `logging_config` (None once the model is no longer configured)."""
        store = self._stores.get(name)
        return store.config.logging if store else None

    def reload_config(self, models: Tuple[ModelConfig, ...]) -> None:
        """Serves exactly these models: new ones are loaded, removed ones unloaded, changed policies
        and labels applied. A label on a version that does not serve refuses the whole new config."""
        with self._lock:
            previous = {name: store.config for name, store in self._stores.items()}
            stores = dict(self._stores)
            try:
                for config in models:
                    store = stores.get(config.name)
                    if store is None or store.config.base_path != config.base_path:
                        store = ModelStore(config, self._loader, self.options)
                    store.config = dataclasses.replace(
                        config, labels=previous.get(config.name, config).labels if config.name in previous else ()
                    )
                    self._refresh(store)
                    store.check_labels(config.label_map, self.options.allow_version_labels_for_unavailable_models)
                    stores[config.name] = store
            except Exception:
                for name, config in previous.items():
                    self._stores[name].config = config
                raise
            for config in models:
                stores[config.name].config = config
            for name in set(self._stores) - {c.name for c in models}:
                self._stores[name].unload_all()
                log.info("Model %s is no longer configured: unloaded", name)
            for name, store in self._stores.items():
                if stores.get(name) is not store:
                    store.unload_all()
            self._stores = {c.name: stores[c.name] for c in models}

    def _refresh(self, store: ModelStore) -> None:
        try:
            store.refresh()
            if store.watch_error:
                log.info("Watching %s works again", store.config.base_path)
            store.watch_error = None
        except Exception as e:
            message = f"{type(e).__name__}: {e}"
            if message != store.watch_error:
                log.error(
                    "Watching versions of %s failed; retrying every %.1f s. %s",
                    store.name,
                    self.options.file_system_poll_wait_seconds,
                    message,
                )
            store.watch_error = message

    def _reload_config_file(self) -> None:
        path = self.options.model_config_file
        if not path:
            return
        try:
            stat = os.stat(path)
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._config_stamp:
                return
            self.reload_config(read_model_config(path))
            self._config_stamp = stamp
            log.info("Model config %s (re)loaded: models %s", path, self.model_names)
        except Exception as e:
            log.error("Model config %s not applied: %s", path, e)

    def start(self) -> None:
        """Loads every configured model, then watches in a background thread."""
        if self.options.model_config_file:
            models = read_model_config(self.options.model_config_file)
            stat = os.stat(self.options.model_config_file)
            self._config_stamp = (stat.st_mtime_ns, stat.st_size)
        else:
            models = self.options.models
        self.reload_config(models)
        self._thread = threading.Thread(target=self._watch, name="model-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        poll = max(self.options.file_system_poll_wait_seconds, 0.05)
        config_poll = self.options.model_config_file_poll_wait_seconds
        next_config = time.monotonic() + config_poll
        while not self._stop.wait(poll):
            if config_poll > 0 and time.monotonic() >= next_config:
                self._reload_config_file()
                next_config = time.monotonic() + config_poll
            with self._lock:
                stores = list(self._stores.values())
                for store in stores:
                    self._refresh(store)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)


def serves_tflite(options: ServerOptions, folder: str) -> bool:
    """Whether a version folder is served from its model.tflite: TF Lite models preferred, and it has one."""
    return options.prefer_tflite_model and tflite.has_model(folder)


def load_servable(options: ServerOptions) -> Loader:
    """The loader the server uses: load (the version's model.tflite if TF Lite models are preferred and
    it has one, else its SavedModel), then replay the version's warmup requests (if enabled)."""

    def load(model_name: str, version: int, path: str) -> Servable:
        loaded = (tflite.load if serves_tflite(options, path) else servables.load)(model_name, version, path)
        if options.enable_model_warmup:
            records, seconds = servables.replay_warmup(
                loaded, path, options.max_batch_per_request, options.max_values_per_request
            )
            if records:
                log.info("Warmed up version %d of %s with %d requests in %.2f s", version, model_name, records, seconds)
        return loaded

    return load
