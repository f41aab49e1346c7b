"""The daemon's API answers a keep-alive client in about a millisecond, not after TCP's 40 ms delayed ACK.

Every CLI command makes one or more API calls; the load benchmark (``bench/bench_load.py``) found each
one took ~44 ms on an idle daemon (curl: 1 ms). The API socket is bound by the daemon itself with
``proto=0``, so asyncio does not set ``TCP_NODELAY`` on accepted connections; the response body then
waits for the client's delayed ACK of the headers.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx
import pytest

from tests.support.local_daemon import LocalStack

pytestmark = pytest.mark.slow


def test_api_answers_a_keep_alive_client_without_the_delayed_ack_stall(stigmer_home: Path) -> None:
    stack = LocalStack.scripted(stigmer_home)
    try:
        assert stack.start().returncode == 0
        token = (stigmer_home / "run" / "token").read_text().strip()
        with httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}", trust_env=False,
                          headers={"Authorization": f"Bearer {token}"}) as api:
            api.get("/v1/health")
            took = []
            for path in ["/v1/health", "/v1/status"] * 10:
                began = time.perf_counter()
                assert api.get(path).status_code == 200
                took.append((time.perf_counter() - began) * 1000)
        assert statistics.median(took) < 20, f"median {statistics.median(took):.1f} ms per API call"
    finally:
        stack.cleanup()
