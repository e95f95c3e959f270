"""Runs a compiled Kubeflow Pipelines spec here, task by task, as the KFP 2.x launcher runs it in pods.

Not an orchestrator for users (and not a mock): it reads the PipelineSpec YAML that `digits compile
--target kubeflow` writes, orders its DAG, and for each task builds the ExecutorInput the KFP driver
would (parameter values from the spec; input artifacts with the URI, type and metadata their producer
reported; output artifacts under the pipeline root; an output file), substitutes it for `{{$}}`, and
runs exactly the executor's container `command` + `args` in a process of its own in the project's
environment (what the image holds), with the image's environment variables. Each executor's
ExecutorOutput is read back as the launcher reads it.

Every pod's `python -m <entrypoint>` first spends about 6 s importing TFX, TensorFlow and Beam; here a
stdlib forkserver started with the image's environment imports the entrypoint and the spec's executor
modules once, and each task runs the entrypoint module as `__main__` in a process forked from it: the
same module, arguments, working folder and environment, one process per task, without the 6 s each.
(A script that calls `run_spec` needs the `if __name__ == "__main__":` guard: forkserver children import
the caller's main module.) What the open-source backend cannot run (resolver and importer executors,
lifecycle hooks) is refused, as it would be there. Caching is the backend's, not the
launcher's, and is not done here: every task runs.
"""

import concurrent.futures
import copy
import dataclasses
import json
import multiprocessing
import multiprocessing.forkserver
import os
import re
import runpy
import shlex
import sys
import threading
from typing import Any, Dict, List, Optional

import yaml

from pipeline import configs

DOCKERFILE = os.path.join(configs.PROJECT_ROOT, "Dockerfile")


class TaskFailedError(RuntimeError):
    def __init__(self, task: str, returncode: int, log: str):
        super().__init__(f"task {task} failed (exit code {returncode}):\n{log[-4000:]}")
        self.task = task
        self.log = log


@dataclasses.dataclass
class Run:
    """One run of a spec: the output artifacts of every task that ran, and each task's log."""

    run_id: str
    pipeline_root: str
    outputs: Dict[str, Dict[str, Dict[str, Any]]] = dataclasses.field(default_factory=dict)
    """task -> output key -> RuntimeArtifact (as JSON), metadata as its executor reported it."""
    logs: Dict[str, str] = dataclasses.field(default_factory=dict)

    def metadata(self, task: str, key: str) -> Dict[str, Any]:
        return self.outputs[task][key].get("metadata", {})

    def uri(self, task: str, key: str) -> str:
        return self.outputs[task][key]["uri"]


def load(path: str) -> Dict[str, Any]:
    with open(path) as f:
        return yaml.safe_load(f)


def image_environment(dockerfile: str = DOCKERFILE) -> Dict[str, str]:
    """The `ENV` variables the Dockerfile sets in the image (KEY=VALUE forms, continuation lines too)."""
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


def task_order(spec: Dict[str, Any]) -> List[str]:
    """The DAG's tasks, each after every task it depends on."""
    tasks = spec["root"]["dag"]["tasks"]
    order: List[str] = []
    visiting: set = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ValueError(f"the DAG has a cycle through {name}")
        visiting.add(name)
        for before in upstream(spec, name):
            visit(before)
        visiting.discard(name)
        order.append(name)

    for name in sorted(tasks):
        visit(name)
    return order


def _component(spec: Dict[str, Any], task: str) -> Dict[str, Any]:
    return spec["components"][spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]]


def container(spec: Dict[str, Any], task: str) -> Dict[str, Any]:
    """The task's container executor; anything the open-source backend cannot run is refused."""
    executor = spec["deploymentSpec"]["executors"][_component(spec, task)["executorLabel"]]
    kinds = sorted(executor)
    if kinds != ["container"]:
        raise ValueError(f"task {task}: {kinds} executors are not implemented by the open-source KFP backend")
    if "lifecycle" in executor["container"]:
        raise ValueError(f"task {task}: the open-source KFP backend does not run lifecycle hooks")
    return executor["container"]


def executor_input(spec: Dict[str, Any], task: str, run: Run, task_root: str) -> Dict[str, Any]:
    """The ExecutorInput (as JSON) the KFP driver hands the task's container."""
    definition = spec["root"]["dag"]["tasks"][task]
    component = _component(spec, task)
    parameters = {}
    for name, given in definition.get("inputs", {}).get("parameters", {}).items():
        runtime = given.get("runtimeValue")
        if runtime is None or "constant" not in runtime:
            raise ValueError(f"task {task}: parameter {name} is not a constant: {given}")
        parameters[name] = runtime["constant"]
    artifacts = {}
    for name, given in definition.get("inputs", {}).get("artifacts", {}).items():
        source = given["taskOutputArtifact"]
        artifacts[name] = {"artifacts": [run.outputs[source["producerTask"]][source["outputArtifactKey"]]]}
    outputs = {}
    for key, output in component.get("outputDefinitions", {}).get("artifacts", {}).items():
        uri = os.path.join(run.pipeline_root, run.run_id, task, key)
        os.makedirs(uri, exist_ok=True)  # As the launcher prepares output folders.
        outputs[key] = {
            "artifacts": [
                {
                    "name": f"projects/local/artifacts/{run.run_id}-{task}-{key}",
                    "type": copy.deepcopy(output["artifactType"]),
                    "uri": uri,
                    "metadata": {},
                }
            ]
        }
    return {
        "inputs": {"parameterValues": parameters, "artifacts": artifacts},
        "outputs": {"artifacts": outputs, "outputFile": os.path.join(task_root, "executor_output.json")},
    }


