"""Hostile workspaces: ``spec.workspace``, ``stigmer run --workspace`` and the API's ``workspace`` field.

The workspace tools read, write and run anything inside the workspace, so a workspace of ``/``, of
the home directory, of the stigmer home (``run/token``) or of a system directory hands all of it to
the model. The rules (``stigmer.resources.workspace``) are checked directly, with hand-picked hostile
paths and a hypothesis property over generated ones, then where a person meets them: ``stigmer
apply`` (CLI and API), ``POST /v1/executions`` (422 naming ``body.workspace``) and ``stigmer run
--workspace`` (refused before anything is sent or created).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stigmer.errors import UserError
from stigmer.resources import load_documents
from stigmer.resources.workspace import SYSTEM_DIRS, resolve_workspace
from tests.support.daemon_api import ApiServer, FakeTemporal, invoke

V1 = "agentic.stigmer.ai/v1"


@pytest.fixture
def homes(tmp_path: Path) -> dict[str, Path]:
    """A user home with a stigmer home inside it (holding a token), its workspaces, and hostile symlinks."""
    user = tmp_path / "home" / "alice"
    stigmer = user / ".stigmer"
    (stigmer / "run").mkdir(parents=True)
    (stigmer / "run" / "token").write_text("secret-token")
    (stigmer / "workspaces" / "ok").mkdir(parents=True)
    (stigmer / "workspaces" / "to-etc").symlink_to("/etc")
    (stigmer / "workspaces" / "to-run").symlink_to(stigmer / "run")
    (user / "project").mkdir()
    (user / "link-to-etc").symlink_to("/etc")
    (user / "link-to-home").symlink_to(user)
    return {"user": user, "stigmer": stigmer}


def check(raw: str, homes: dict[str, Path], must_exist: bool = True) -> Path:
    return resolve_workspace(raw, stigmer_home=homes["stigmer"], user_home=homes["user"], field="spec.workspace",
                             must_exist=must_exist)


HOSTILE = {
    "/": "is the root directory",
    "..": "leaves",
    "../../etc": "leaves",
    "../run": "leaves",
    ".": "leaves",
    "to-etc": "leaves",
    "to-run": "leaves",
    "~": "is your home directory",
    "{user}/link-to-home": "is your home directory",
    "{user}/..": "contains your home directory",
    "/etc": "system directory /etc",
    "/etc/ssh": "system directory /etc",
    "/proc/self": "system directory /proc",
    "/sys": "system directory /sys",
    "/dev": "system directory /dev",
    "/usr/local/bin": "system directory /usr",
    "/var/log": "system directory /var",
    "/boot": "system directory /boot",
    "/root": "system directory /root",
    "{user}/link-to-etc": "system directory /etc",
    "{stigmer}": "is the stigmer home",
    "{stigmer}/run": "inside the stigmer home",
    "{stigmer}/workspaces": "inside the stigmer home",
    "~/.stigmer/run": "inside the stigmer home",
    "/mnt": "shared directory /mnt",
    "": "is empty",
    "a\x00b": "NUL byte",
    "a\udc80": "lone surrogate",
    "x" * 300: "too long",
}


@pytest.mark.parametrize("raw", list(HOSTILE), ids=lambda r: repr(r)[:30])
def test_hostile_workspaces_are_refused_naming_the_field(raw: str, homes: dict[str, Path]) -> None:
    path = raw.format(user=homes["user"], stigmer=homes["stigmer"]) if "{" in raw else raw
    with pytest.raises(UserError) as info:
        check(path, homes, must_exist=False)
    assert str(info.value).startswith("spec.workspace: ")
    assert HOSTILE[raw] in info.value.message
    assert "$STIGMER_HOME/workspaces" in (info.value.hint or "")


@pytest.mark.parametrize(("raw", "expected"), [
    ("ok", "{stigmer}/workspaces/ok"),
    ("new/deeper", "{stigmer}/workspaces/new/deeper"),
    ("ok/../ok2", "{stigmer}/workspaces/ok2"),
    ("~/project", "{user}/project"),
    ("{user}/project", "{user}/project"),
    ("{stigmer}/workspaces/ok", "{stigmer}/workspaces/ok"),
])
def test_ordinary_workspaces_are_accepted(raw: str, expected: str, homes: dict[str, Path]) -> None:
    fill = {"user": homes["user"].resolve(), "stigmer": homes["stigmer"].resolve()}
    assert check(raw.format(**fill), homes, must_exist=False) == Path(expected.format(**fill))


def test_an_absolute_workspace_must_exist_at_run_but_not_at_apply(homes: dict[str, Path]) -> None:
    later = homes["user"] / "later"
    assert check(str(later), homes, must_exist=False) == later.resolve()
    with pytest.raises(UserError, match="does not exist"):
        check(str(later), homes)
    (homes["user"] / "file.txt").write_text("x")
    with pytest.raises(UserError, match="is not a directory"):
        check(str(homes["user"] / "file.txt"), homes)


def test_roots_home_is_the_users_own_when_the_user_is_root(homes: dict[str, Path]) -> None:
    """CI runs as root: /root/project is the person's own directory, /root itself is still refused."""
    root_homes = {"user": Path("/root"), "stigmer": homes["stigmer"]}
    project = Path("/root") / f"stigmer-test-{uuid.uuid4().hex[:8]}"
    assert check(str(project), root_homes, must_exist=False) == project
    with pytest.raises(UserError, match="is your home directory"):
        check("/root", root_homes, must_exist=False)
    with pytest.raises(UserError, match="system directory /root"):
        check(str(project), homes, must_exist=False)  # someone else's /root


