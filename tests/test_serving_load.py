"""Load: 16 concurrent keep-alive REST clients, 5,000 one-digit requests, server-side batching, and six
hot swaps between two *different* models; zero errors,
every answer from the version that should give it, memory steady across swaps. The same run as
`python -m benchmarks.load --swaps 6` (BENCHMARKS.md), on the smoke pipeline's model."""

import pytest

from benchmarks.load import run_load

pytestmark = pytest.mark.e2e
CLIENTS, REQUESTS, SWAPS = 16, 5000, 6
RSS_GROWTH_LIMIT_MB = 230
"""Over the whole run, which loads six more versions: about 160 MB measured under this load (629 ->
788 MB, the allocator keeping what the first swaps freed); a leak keeping every version adds 280 MB."""
SWAP_GROWTH_LIMIT_MB = 90
"""Between the peak of the first three swaps and that of the last three: with one version kept (TF
Serving's default), each swap unloads the previous version, so memory must not climb with every swap.
A leak that kept every version would add one version's memory per swap, 47-49 MB for the smoke model
(measured with a `latest { num_versions: 10 }` policy, idle: 629, 677, 725, 769, 818, 861, 910 MB), so
about 140 MB here. Without a leak the peaks still differ by up to about 45 MB, because the allocator
and Python's cyclic collector keep what the first swaps freed (measured under this load: 753.5 -> 795.4,
the CI failure that set this limit; 749 -> 769 idle)."""


def test_load_with_hot_swaps_has_no_errors(served_model, other_model, tmp_path):
    result = run_load((served_model, other_model), CLIENTS, REQUESTS, SWAPS, batching=True, work_dir=str(tmp_path))
    assert result["requests"] == REQUESTS and result["errors"] == 0, result
    assert [s["version"] for s in result["swaps"]] == list(range(2, SWAPS + 2))
    assert result["served_versions_after"] == [SWAPS + 1]
    assert all(s["seconds_to_serve_alone"] is not None for s in result["swaps"]), result
    assert result["rss_mb_after"] - result["rss_mb_before"] < RSS_GROWTH_LIMIT_MB, result
    rss = [s["rss_mb"] for s in result["swaps"]]
    assert max(rss[SWAPS // 2 :]) - max(rss[: SWAPS // 2]) < SWAP_GROWTH_LIMIT_MB, result
