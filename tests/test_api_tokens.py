"""Named tokens and their roles (issue 12): ``stigmer token create|list|revoke`` and what each role may call.

The API is the real one on loopback with a stand-in Temporal client. What a user would notice: a viewer
token reads every ``GET`` route and changes nothing (403 naming its role); a runner token only posts
events; an admin token opens everything; a revoked or expired token is refused with the reason; the
token is shown once and the database holds only its hash.
"""

from __future__ import annotations

import json
import re
import stat
import time
from pathlib import Path
from typing import Any

import httpx

from stigmer.config import Config
from tests.support.backends import both_backends  # noqa: F401  (each test on SQLite and PostgreSQL)
from tests.support.daemon_api import ApiServer, invoke

PUBLIC = {("GET", "/v1/health")}
ADMIN_ONLY_READS = {"/v1/tokens"}  # a viewer may not list who holds which token
EVENTS = ("POST", "/v1/events")
# a viewer may ask for a web console login link (its console reads only): its one change, which changes nothing
VIEWER_WRITES = {("POST", "/v1/console/login-links")}
# the codec server's own rule: the admin token (or the managed web UI's origin, for decode)
CODEC = {("POST", "/v1/codec/decode"), ("POST", "/v1/codec/encode")}


def _routes(api: ApiServer) -> list[tuple[str, str]]:
    """Every (method, path) the API serves (from its OpenAPI description), path parameters filled in with a name
    nothing has. The codec server's CORS preflight (OPTIONS) has a rule of its own (tests/test_api_codec.py)."""
    out = []
    for path, operations in api.server.config.app.openapi()["paths"].items():
        filled = re.sub(r"\{[^}]+\}", "nothing-here", path)
        out += [(op.upper(), filled) for op in sorted(operations)
                if op != "options" and (op.upper(), path) not in PUBLIC]
    assert len(out) >= 30, out  # the whole API, not a few routes
    return out


def _create(http: httpx.Client, name: str, role: str, **extra: Any) -> str:
    created = http.post("/v1/tokens", json={"name": name, "role": role, **extra})
    assert created.status_code == 201, created.text
    return str(created.json()["token"])


