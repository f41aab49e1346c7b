"""The CLI against a stigmer server elsewhere (issue 12): ``--server URL`` / ``STIGMER_SERVER`` with a token from
``--token-file`` / ``STIGMER_TOKEN_FILE`` or ``STIGMER_TOKEN``, never from the command line.

The server is the real API on loopback (stand-in Temporal client); the CLI runs with a ``STIGMER_HOME`` that has
no daemon, so everything it shows came from the server, with the role of the token it was given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.daemon_api import ApiServer, invoke

AGENT = {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": "hello"},
         "spec": {"instructions": "Be brief."}}


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http: httpx.Client) -> Path:
    """A home with no daemon; the server holds one agent."""
    http.post("/v1/apply", json={"documents": [AGENT]}).raise_for_status()
    home = tmp_path / "laptop"
    home.mkdir()
    monkeypatch.setenv("STIGMER_HOME", str(home))
    return home


def _token_file(http: httpx.Client, tmp_path: Path, role: str) -> Path:
    token = http.post("/v1/tokens", json={"name": f"cli-{role}", "role": role}).json()["token"]
    path = tmp_path / f"{role}.token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def test_a_viewer_token_reads_the_servers_agents_and_may_not_change_them(
        api: ApiServer, http: httpx.Client, elsewhere: Path, tmp_path: Path, capsys: Any) -> None:
    token_file = _token_file(http, tmp_path, "viewer")
    code, out, err = invoke(capsys, "--server", api.url, "--token-file", str(token_file), "get", "agents", "-o", "json")
    assert code == 0, err
    assert [a["name"] for a in json.loads(out)] == ["hello"]
    (tmp_path / "a.yaml").write_text("apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata: {name: other}\n"
                                     "spec: {instructions: hi}\n")
    code, out, err = invoke(capsys, "--server", api.url, "--token-file", str(token_file), "apply", "-f",
                            str(tmp_path / "a.yaml"))
    assert code != 0 and "the viewer token may not call POST /v1/apply" in err and "Traceback" not in err
    assert [a["name"] for a in http.get("/v1/agents").json()["items"]] == ["hello"]
    assert token_file.read_text().strip() not in out + err


def test_the_server_and_token_from_the_environment(api: ApiServer, http: httpx.Client, elsewhere: Path,
                                                   tmp_path: Path, capsys: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    token = _token_file(http, tmp_path, "admin").read_text().strip()
    monkeypatch.setenv("STIGMER_SERVER", api.url)
    monkeypatch.setenv("STIGMER_TOKEN", token)
    code, out, err = invoke(capsys, "get", "agents", "-o", "json")
    assert code == 0 and [a["name"] for a in json.loads(out)] == ["hello"], err
    code, out, err = invoke(capsys, "delete", "agent", "hello")
    assert code == 0, err
    assert http.get("/v1/agents").json()["items"] == []


def test_bad_settings_say_what_to_do_and_send_nothing(api: ApiServer, http: httpx.Client, elsewhere: Path,
                                                      tmp_path: Path, capsys: Any) -> None:
    code, _, err = invoke(capsys, "--server", api.url, "get", "agents")
    assert code != 0 and "no token for the server" in err and "STIGMER_TOKEN_FILE" in err
    loose = _token_file(http, tmp_path, "admin")
    loose.chmod(0o644)
    code, _, err = invoke(capsys, "--server", api.url, "--token-file", str(loose), "get", "agents")
    assert code != 0 and "may be read by other users" in err and f"chmod 600 {loose}" in err
    code, _, err = invoke(capsys, "--server", "http://203.0.113.7:7780", "--token-file", str(loose), "get", "agents")
    assert code != 0 and "would send the token unencrypted" in err
    code, _, err = invoke(capsys, "--server", api.url, "--token-file", str(tmp_path / "missing"), "get", "agents")
    assert code != 0 and "cannot read the token file" in err and "Traceback" not in err
    code, _, err = invoke(capsys, "get", "agents")  # the flags lasted one command: the local home has no daemon
    assert code != 0 and "not running" in err
