"""Oversize input to the API: request bodies over ``limits.request_bytes`` and messages over ``limits.message_chars``.

The API is served by uvicorn on loopback (as the daemon serves it) with small limits, and called
over real HTTP: with a declared ``Content-Length``, and chunked (no length: the body is counted as
it arrives). What a client notices: a 413 (or 422 naming ``body.message``) in the documented
``{"detail", "hint"}`` shape that says the size and the limit, nothing stored, and the API still
answering ordinary requests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stigmer.config import Config
from tests.support.daemon_api import ApiServer, FakeTemporal, invoke, scripted_config
from tests.support.scripted_provider import PLUGIN

LIMIT = 4096
MESSAGE_LIMIT = 50
V1 = "agentic.stigmer.ai/v1"


@pytest.fixture
def cfg(stigmer_home: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("STIGMER_PLUGINS", PLUGIN)
    return scripted_config(stigmer_home, STIGMER_LIMIT_REQUEST_BYTES=str(LIMIT),
                           STIGMER_LIMIT_MESSAGE_CHARS=str(MESSAGE_LIMIT))


def agent(name: str, instructions: str = "Be brief.") -> dict[str, Any]:
    return {"apiVersion": V1, "kind": "Agent", "metadata": {"name": name}, "spec": {"instructions": instructions}}


def body_of(size: int) -> bytes:
    """An apply request of about ``size`` bytes (valid JSON: only its size is wrong)."""
    filler = "x" * max(1, size - 200)
    return json.dumps({"documents": [agent("big", filler)]}).encode()


def assert_too_large(response: httpx.Response, size: str) -> None:
    assert response.status_code == 413, response.text[:200]
    body = response.json()
    assert body["detail"] == f"request body is {size} bytes; the limit is {LIMIT} (limits.request_bytes)"
    assert "limits.request_bytes" in body["hint"]


def test_a_body_with_a_length_over_the_limit_gets_413_saying_both_sizes(http: httpx.Client) -> None:
    content = body_of(LIMIT * 3)
    response = http.post("/v1/apply", content=content, headers={"Content-Type": "application/json"})
    assert_too_large(response, str(len(content)))
    assert http.get("/v1/agents").json()["items"] == []
    assert http.get("/v1/health").json() == {"ok": True}


def test_a_chunked_body_growing_past_the_limit_gets_413(http: httpx.Client) -> None:
    content = body_of(LIMIT * 50)
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
        for start in range(0, len(content), 1000):
            sent.append(start)
            yield content[start:start + 1000]

    response = http.post("/v1/apply", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert_too_large(response, f"more than {LIMIT}")
    assert http.get("/v1/agents").json()["items"] == []


def test_bodies_within_the_limit_still_work_chunked_or_not(http: httpx.Client) -> None:
    content = body_of(LIMIT - 300)
    assert http.post("/v1/apply", content=content, headers={"Content-Type": "application/json"}).status_code == 200
    response = http.post("/v1/apply", content=iter([content[:100], content[100:]]),
                         headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and response.json()["results"][0]["outcome"] == "unchanged"


def test_a_message_over_the_limit_gets_422_naming_body_message(http: httpx.Client, temporal: FakeTemporal) -> None:
    http.post("/v1/apply", json={"documents": [agent("hello")]}).raise_for_status()
    message = "m" * (MESSAGE_LIMIT + 1)
    response = http.post("/v1/executions", json={"agent": "hello", "message": message, "model": "scripted:x.json"})
    assert response.status_code == 422
    body = response.json()
    assert body["errors"] == [{"loc": "body.message", "msg": f"the message is {MESSAGE_LIMIT + 1} characters; the "
                                                            f"limit is {MESSAGE_LIMIT} (limits.message_chars)"}]
    assert "body.message" in body["detail"] and body["hint"]
    assert temporal.started == [] and http.get("/v1/executions").json()["items"] == []
    ok = http.post("/v1/executions", json={"agent": "hello", "message": "m" * MESSAGE_LIMIT,
                                           "model": "scripted:x.json"})
    assert ok.status_code == 201


def test_run_says_what_the_daemon_said_about_a_long_message(api: ApiServer, http: httpx.Client, capsys: Any) -> None:
    http.post("/v1/apply", json={"documents": [agent("hello")]}).raise_for_status()
    code, _, err = invoke(capsys, "run", "hello", "m" * (MESSAGE_LIMIT + 5), "--model", "scripted:x.json", "--no-start")
    assert code == 2
    assert f"the limit is {MESSAGE_LIMIT} (limits.message_chars)" in err and "Traceback" not in err
    code, _, err = invoke(capsys, "run", "hello", "m" * (LIMIT * 2), "--model", "scripted:x.json", "--no-start")
    assert code == 2
    assert f"the limit is {LIMIT} (limits.request_bytes)" in err and "Traceback" not in err