def _as(api: ApiServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_each_role_on_every_route(api: ApiServer, http: httpx.Client) -> None:
    tokens = {role: _create(http, f"t-{role}", role) for role in ("admin", "viewer", "runner")}
    for method, path in _routes(api):
        route = (method, path.replace("nothing-here", "{x}"))
        for role, token in tokens.items():
            with _as(api, token) as client:
                # {} is a body no route accepts as is: admission shows as anything but 401/403
                response = client.request(method, path, json={} if method != "GET" else None,
                                          params={"follow": "false"})
            if role == "admin":
                admitted = True
            elif role == "viewer":
                admitted = ((method == "GET" and not any(path.startswith(p) for p in ADMIN_ONLY_READS))
                            or (method, path) in VIEWER_WRITES)
            else:
                admitted = (method, path) == EVENTS
            if (method, path) in CODEC and role != "admin":
                admitted = False
            if admitted:
                assert response.status_code not in (401, 403), (role, route, response.status_code, response.text)
            else:
                assert response.status_code == 403, (role, route, response.status_code, response.text)
                assert f"the {role} token may not call {method}" in response.json()["detail"], response.text
            assert token not in response.text


def test_a_viewer_reads_what_the_admin_sees_and_changes_nothing(api: ApiServer, http: httpx.Client) -> None:
    agent = {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": "hello"},
             "spec": {"instructions": "Be brief."}}
    http.post("/v1/apply", json={"documents": [agent]}).raise_for_status()
    with _as(api, _create(http, "dash", "viewer")) as viewer:
        assert viewer.get("/v1/agents").json() == http.get("/v1/agents").json()
        refused = viewer.delete("/v1/agents/hello")
        assert refused.status_code == 403 and "may only read (GET routes)" in refused.json()["detail"]
    assert [a["name"] for a in http.get("/v1/agents").json()["items"]] == ["hello"]


def test_revoked_and_expired_tokens_are_refused_saying_so(api: ApiServer, http: httpx.Client) -> None:
    token = _create(http, "laptop", "admin")
    with _as(api, token) as client:
        assert client.get("/v1/agents").status_code == 200
        assert http.delete("/v1/tokens/laptop").json()["state"] == "revoked"
        refused = client.get("/v1/agents")
    assert refused.status_code == 401 and refused.json()["detail"] == "this token was revoked"
    _, expired = api.state.store.create_token("old", "viewer", expires_at=time.time() - 1)
    with _as(api, expired) as client:
        refused = client.get("/v1/agents")
    assert refused.status_code == 401 and refused.json()["detail"] == "this token has expired"
    near_miss = token[:-1] + ("A" if token[-1] != "A" else "B")
    with _as(api, near_miss) as client:
        assert client.get("/v1/agents").json()["detail"] == "missing or wrong bearer token"
    states = {t["name"]: t["state"] for t in http.get("/v1/tokens").json()["items"]}
    assert states == {"laptop": "revoked", "old": "expired"}


def test_a_token_is_shown_once_and_stored_as_a_hash(api: ApiServer, http: httpx.Client, cfg: Config) -> None:
    token = _create(http, "ci", "runner", expires_in=3600)
    listed = http.get("/v1/tokens").json()["items"]
    assert [t["name"] for t in listed] == ["ci"] and "token" not in listed[0] and "hash" not in listed[0]
    assert round(listed[0]["expires_at"] - listed[0]["created_at"]) == 3600
    assert http.post("/v1/tokens", json={"name": "ci", "role": "viewer"}).status_code == 409
    bad = http.post("/v1/tokens", json={"name": "x", "role": "root"})
    assert bad.status_code == 422 and "role" in bad.text
    stored = " ".join(str(v) for row in api.state.store._read("SELECT * FROM tokens") for v in row)
    secret = token.rsplit("_", 1)[1]
    assert secret not in stored and token not in stored
    for path in cfg.path("data").glob("*"):  # nor in the WAL, nor anywhere else the daemon wrote
        assert secret.encode() not in path.read_bytes(), path


def test_the_token_commands(api: ApiServer, capsys: Any, tmp_path: Path) -> None:
    out_file = tmp_path / "ci.token"
    code, out, err = invoke(capsys, "token", "create", "--name", "ci", "--role", "viewer", "--expires", "30d",
                            "--out", str(out_file))
    assert code == 0, err
    assert out == "" and f"created viewer token 'ci', written to {out_file} (0600)" in err
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    token = out_file.read_text().strip()
    with _as(api, token) as viewer:
        assert viewer.get("/v1/agents").status_code == 200
    code, out, err = invoke(capsys, "token", "create", "--name", "ci", "--role", "admin", "--out", str(out_file))
    assert code != 0 and "exists already" in err and "Traceback" not in err
    code, out, _ = invoke(capsys, "token", "create", "--name", "ops", "--role", "admin", "--json")
    assert code == 0 and json.loads(out)["token"].startswith("stg_")
    code, out, _ = invoke(capsys, "token", "list")
    assert code == 0 and out.splitlines()[0].split() == ["NAME", "ROLE", "STATE", "CREATED", "EXPIRES", "LAST", "USED"]
    rows = [line.split()[:3] for line in out.splitlines()[1:]]
    assert rows == [["ci", "viewer", "active"], ["ops", "admin", "active"]]
    assert token not in out
    code, out, _ = invoke(capsys, "token", "revoke", "ci")
    assert code == 0 and out.strip() == "revoked viewer token 'ci'"
    with _as(api, token) as viewer:
        assert viewer.get("/v1/agents").status_code == 401
    code, _, err = invoke(capsys, "token", "revoke", "nobody")
    assert code != 0 and "no token named 'nobody'" in err
    code, _, err = invoke(capsys, "token", "create", "--name", "x", "--role", "viewer", "--expires", "soon")
    assert code == 2 and "--expires" in err
