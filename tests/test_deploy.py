"""Deploy files for the real TF Serving agree with the pipeline's model name and serving layout."""

import os

import yaml

from pipeline import configs

DEPLOY = os.path.join(configs.PROJECT_ROOT, "serving", "deploy")


def test_docker_compose_serves_the_pushed_model_on_loopback():
    with open(os.path.join(DEPLOY, "docker-compose.yml")) as f:
        service = yaml.safe_load(f)["services"]["tf-serving"]
    assert service["image"].startswith("tensorflow/serving:")
    assert service["environment"]["MODEL_NAME"] == configs.MODEL_NAME
    assert sorted(service["ports"]) == ["127.0.0.1:8500:8500", "127.0.0.1:8501:8501"]
    source, target, mode = service["volumes"][0].split(":")
    pushed = os.path.relpath(configs.serving_model_dir(os.path.join(configs.PROJECT_ROOT, "output")), DEPLOY)
    assert (source, target, mode) == (pushed, f"/models/{configs.MODEL_NAME}", "ro")


def test_kubernetes_manifest():
    with open(os.path.join(DEPLOY, "kubernetes.yaml")) as f:
        deployment, service = list(yaml.safe_load_all(f))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("tensorflow/serving:")
    assert f"--model_name={configs.MODEL_NAME}" in container["args"]
    assert {p["containerPort"] for p in container["ports"]} == {8500, 8501}
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v1/models/{configs.MODEL_NAME}"
    assert {p["port"] for p in service["spec"]["ports"]} == {8500, 8501}
