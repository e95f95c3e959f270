"""Load: 16 concurrent REST clients, 5,000 requests, a hot swap midway; zero errors, memory steady.
The same run as `python -m benchmarks.load` (BENCHMARKS.md), on the smoke pipeline's model."""

from benchmarks.load import run_load
from tests.test_serving import _pushed_version

CLIENTS, REQUESTS = 16, 5000
RSS_GROWTH_LIMIT_MB = 200
"""Over the whole run, which loads a second version (one model's memory, tens of MB)."""
STEADY_GROWTH_LIMIT_MB = 40
"""From the moment version 2 serves to the end (over 2,000 requests of about 4 kB of JSON each):
a leak of even 20 kB per request would exceed this."""


def test_load_with_a_hot_swap_has_no_errors(smoke_output, tmp_path):
    result = run_load(_pushed_version(smoke_output), CLIENTS, REQUESTS, str(tmp_path))
    assert result["requests"] == REQUESTS and result["errors"] == 0, result["first_errors"]
    assert result["served_version_after"] == 2
    assert result["version_2_served_by_request"] is not None and result["version_2_served_by_request"] < REQUESTS
    assert result["rss_mb_after"] - result["rss_mb_before"] < RSS_GROWTH_LIMIT_MB, result
    assert result["rss_mb_after"] - result["rss_mb_once_version_2_served"] < STEADY_GROWTH_LIMIT_MB, result