def test_a_home_of_slash_opens_nothing(homes: dict[str, Path]) -> None:
    with pytest.raises(UserError, match="system directory /etc"):
        check("/etc/x", {"user": Path("/"), "stigmer": homes["stigmer"]}, must_exist=False)


SEGMENTS = st.sampled_from(["..", ".", "~", "", "ok", "to-etc", "to-run", "run", "workspaces", ".stigmer", "etc",
                            "proc", "self", "link-to-etc", "link-to-home", "project", "x"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(absolute=st.booleans(), prefix=st.sampled_from(["", "{user}", "{stigmer}", "{stigmer}/workspaces"]),
       parts=st.lists(SEGMENTS, max_size=6))
def test_no_accepted_workspace_exposes_a_home_the_token_or_the_system(
        homes: dict[str, Path], absolute: bool, prefix: str, parts: list[str]) -> None:
    """Whatever path a person (or a generator) writes, an accepted workspace is a directory of its own."""
    user, stigmer = homes["user"].resolve(), homes["stigmer"].resolve()
    head = prefix.format(user=user, stigmer=stigmer) if prefix else ("/" if absolute else "")
    raw = os.path.join(head, *parts) if parts else head
    try:
        path = check(raw, homes, must_exist=False)
    except UserError as exc:
        assert str(exc).startswith("spec.workspace: ")
        return
    assert path == Path(os.path.realpath(path)) and path.is_absolute()
    for sensitive in (Path("/"), user, stigmer, stigmer / "run" / "token", stigmer / "workspaces"):
        assert sensitive != path and path not in sensitive.parents, (raw, path)
    if path == stigmer or stigmer in path.parents:
        assert stigmer / "workspaces" in path.parents, (raw, path)
    if not (path == user or user in path.parents):
        assert not any(path == Path(d) or Path(d) in path.parents for d in SYSTEM_DIRS), (raw, path)
    if not raw.startswith(("/", "~")):
        assert stigmer / "workspaces" in path.parents, (raw, path)


def agent_yaml(workspace: str) -> str:
    return (f"apiVersion: {V1}\nkind: Agent\nmetadata: {{name: files}}\n"
            f"spec: {{instructions: Be helpful., tools: [workspace], workspace: {workspace!r}}}\n")


@pytest.mark.parametrize("raw", ["/", "..", "../../etc", "/etc", "/proc/self", "~"])
def test_apply_refuses_a_hostile_spec_workspace(raw: str, tmp_path: Path, capsys: Any) -> None:
    with pytest.raises(UserError, match=r"document 1 \(Agent 'files'\): spec\.workspace: "):
        load_documents(agent_yaml(raw), "files.yaml")
    path = tmp_path / "files.yaml"
    path.write_text(agent_yaml(raw))
    code, _, err = invoke(capsys, "apply", "-f", str(path))
    assert code == 2 and "spec.workspace: " in err and "Traceback" not in err


def agent_doc(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": V1, "kind": "Agent", "metadata": {"name": "files"},
            "spec": {"instructions": "Be helpful.", "tools": ["workspace"], **spec}}


@pytest.mark.parametrize("raw", ["/", "../../etc", "/etc", "~/.stigmer/run"])
def test_the_api_apply_refuses_a_hostile_spec_workspace(http: httpx.Client, raw: str, stigmer_home: Path) -> None:
    raw = raw.replace("~/.stigmer", str(stigmer_home))
    response = http.post("/v1/apply", json={"documents": [agent_doc(workspace=raw)]})
    assert response.status_code == 422
    assert "spec.workspace: " in response.json()["detail"]
    assert http.get("/v1/agents").json()["items"] == []


@pytest.mark.parametrize("raw", ["/", "..", "../../etc", "/etc", "/proc/self", "{home}", "{home}/run", "/nonexistent"])
def test_the_api_refuses_a_hostile_workspace_with_422_naming_the_field(
        http: httpx.Client, temporal: FakeTemporal, raw: str, stigmer_home: Path) -> None:
    http.post("/v1/apply", json={"documents": [agent_doc()]}).raise_for_status()
    workspace = raw.format(home=stigmer_home)
    response = http.post("/v1/executions", json={"agent": "files", "message": "hi", "model": "scripted:x.json",
                                                 "workspace": workspace})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errors"][0]["loc"] == "body.workspace" and body["errors"][0]["msg"]
    assert "body.workspace" in body["detail"] and body["hint"]
    assert temporal.started == [] and http.get("/v1/executions").json()["items"] == []


def test_the_api_puts_a_relative_workspace_under_workspaces(http: httpx.Client, temporal: FakeTemporal,
                                                             stigmer_home: Path) -> None:
    http.post("/v1/apply", json={"documents": [agent_doc()]}).raise_for_status()
    response = http.post("/v1/executions", json={"agent": "files", "message": "hi", "model": "scripted:x.json",
                                                 "workspace": "jobs/one"})
    assert response.status_code == 201, response.text
    expected = (stigmer_home / "workspaces" / "jobs" / "one").resolve()
    assert temporal.started[0]["input"].workspace == str(expected) and expected.is_dir()


def test_an_agent_stored_with_a_workspace_now_refused_cannot_run(http: httpx.Client, temporal: FakeTemporal,
                                                                  api: ApiServer) -> None:
    """An agent applied before these rules (stored as it was) is refused at run with what to fix, not a 500."""
    http.post("/v1/apply", json={"documents": [agent_doc()]}).raise_for_status()
    from stigmer.store import Store

    store = Store.open(api.ctx.store_path)
    try:
        store.apply([agent_doc(workspace="/etc")])
    finally:
        store.close()
    response = http.post("/v1/executions", json={"agent": "files", "message": "hi", "model": "scripted:x.json"})
    assert 400 <= response.status_code < 500, response.text
    assert "spec.workspace: '/etc' is in the system directory /etc" in response.json()["detail"]
    assert temporal.started == []


def test_an_agent_whose_workspace_directory_is_gone_gets_409(http: httpx.Client, temporal: FakeTemporal,
                                                              tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    http.post("/v1/apply", json={"documents": [agent_doc(workspace=str(gone))]}).raise_for_status()
    gone.rmdir()
    response = http.post("/v1/executions", json={"agent": "files", "message": "hi", "model": "scripted:x.json"})
    assert response.status_code == 409
    assert "agent 'files': spec.workspace:" in response.json()["detail"] and "does not exist" in response.json()[
        "detail"]
    assert temporal.started == []


@pytest.mark.parametrize("raw", ["/", "/etc", "/etc/stigmer-{id}", "/proc/self", "{home}", "{home}/run/x", "~"])
def test_run_refuses_a_hostile_workspace_before_sending_or_creating_anything(
        api: ApiServer, temporal: FakeTemporal, http: httpx.Client, capsys: Any, raw: str,
        stigmer_home: Path) -> None:
    http.post("/v1/apply", json={"documents": [agent_doc()]}).raise_for_status()
    workspace = raw.format(id=uuid.uuid4().hex[:8], home=stigmer_home)
    existed = Path(workspace).expanduser().exists()
    code, _, err = invoke(capsys, "run", "files", "hi", "--workspace", workspace, "--model", "scripted:x.json",
                          "--no-start")
    assert code == 2, err
    assert "--workspace: " in err and "Traceback" not in err
    assert Path(workspace).expanduser().exists() == existed  # /etc/stigmer-<id> was not made
    assert temporal.started == [] and http.get("/v1/executions").json()["items"] == []


def test_run_creates_and_sends_an_ordinary_relative_workspace(
        api: ApiServer, temporal: FakeTemporal, http: httpx.Client, capsys: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    http.post("/v1/apply", json={"documents": [agent_doc()]}).raise_for_status()
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke(capsys, "run", "files", "hi", "--workspace", "scratch/a", "--model", "scripted:x.json",
                          "--detach")
    assert code == 0, err
    assert (tmp_path / "scratch" / "a").is_dir()
    assert temporal.started[0]["input"].workspace == str((tmp_path / "scratch" / "a").resolve())
