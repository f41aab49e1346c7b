"""The codec server (Temporal's codec-server protocol) on the daemon's API: who may call, what comes back, CORS."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stigmer.blobs.codec import ENCODING
from stigmer.daemon.temporal import TemporalClientCache, TemporalService
from tests.support.daemon_api import ApiServer, FakeTemporal, fake_client, make_context, scripted_config, serve_api

UI_PORT = 18233
UI = f"http://127.0.0.1:{UI_PORT}"
LARGE = json.dumps("the large tool output " * 1000).encode()


@pytest.fixture
def managed_api(stigmer_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiServer]:
    cfg = scripted_config(stigmer_home, STIGMER_TEMPORAL_MANAGED="true", STIGMER_TEMPORAL_UI_PORT=str(UI_PORT))
    with serve_api(make_context(cfg, fake_client(FakeTemporal())), publish=False) as served:
        yield served


def _body(*payloads: tuple[dict[str, bytes], bytes]) -> dict[str, Any]:
    return {"payloads": [{"metadata": {k: base64.b64encode(v).decode() for k, v in meta.items()},
                          "data": base64.b64encode(data).decode()} for meta, data in payloads]}


def _encode(api: ApiServer) -> dict[str, Any]:
    body = _body(({"encoding": b"json/plain"}, LARGE), ({"encoding": b"json/plain"}, b'"small"'))
    response = httpx.post(f"{api.url}/v1/codec/encode", json=body, headers={**api.headers(), "X-Namespace": "default"})
    assert response.status_code == 200, response.text
    encoded = response.json()
    assert base64.b64decode(encoded["payloads"][0]["metadata"]["encoding"]) == ENCODING
    assert encoded["payloads"][1] == body["payloads"][1]
    return dict(encoded)


def test_decode_with_the_token_gives_back_the_original_payloads(managed_api: ApiServer) -> None:
    encoded = _encode(managed_api)
    response = httpx.post(f"{managed_api.url}/v1/codec/decode", json=encoded,
                          headers={**managed_api.headers(), "X-Namespace": "default"})
    assert response.status_code == 200, response.text
    decoded = response.json()["payloads"]
    assert base64.b64decode(decoded[0]["data"]) == LARGE
    assert base64.b64decode(decoded[0]["metadata"]["encoding"]) == b"json/plain"
    assert decoded[1] == encoded["payloads"][1]


def test_the_managed_web_ui_decodes_without_a_token_and_nobody_else_does(managed_api: ApiServer) -> None:
    encoded = _encode(managed_api)
    url = f"{managed_api.url}/v1/codec/decode"
    from_ui = httpx.post(url, json=encoded, headers={"Origin": UI, "X-Namespace": "default"})
    assert from_ui.status_code == 200 and from_ui.headers["access-control-allow-origin"] == UI
    assert base64.b64decode(from_ui.json()["payloads"][0]["data"]) == LARGE
    assert httpx.post(url, json=encoded, headers={"Origin": f"http://localhost:{UI_PORT}"}).status_code == 200

    bare = httpx.post(url, json=encoded)
    assert bare.status_code == 401 and "run/token" in bare.json()["hint"]
    elsewhere = httpx.post(url, json=encoded, headers={"Origin": "http://evil.example"})
    assert elsewhere.status_code == 403 and "access-control-allow-origin" not in elsewhere.headers
    wrong = httpx.post(url, json=encoded, headers={"Origin": UI, "Authorization": "Bearer not-the-token-42"})
    assert wrong.status_code == 401 and "not-the-token-42" not in wrong.text
    # encode writes to the blob store: the token only, even from the UI's origin
    encode_from_ui = httpx.post(f"{managed_api.url}/v1/codec/encode", json=encoded, headers={"Origin": UI})
    assert encode_from_ui.status_code == 401


def test_cors_preflight_is_answered_for_the_ui_origin_only(managed_api: ApiServer) -> None:
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-namespace"}
    ok = httpx.options(f"{managed_api.url}/v1/codec/decode", headers={**ask, "Origin": UI})
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == UI
    assert "x-namespace" in ok.headers["access-control-allow-headers"]
    assert "POST" in ok.headers["access-control-allow-methods"]
    refused = httpx.options(f"{managed_api.url}/v1/codec/decode", headers={**ask, "Origin": "http://127.0.0.1:9999"})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers


def test_a_reference_to_a_deleted_blob_answers_404_naming_it(managed_api: ApiServer, stigmer_home: Path) -> None:
    encoded = _encode(managed_api)
    ref = json.loads(base64.b64decode(encoded["payloads"][0]["data"]))
    for path in (stigmer_home / "blobs").rglob(ref["key"]):
        path.unlink()
    response = httpx.post(f"{managed_api.url}/v1/codec/decode", json=encoded, headers=managed_api.headers())
    assert response.status_code == 404 and ref["key"] in response.json()["detail"]
    assert managed_api.token not in response.text
    bad = httpx.post(f"{managed_api.url}/v1/codec/decode", json={"payloads": [{"data": "%%%"}]},
                     headers=managed_api.headers())
    assert bad.status_code == 400 and "payloads[0]" in bad.json()["detail"]


def test_with_an_external_temporal_no_origin_is_trusted(api: ApiServer) -> None:
    response = httpx.post(f"{api.url}/v1/codec/decode", json={"payloads": []},
                          headers={"Origin": "http://127.0.0.1:8233"})
    assert response.status_code == 403


def test_the_managed_web_ui_is_started_pointed_at_the_codec_server(stigmer_home: Path) -> None:
    cfg = scripted_config(stigmer_home, STIGMER_TEMPORAL_MANAGED="true", STIGMER_SERVER_PORT="7791")
    argv, _ = TemporalService(cfg, TemporalClientCache(cfg)).command()
    assert argv[argv.index("--ui-codec-endpoint") + 1] == "http://127.0.0.1:7791/v1/codec"