_forkserver_lock = threading.Lock()
_forkserver_started = False


def _entrypoint(command: List[str]) -> str:
    """The module of a `python -m <module> ...` command, the form of TFX's container commands."""
    if command[:2] != ["python", "-m"] or len(command) < 3:
        raise ValueError(f"this launcher runs `python -m <module>` containers, not {command[:3]}")
    return command[2]


def _executor_modules(spec: Dict[str, Any]) -> List[str]:
    """The entrypoint modules and executor classes' modules the spec's containers name."""
    modules = set()
    for executor in spec["deploymentSpec"]["executors"].values():
        command = executor.get("container", {}).get("command", [])
        args = executor.get("container", {}).get("args", [])
        if command[:2] == ["python", "-m"]:
            modules.add(command[2])
        for flag, value in zip(args, args[1:]):
            if flag == "--executor_class_path":
                modules.add(value.rpartition(".")[0])
    return sorted(modules)


def _start_forkserver(env: Dict[str, str], preload: List[str]) -> multiprocessing.context.BaseContext:
    """The forkserver context, its server started once with the image's environment (read at import by
    TensorFlow and Keras) and `preload` imported."""
    global _forkserver_started
    context = multiprocessing.get_context("forkserver")
    with _forkserver_lock:
        if not _forkserver_started:
            context.set_forkserver_preload(preload)
            saved = dict(os.environ)
            os.environ.update(env)
            try:
                multiprocessing.forkserver.ensure_running()
            finally:
                os.environ.clear()
                os.environ.update(saved)
            _forkserver_started = True
    return context


def _pod(command: List[str], cwd: str, env: Dict[str, str], log_path: str) -> None:
    """In the forked process: the container's environment, working folder and log, then its command."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    module = _entrypoint(command)
    sys.argv = [module, *command[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def run_task(spec: Dict[str, Any], task: str, run: Run, timeout: float = 900) -> None:
    """Runs one task's container command in a process of its own and records its outputs."""
    spec_container = container(spec, task)
    task_root = os.path.join(run.pipeline_root, run.run_id, task)
    os.makedirs(task_root, exist_ok=True)
    invocation = executor_input(spec, task, run, task_root)
    serialized = json.dumps(invocation)
    command = [*spec_container.get("command", []), *[a.replace("{{$}}", serialized) for a in spec_container["args"]]]
    leftover = [a for a in command if re.search(r"\{\{\$", a)]
    if leftover:
        raise ValueError(f"task {task}: placeholders this launcher does not fill: {leftover}")
    image = image_environment()
    env = {
        **{k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "TMPDIR")},
        **image,
        "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
    }
    log_path = os.path.join(task_root, "log.txt")  # As the backend keeps each pod's log.
    pod = _start_forkserver(image, _executor_modules(spec)).Process(
        target=_pod, args=(command, task_root, env, log_path), name=task
    )
    pod.start()
    pod.join(timeout)
    if pod.exitcode is None:
        pod.kill()
        pod.join()
    run.logs[task] = open(log_path).read() if os.path.exists(log_path) else ""
    if pod.exitcode != 0:
        raise TaskFailedError(task, pod.exitcode if pod.exitcode is not None else -9, run.logs[task])
    with open(invocation["outputs"]["outputFile"]) as f:
        reported = json.load(f).get("artifacts", {})
    run.outputs[task] = {}
    for key, declared in invocation["outputs"]["artifacts"].items():
        artifact = declared["artifacts"][0]
        given = (reported.get(key, {}).get("artifacts") or [{}])[0]
        if given.get("uri", artifact["uri"]) != artifact["uri"]:
            raise ValueError(f"task {task}: output {key} moved to {given['uri']}")
        run.outputs[task][key] = {**artifact, "metadata": given.get("metadata", {})}


def run_spec(spec_path: str, run_id: str, parallel: int = 2) -> Run:
    """Runs every task of the spec under its pipeline root, each once its upstream tasks are done, up to
    `parallel` at a time (as the backend starts independent pods together). A failing task raises
    TaskFailedError once the tasks already running have finished; nothing after it starts."""
    spec = load(spec_path)
    run = Run(run_id, spec["defaultPipelineRoot"])
    waiting = task_order(spec)
    done: set = set()
    running: Dict[concurrent.futures.Future, str] = {}
    failure: Optional[BaseException] = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        while waiting or running:
            ready = [t for t in waiting if set(upstream(spec, t)) <= done] if failure is None else []
            for task in ready[: parallel - len(running)]:
                waiting.remove(task)
                running[pool.submit(run_task, spec, task, run)] = task
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
    return run
