"""ServingCanary's judgement on real servers: the candidate in `python -m serving` (a subprocess, loopback
ports), every signature over REST and gRPC against the exported model in-process, and a latency
budget. A good model passes; one that fails to load, answers differently or too slowly is refused with
the reason."""

import shutil

import pytest

from components.canary import run_canary
from models import features

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def examples_uri(smoke_run):
    return smoke_run[1].examples_uri


def test_a_good_model_passes_with_its_latency(served_model, examples_uri):
    result = run_canary(
        served_model, examples_uri, features.MODEL_NAME, latency_budget_ms=1000.0, requests=20, start_timeout_s=180.0
    )
    assert result.blessed, result.reason
    assert result.reason == "" and 0 < result.start_seconds < 180
    assert set(result.latency_ms) == {"rest_p50", "rest_p99", "grpc_p50", "grpc_p99"}
    assert all(0 < v < 1000 for v in result.latency_ms.values())


def test_a_model_that_cannot_load_is_refused(served_model, examples_uri, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(served_model, broken)
    path = broken / "saved_model.pb"
    path.write_bytes(path.read_bytes()[:1000])
    result = run_canary(str(broken), examples_uri, features.MODEL_NAME, 1000.0, 5, 180.0, reference_dir=served_model)
    assert not result.blessed and result.reason.startswith("the model failed to load"), result.reason


def test_a_model_answering_differently_is_refused(served_model, other_model, examples_uri):
    """Served: the smoke model; expected: another export (what a server that mangled answers shows)."""
    result = run_canary(served_model, examples_uri, features.MODEL_NAME, 1000.0, 5, 180.0, reference_dir=other_model)
    assert not result.blessed and "answered differently from the exported model" in result.reason, result.reason


def test_a_model_too_slow_is_refused(served_model, examples_uri):
    result = run_canary(
        served_model, examples_uri, features.MODEL_NAME, latency_budget_ms=0.001, requests=5, start_timeout_s=180.0
    )
    assert not result.blessed and result.reason.startswith("too slow: p99 REST"), result.reason
    assert "over the budget of 0.001 ms" in result.reason
