"""Load: 16 concurrent keep-alive REST clients, 5,000 one-digit requests, server-side batching, and three
hot swaps between two *different* models (the first halfway through the first half); zero errors,
every answer from the version that should give it, memory steady across swaps. The same run as
`python -m benchmarks.load --swaps 3` (BENCHMARKS.md), on the smoke pipeline's model."""

import pytest

from benchmarks.load import run_load

pytestmark = pytest.mark.e2e
CLIENTS, REQUESTS, SWAPS = 16, 5000, 3
RSS_GROWTH_LIMIT_MB = 200
"""Over the whole run, which loads three more versions (one model's memory is tens of MB)."""
SWAP_GROWTH_LIMIT_MB = 60
"""From the first swap to the end: with one version kept (TF Serving's default), each swap unloads the
previous version, so memory must not climb with every swap."""


def test_load_with_hot_swaps_has_no_errors(served_model, other_model, tmp_path):
    result = run_load((served_model, other_model), CLIENTS, REQUESTS, SWAPS, batching=True, work_dir=str(tmp_path))
    assert result["requests"] == REQUESTS and result["errors"] == 0, result
    assert [s["version"] for s in result["swaps"]] == [2, 3, 4] and result["served_versions_after"] == [4]
    assert all(s["seconds_to_serve_alone"] is not None for s in result["swaps"]), result
    assert result["rss_mb_after"] - result["rss_mb_before"] < RSS_GROWTH_LIMIT_MB, result
    assert max(s["rss_mb"] for s in result["swaps"]) - result["swaps"][0]["rss_mb"] < SWAP_GROWTH_LIMIT_MB, result
