"""Load: 16 concurrent keep-alive REST clients, 5,000 one-digit requests, server-side batching, and six
hot swaps between two *different* models; zero errors,
every answer from the version that should give it, memory steady across swaps. The same run as
`python -m benchmarks.load --swaps 6` (BENCHMARKS.md), on the smoke pipeline's model."""

import pytest

from benchmarks.load import run_load

pytestmark = pytest.mark.e2e
CLIENTS, REQUESTS, SWAPS = 16, 5000, 6
RSS_GROWTH_LIMIT_MB = 200
"""Over the whole run, which loads six more versions (one model's memory is tens of MB)."""
SWAP_GROWTH_LIMIT_MB = 40
"""Between the peak of the first three swaps and that of the last three: with one version kept (TF
Serving's default), each swap unloads the previous version, so memory must not climb with every swap.
It does settle: the allocator keeps what the first loads freed (measured over 8 swaps: 736, 771, 803,
796, 792, 768, 791, 767 MB)."""


def test_load_with_hot_swaps_has_no_errors(served_model, other_model, tmp_path):
    result = run_load((served_model, other_model), CLIENTS, REQUESTS, SWAPS, batching=True, work_dir=str(tmp_path))
    assert result["requests"] == REQUESTS and result["errors"] == 0, result
    assert [s["version"] for s in result["swaps"]] == list(range(2, SWAPS + 2))
    assert result["served_versions_after"] == [SWAPS + 1]
    assert all(s["seconds_to_serve_alone"] is not None for s in result["swaps"]), result
    assert result["rss_mb_after"] - result["rss_mb_before"] < RSS_GROWTH_LIMIT_MB, result
    rss = [s["rss_mb"] for s in result["swaps"]]
    assert max(rss[SWAPS // 2 :]) - max(rss[: SWAPS // 2]) < SWAP_GROWTH_LIMIT_MB, result
