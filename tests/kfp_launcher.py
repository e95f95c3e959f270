"""Runs a compiled Kubeflow Pipelines spec here, task by task, on the contract of the KFP 2.x backend's
driver and launcher, as read in kubeflow/pipelines (tags 2.2.0 and 2.5.0; `drv` is
`backend/src/v2/driver/driver.go`, `lch` `backend/src/v2/component/launcher_v2.go`, `mdc` and `cnv`
`backend/src/v2/metadata/client.go` and `converter.go`; lines at 2.5.0):

- Artifacts live on an object store: a real S3 server (moto's, on loopback) holds every `minio://` and
  `s3://` URI; a root without a scheme is refused (`objectstore/config.go` L115-124).
- Output artifacts are provisioned at `<root>/<pipeline>/<run>/<task>/<salt>/<key>` (`drv` L2046, `mdc`
  L316), with an `executor-logs` output of type `system.Artifact` (`drv` L2025-2037, PUBLISH_LOGS on by
  default), and the output file at `/tmp/kfp_outputs/output_metadata.json` (`lch` L458).
- Input artifacts are what ML Metadata returns: named by their store ids, typed `{"instanceSchema": ""}`
  (`mdc` L175-190, L944-949), metadata with every number a double, bools 1/0, lists and structs wrapped,
  `display_name` and `store_session_info` added (`cnv` L110-210, `mdc` L1038-1053).
- Each task is a fresh process (`command` + `args`, `{{$}}` substituted) in a private mount namespace: its
  own `/minio`, `/s3`, `/gcs` and `/tmp/kfp_outputs`, and the PersistentVolumeClaims its Kubernetes
  platform spec mounts (`drv` L738-764). Before it runs, its inputs' first artifacts are downloaded to
  `LocalPathForURI` (`lch` L619-688, L882-896) and its outputs' parent folders made (`lch` L898-925);
  after, its ExecutorOutput is read strictly (or taken as empty if absent, `lch` L851-880), merged into
  the provisioned artifacts (executor URI if given, metadata overlaid, `lch` L835-849), uploaded (a
  missing local folder is a warning, `lch` L540-592) and recorded. The task's log is its
  `executor-logs` artifact (`lch` L467-488).
- Vertex AI mode runs each executor's `lifecycle.preCacheCheck` command first, with the same
  ExecutorInput and output file, as Vertex does for TFX's ExampleGen driver.

What the backend refuses is refused (resolver and custom-job executors, `argocompiler/dag.go` L327-332;
lifecycle hooks outside Vertex mode). Caching is not done: every task runs. Mount namespaces need root
(as CI runs); `runnable()` says why not elsewhere.
"""

import concurrent.futures
import copy
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from typing import Any, Dict, List, Optional, Tuple

import boto3
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from moto.server import ThreadedMotoServer

from pipeline import configs, kubeflow_executor

DOCKERFILE = os.path.join(configs.PROJECT_ROOT, "Dockerfile")
OUTPUT_METADATA = "/tmp/kfp_outputs/output_metadata.json"
LAUNCHER_MOUNTS = ("/minio", "/s3", "/gcs")
EXECUTOR_LOGS = "executor-logs"
KFP_VERSIONS = ("2.2", "2.5")


class TaskFailedError(RuntimeError):
    def __init__(self, task: str, returncode: int, log: str):
        super().__init__(f"task {task} failed (exit code {returncode}):\n{log[-4000:]}")
        self.task = task
        self.log = log


def runnable() -> Optional[str]:
    """Why tasks cannot run here (None: they can)."""
    if os.geteuid() != 0:
        return "each task runs in a mount namespace of its own, which needs root (CI runs as root)"
    if shutil.which("unshare") is None:
        return "util-linux's unshare is not installed"
    return None


