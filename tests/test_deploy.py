"""Deploy files for the real TF Serving agree with the pipeline's model name and serving layout, and
their batching and monitoring files are read the same by `digits serve`."""

import os

import yaml

from models import features
from pipeline import configs
from serving import config

DEPLOY = os.path.join(configs.PROJECT_ROOT, "serving", "deploy")
CONFIG_FLAGS = {
    "--enable_batching",
    "--batching_parameters_file=/config/batching_parameters.txt",
    "--monitoring_config_file=/config/monitoring.config",
}


def test_docker_compose_serves_the_pushed_model_on_loopback():
    with open(os.path.join(DEPLOY, "docker-compose.yml")) as f:
        service = yaml.safe_load(f)["services"]["tf-serving"]
    assert service["image"].startswith("tensorflow/serving:")
    assert service["environment"]["MODEL_NAME"] == features.MODEL_NAME
    assert sorted(service["ports"]) == ["127.0.0.1:8500:8500", "127.0.0.1:8501:8501"]
    source, target, mode = service["volumes"][0].split(":")
    pushed = os.path.relpath(configs.serving_model_dir(os.path.join(configs.PROJECT_ROOT, "output")), DEPLOY)
    assert (source, target, mode) == (pushed, f"/models/{features.MODEL_NAME}", "ro")
    assert CONFIG_FLAGS <= set(service["command"])
    mounted = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"][1:]}
    assert mounted == {
        "/config/batching_parameters.txt": "./batching_parameters.txt",
        "/config/monitoring.config": "./monitoring.config",
    }


def test_kubernetes_manifest():
    with open(os.path.join(DEPLOY, "kubernetes.yaml")) as f:
        deployment, service = list(yaml.safe_load_all(f))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("tensorflow/serving:")
    assert f"--model_name={features.MODEL_NAME}" in container["args"]
    assert CONFIG_FLAGS <= set(container["args"])
    assert {"name": "config", "mountPath": "/config", "readOnly": True} in container["volumeMounts"]
    assert {p["containerPort"] for p in container["ports"]} == {8500, 8501}
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v1/models/{features.MODEL_NAME}"
    assert {p["port"] for p in service["spec"]["ports"]} == {8500, 8501}


def test_the_deploy_config_files_are_what_digits_serve_reads():
    batching = config.read_batching_parameters(os.path.join(DEPLOY, "batching_parameters.txt"))
    assert (batching.max_batch_size, batching.batch_timeout_micros, batching.num_batch_threads) == (64, 0, 1)
    assert config.read_monitoring_config(os.path.join(DEPLOY, "monitoring.config")) == config.PROMETHEUS_PATH