class ObjectStore:
    """An S3-compatible server on loopback (moto's), holding every `minio://` and `s3://` bucket."""

    def __init__(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="minio",
            aws_secret_access_key="minio123",
        )
        self._lock = threading.Lock()

    def stop(self) -> None:
        self.server.stop()

    @staticmethod
    def split(uri: str) -> Tuple[str, str]:
        scheme, _, rest = uri.partition("://")
        if scheme not in ("minio", "s3"):
            raise ValueError(f"{uri}: this store holds minio:// and s3:// URIs")
        bucket, _, key = rest.partition("/")
        return bucket, key.rstrip("/")

    def make_bucket(self, uri: str) -> None:
        bucket, _ = self.split(uri)
        with self._lock:
            existing = {b["Name"] for b in self.client.list_buckets().get("Buckets", [])}
            if bucket not in existing:
                self.client.create_bucket(Bucket=bucket)

    def keys(self, uri: str) -> List[str]:
        bucket, prefix = self.split(uri)
        found: List[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
            found += [item["Key"] for item in page.get("Contents", [])]
        return found

    def download(self, uri: str, local: str) -> int:
        """Every object under `uri` into `local` (`objectstore.DownloadBlob`); how many."""
        bucket, prefix = self.split(uri)
        keys = self.keys(uri)
        for key in keys:
            target = os.path.join(local, os.path.relpath(key, prefix))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            self.client.download_file(bucket, key, target)
        return len(keys)

    def upload(self, local: str, uri: str) -> int:
        """Every file under `local` to `uri` (`objectstore.UploadBlob`); how many."""
        bucket, prefix = self.split(uri)
        count = 0
        for folder, _, files in os.walk(local):
            for name in files:
                path = os.path.join(folder, name)
                self.client.upload_file(path, bucket, f"{prefix}/{os.path.relpath(path, local)}")
                count += 1
        return count


class MetadataStore:
    """ML Metadata as the backend uses it: artifacts recorded with their type's title and metadata as
    MLMD values, read back as the driver rebuilds them."""

    def __init__(self, session_info: str):
        self.session_info = session_info
        self.artifacts: Dict[int, Dict[str, Any]] = {}
        self._lock = threading.Lock()

    def record(self, output_key: str, artifact: Dict[str, Any], kfp_version: str) -> int:
        """`RecordArtifact`: numbers stored as doubles, bools as ints, lists and structs wrapped
        (`cnv` L110-165); `display_name` defaulted to the output key, `store_session_info` added from 2.3."""
        metadata = {key: _to_store(value) for key, value in artifact.get("metadata", {}).items()}
        metadata.setdefault("display_name", output_key)
        if kfp_version >= "2.3":
            metadata["store_session_info"] = self.session_info
        with self._lock:
            artifact_id = len(self.artifacts) + 1
            self.artifacts[artifact_id] = {"uri": artifact["uri"], "metadata": metadata, "type": artifact["type"]}
        return artifact_id

    def runtime_artifact(self, artifact_id: int) -> Dict[str, Any]:
        """`ToRuntimeArtifact` of an upstream output: the id as its name, a blank instance schema."""
        stored = self.artifacts[artifact_id]
        return {
            "name": str(artifact_id),
            "uri": stored["uri"],
            "type": {"instanceSchema": ""},
            "metadata": copy.deepcopy(stored["metadata"]),
        }


def _to_store(value: Any) -> Any:
    if isinstance(value, bool):
        return float(int(value))
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return {"list": value}
    if isinstance(value, dict):
        return {"struct": value}
    return value


@dataclasses.dataclass
class Run:
    """One run of a spec: the output artifacts of every task that ran (as ML Metadata holds them), each
    task's log and the peak resident memory of its processes."""

    run_id: str
    pipeline_root: str
    kfp_version: str
    store: MetadataStore
    outputs: Dict[str, Dict[str, int]] = dataclasses.field(default_factory=dict)
    """task -> output key -> artifact id in the metadata store."""
    logs: Dict[str, str] = dataclasses.field(default_factory=dict)
    peak_mb: Dict[str, float] = dataclasses.field(default_factory=dict)

    def artifact(self, task: str, key: str) -> Dict[str, Any]:
        return self.store.artifacts[self.outputs[task][key]]

    def metadata(self, task: str, key: str) -> Dict[str, Any]:
        return self.artifact(task, key)["metadata"]

    def uri(self, task: str, key: str) -> str:
        return self.artifact(task, key)["uri"]


def load(path: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """A compiled file: its PipelineSpec (out of a Vertex AI PipelineJob too) and its Kubernetes platform
    spec ({} when it has none), as the API server reads a multi-document YAML (`v2_template.go` L157)."""
    import yaml

    with open(path) as f:
        documents = [d for d in yaml.safe_load_all(f) if d]
    spec = documents[0].get("pipelineSpec", documents[0])
    platform = documents[1] if len(documents) > 1 else {}
    return spec, platform


def image_environment(dockerfile: str = DOCKERFILE) -> Dict[str, str]:
    """The `ENV` variables the Dockerfile sets in the image (KEY=VALUE forms, continuation lines too)."""
    import shlex

    with open(dockerfile) as f:
        text = f.read().replace("\\\n", " ")
    env: Dict[str, str] = {}
    for line in text.splitlines():
        if line.strip().upper().startswith("ENV "):
            for word in shlex.split(line.strip()[4:]):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def upstream(spec: Dict[str, Any], name: str) -> List[str]:
    """The tasks a task waits for: its `dependentTasks` and the producers of its input artifacts."""
    task = spec["root"]["dag"]["tasks"][name]
    found = set(task.get("dependentTasks", []))
    for given in task.get("inputs", {}).get("artifacts", {}).values():
        found.add(given["taskOutputArtifact"]["producerTask"])
    return sorted(found)


def _component(spec: Dict[str, Any], task: str) -> Dict[str, Any]:
    return spec["components"][spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]]


def _executor_label(spec: Dict[str, Any], task: str) -> str:
    return _component(spec, task)["executorLabel"]


def container(spec: Dict[str, Any], task: str, vertex: bool = False) -> Dict[str, Any]:
    """The task's container executor; what the open-source backend cannot run is refused."""
    executor = spec["deploymentSpec"]["executors"][_executor_label(spec, task)]
    kinds = sorted(executor)
    if kinds != ["container"]:
        raise ValueError(f"task {task}: {kinds} executors are not implemented by the open-source KFP backend")
    if "lifecycle" in executor["container"] and not vertex:
        raise ValueError(f"task {task}: the open-source KFP backend does not run lifecycle hooks")
    return executor["container"]


def pvc_mounts(platform: Dict[str, Any], spec: Dict[str, Any], task: str) -> List[Tuple[str, str]]:
    """(claim name, mount path) of the task's `pvcMount`s in the Kubernetes platform spec."""
    executors = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    mounts = []
    for mount in executors.get(_executor_label(spec, task), {}).get("pvcMount", []):
        name = mount.get("constant") or mount.get("pvcNameParameter", {}).get("runtimeValue", {}).get("constant")
        if not name or not mount.get("mountPath"):
            raise ValueError(f"task {task}: a pvcMount needs a claim name and a mountPath: {mount}")
        mounts.append((name, mount["mountPath"]))
    return mounts


class Cluster:
    """A KFP backend's contract, here: one object store, one metadata store, persistent volume claims as
    folders, runs of compiled specs."""

    def __init__(self, root: str, kfp_version: str = "2.5", vertex: bool = False):
        if kfp_version not in KFP_VERSIONS:
            raise ValueError(f"KFP {kfp_version}: this launcher follows {', '.join(KFP_VERSIONS)}")
        self.root = root
        self.kfp_version = kfp_version
        self.vertex = vertex
        self.objects = ObjectStore()
        session = {"provider": "minio", "params": {"endpoint": self.objects.endpoint, "region": "minio"}}
        self.metadata = MetadataStore(json.dumps(session))
        self.environment = image_environment()

    def stop(self) -> None:
        self.objects.stop()

    def volume(self, claim: str) -> str:
        """The folder behind a PersistentVolumeClaim."""
        path = os.path.join(self.root, "volumes", claim)
        os.makedirs(path, exist_ok=True)
        return path

    def run(
        self,
        spec_path: str,
        run_id: str,
        pipeline_root: Optional[str] = None,
        kfp_version: Optional[str] = None,
        parallel: int = 2,
        only: Optional[List[str]] = None,
    ) -> Run:
        """Runs every task of the spec, each once its upstream tasks are done, up to `parallel` at a time.
        The root is the run's (`pipeline_root`), else the backend's default, as the API server ignores
        the spec's `defaultPipelineRoot` (`apiserver/template/template.go` L164, `config/env.go` L76-82).
        A failing task raises TaskFailedError once the tasks already running have finished. `kfp_version`
        overrides the cluster's for this run (a cluster upgraded between runs); `only` runs just those
        tasks, which must need no other."""
        kfp_version = kfp_version or self.kfp_version
        if kfp_version not in KFP_VERSIONS:
            raise ValueError(f"KFP {kfp_version}: this launcher follows {', '.join(KFP_VERSIONS)}")
        spec, platform = load(spec_path)
        root = pipeline_root or configs.KUBEFLOW_PIPELINE_ROOT
        if not root.startswith(("minio://", "s3://", "gs://")):
            raise ValueError(f'parse bucket config failed: unrecognized pipeline root format: "{root}"')
        self.objects.make_bucket(root)
        run = Run(run_id, f"{root.rstrip('/')}/{spec['pipelineInfo']['name']}/{run_id}", kfp_version, self.metadata)
        waiting = sorted(only or spec["root"]["dag"]["tasks"])
        done: set = set()
        running: Dict[concurrent.futures.Future, str] = {}
        failure: Optional[BaseException] = None
        with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
            while waiting or running:
                ready = [t for t in waiting if set(upstream(spec, t)) <= done] if failure is None else []
                for task in ready[: parallel - len(running)]:
                    waiting.remove(task)
                    running[pool.submit(self.run_task, spec, platform, task, run)] = task
                if not running:
                    break
                finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in finished:
                    task = running.pop(future)
                    if future.exception() is not None:
                        failure = failure or future.exception()
                    else:
                        done.add(task)
        if failure is not None:
            raise failure
        if waiting:
            raise ValueError(f"tasks never ready (a cycle, or upstream tasks not run): {waiting}")
        return run

    def executor_input(self, spec: Dict[str, Any], task: str, run: Run) -> Dict[str, Any]:
        """The ExecutorInput (as JSON) the driver hands the task's container."""
        definition = spec["root"]["dag"]["tasks"][task]
        parameters = {}
        for name, given in definition.get("inputs", {}).get("parameters", {}).items():
            runtime = given.get("runtimeValue")
            if runtime is None or "constant" not in runtime:
                raise ValueError(f"task {task}: parameter {name} is not a constant: {given}")
            parameters[name] = runtime["constant"]
        artifacts = {}
        for name, given in definition.get("inputs", {}).get("artifacts", {}).items():
            source = given["taskOutputArtifact"]
            artifact_id = run.outputs[source["producerTask"]][source["outputArtifactKey"]]
            artifacts[name] = {"artifacts": [self.metadata.runtime_artifact(artifact_id)]}
        declared = copy.deepcopy(_component(spec, task).get("outputDefinitions", {}).get("artifacts", {}))
        if run.kfp_version >= "2.5" and not self.vertex:
            declared[EXECUTOR_LOGS] = {"artifactType": {"schemaTitle": "system.Artifact"}}
        outputs = {}
        for key, output in declared.items():
            uri = f"{run.pipeline_root}/{task}/{uuid.uuid4()}/{key}"
            outputs[key] = {"artifacts": [{"type": output["artifactType"], "uri": uri, "metadata": {}}]}
        return {
            "inputs": {"parameterValues": parameters, "artifacts": artifacts},
            "outputs": {"artifacts": outputs, "outputFile": OUTPUT_METADATA},
        }

    def run_task(self, spec: Dict[str, Any], platform: Dict[str, Any], task: str, run: Run, timeout: float = 900):
        """One pod: download the inputs, run the container's command, upload and record the outputs."""
        spec_container = container(spec, task, self.vertex)
        pod = os.path.join(self.root, "pods", run.run_id, task)
        mounts = {path: os.path.join(pod, path.strip("/").replace("/", "_")) for path in LAUNCHER_MOUNTS}
        mounts["/tmp/kfp_outputs"] = os.path.join(pod, "kfp_outputs")
        for claim, path in pvc_mounts(platform, spec, task):
            mounts[path] = self.volume(claim)
        for folder in [*mounts.values(), os.path.join(pod, "work")]:
            os.makedirs(folder, exist_ok=True)
        invocation = self.executor_input(spec, task, run)

        def local(uri: str) -> str:  # LocalPathForURI, inside this pod's mounts.
            path = kubeflow_executor.launcher_path(uri)
            mount = "/" + path.strip("/").split("/")[0]
            return os.path.join(mounts[mount], os.path.relpath(path, mount))

        for artifacts in invocation["inputs"]["artifacts"].values():
            first = artifacts["artifacts"][0]
            self.objects.download(first["uri"], local(first["uri"]))
        for artifacts in invocation["outputs"]["artifacts"].values():
            os.makedirs(os.path.dirname(local(artifacts["artifacts"][0]["uri"])), exist_ok=True)
        serialized = json.dumps(invocation)
        log_path = os.path.join(pod, "log.txt")
        commands = [spec_container["command"] + [a.replace("{{$}}", serialized) for a in spec_container["args"]]]
        hook = spec_container.get("lifecycle", {}).get("preCacheCheck")
        if hook:
            commands.insert(0, hook["command"] + [a.replace("{{$}}", serialized) for a in hook["args"]])
        peak = 0.0
        for command in commands:
            returncode, peak_mb = self._pod_process(command, mounts, os.path.join(pod, "work"), log_path, timeout)
            peak = max(peak, peak_mb)
            if returncode != 0:
                run.logs[task] = _read(log_path)
                raise TaskFailedError(task, returncode, run.logs[task])
        run.logs[task] = _read(log_path)
        run.peak_mb[task] = peak
        output_file = os.path.join(mounts["/tmp/kfp_outputs"], os.path.basename(OUTPUT_METADATA))
        reported = pipeline_spec_pb2.ExecutorOutput()
        if os.path.exists(output_file):
            with open(output_file) as f:
                json_format.Parse(f.read(), reported)  # Strict, as protojson.Unmarshal.
        reported_json = json_format.MessageToDict(reported)
        if EXECUTOR_LOGS in invocation["outputs"]["artifacts"]:
            logs_uri = invocation["outputs"]["artifacts"][EXECUTOR_LOGS]["artifacts"][0]["uri"]
            os.makedirs(local(logs_uri), exist_ok=True)
            shutil.copy(log_path, os.path.join(local(logs_uri), "log.txt"))
        outputs = {}
        for key, declared in invocation["outputs"]["artifacts"].items():
            artifact = copy.deepcopy(declared["artifacts"][0])
            given = (reported_json.get("artifacts", {}).get(key, {}).get("artifacts") or [{}])[0]
            artifact["uri"] = given.get("uri") or artifact["uri"]
            artifact["metadata"].update(given.get("metadata", {}))
            if os.path.exists(local(artifact["uri"])):
                self.objects.upload(local(artifact["uri"]), artifact["uri"])
            outputs[key] = self.metadata.record(key, artifact, run.kfp_version)
        run.outputs[task] = outputs

    def _pod_process(
        self, command: List[str], mounts: Dict[str, str], cwd: str, log_path: str, timeout: float
    ) -> Tuple[int, float]:
        """`command` in a fresh process in a mount namespace of its own; its exit code and peak memory."""
        binds = []
        for path, folder in sorted(mounts.items()):
            os.makedirs(path, exist_ok=True)  # The mount point, in the host's tree.
            binds += [folder, path]
        script = 'set -e; while [ "$1" != -- ]; do mount --bind "$1" "$2"; shift 2; done; shift; cd "$0"; exec "$@"'
        python = os.path.dirname(sys.executable)
        env = {
            **{k: v for k, v in os.environ.items() if k in ("LANG", "TMPDIR")},
            **self.environment,
            "HOME": cwd,
            "PATH": f"{python}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        }
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, cwd, *binds, "--", *command]
        with open(log_path, "a") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        timer = threading.Timer(timeout, lambda: os.killpg(process.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        return process.returncode, usage.ru_maxrss / 1024


def _read(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read()
