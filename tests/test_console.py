"""The web console (issue 13): its login, its cookie as a credential, and its pages in a real headless browser.

What a user would notice: `stigmer console` gives a link that logs in once, within 60 s, and never again; a page
without the login cookie is refused and says to run `stigmer console`; the cookie opens the API for its token's role
only (a viewer's console reads), and only the console's own pages can change anything with it (CSRF); a run started
from the page streams its tokens, tool calls and final answer; an approval clicked in the page lets the tool run once.
The browser is Debian's chromium through Playwright (tests/support/console.py): a missing browser fails these tests.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stigmer.config import Config
from stigmer.daemon._console_auth import daemon_source
from tests.support.console import launched, login_url, missing_browser, open_console
from tests.support.daemon_api import (
    ApiServer,
    FakeTemporal,
    fake_client,
    invoke,
    make_context,
    scripted_config,
    serve_api,
)
from tests.support.scripted_provider import PLUGIN, write_script
from tests.support.stack import Stack, scripted_stack
from tests.support.temporal import TemporalServer

AGENT = {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": "hello"},
         "spec": {"instructions": "Be brief."}}


def _as(api: ApiServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@contextlib.contextmanager
def _cookie_client(api: ApiServer, token: str) -> Iterator[httpx.Client]:
    """A client holding a console session cookie (logged in through a link made with ``token``), and no token."""
    with httpx.Client(base_url=api.url, timeout=30) as client:
        landed = client.get(login_url(api.url, token).removeprefix(api.url), follow_redirects=False)
        assert landed.status_code == 303 and landed.headers["location"] == "/console/", landed.text
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    why = missing_browser()
    if why is not None:
        pytest.fail(why)  # never a skip: CI must have the browser
    with launched() as launched_browser:
        yield launched_browser


# ----- the login link and the cookie (API only) -----

def test_the_login_code_works_once_and_expires(api: ApiServer, http: httpx.Client) -> None:
    link = http.post("/v1/console/login-links", json={})
    assert link.status_code == 201 and link.json()["role"] == "admin"
    assert 55 <= link.json()["expires_at"] - time.time() <= 60
    assert api.token not in link.text
    with httpx.Client(base_url=api.url, timeout=30) as browser_like:
        first = browser_like.get(link.json()["path"], follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/console/"
        cookies = first.headers.get_list("set-cookie")
        assert sorted(c.split("; ")[0].split("=")[0] for c in cookies) == ["stigmer_console"] * 2
        for cookie in cookies:
            attributes = {a.split("=")[0].lower() for a in cookie.split("; ")[1:]}
            assert {"httponly", "samesite", "path"} <= attributes and "secure" not in attributes  # plain http here
            assert "samesite=strict" in cookie.lower()
        assert sorted(c.split("path=")[1].split(";")[0] for c in (x.lower() for x in cookies)) == ["/console", "/v1"]
        assert browser_like.get("/console/").status_code == 200
        second = httpx.get(api.url + link.json()["path"], follow_redirects=False)
        assert second.status_code == 401 and "used already or has expired" in second.text
        assert "set-cookie" not in second.headers
    code, _ = api.state.store.create_console_code("admin", daemon_source(api.token), ttl_s=0.2)
    time.sleep(0.3)
    late = httpx.get(f"{api.url}/console/login?code={code}", follow_redirects=False)
    assert late.status_code == 401 and "stigmer console" in late.text
    stored = " ".join(str(v) for table in ("console_codes", "console_sessions")
                      for row in api.state.store._read(f"SELECT * FROM {table}") for v in row)
    assert code not in stored  # hashes only


def test_a_page_without_the_cookie_is_refused(api: ApiServer) -> None:
    answer = httpx.get(api.url + "/", follow_redirects=True)
    assert answer.status_code == 401 and str(answer.url) == f"{api.url}/console/login"
    assert "Run <code>stigmer console</code>" in answer.text and "app.js" not in answer.text
    assert httpx.get(api.url + "/v1/agents", cookies={"stigmer_console": "forged"}).status_code == 401


def test_the_cookie_opens_the_api_for_its_role_and_changes_need_the_console(api: ApiServer, http: httpx.Client) -> None:
    viewer = http.post("/v1/tokens", json={"name": "dash", "role": "viewer"}).json()["token"]
    with _cookie_client(api, viewer) as client:
        assert client.get("/v1/console/session").json() == {"role": "viewer", "via": "console"}
        assert client.get("/v1/agents").status_code == 200
        refused = client.post("/v1/apply", json={"documents": [AGENT]},
                              headers={"X-Stigmer-Console": "1", "Origin": api.url})
        assert refused.status_code == 403 and "may only read" in refused.json()["detail"]
    with _cookie_client(api, api.token) as client:
        assert client.post("/v1/apply", json={"documents": [AGENT]}).status_code == 403  # no console header
        cross = client.post("/v1/apply", json={"documents": [AGENT]},
                            headers={"X-Stigmer-Console": "1", "Origin": "http://evil.example"})
        assert cross.status_code == 403 and "another origin" in cross.json()["detail"]
        ok = client.post("/v1/apply", json={"documents": [AGENT]}, headers={"X-Stigmer-Console": "1",
                                                                            "Origin": api.url})
        assert ok.status_code == 200, ok.text
        assert client.post("/v1/console/login-links", json={}, headers={"X-Stigmer-Console": "1"}).status_code == 403
        assert client.get("/v1/tokens").status_code == 200  # an admin's console is the admin
    with _as(api, api.runner_token) as runner:
        assert runner.post("/v1/console/login-links", json={}).status_code == 403


def test_a_console_session_ends_with_its_token(api: ApiServer, http: httpx.Client) -> None:
    laptop = http.post("/v1/tokens", json={"name": "laptop", "role": "admin"}).json()["token"]
    with _cookie_client(api, laptop) as client:
        assert client.get("/v1/agents").status_code == 200
        http.delete("/v1/tokens/laptop").raise_for_status()
        assert client.get("/v1/agents").status_code == 401
        assert client.get("/console/", follow_redirects=False).headers["location"] == "/console/login"


def test_logout_ends_the_session(api: ApiServer) -> None:
    with _cookie_client(api, api.token) as client:
        assert client.post("/console/logout").status_code == 403  # CSRF: the console's header
        assert client.post("/console/logout", headers={"X-Stigmer-Console": "1"}).status_code == 200
        assert client.get("/v1/agents").status_code == 401


def test_stigmer_console_prints_or_gives_the_link(api: ApiServer, capsys: Any) -> None:
    code, out, err = invoke(capsys, "console", "--json")
    assert code == 0, err
    link = json.loads(out)
    assert link["url"].startswith(f"{api.url}/console/login?code=") and link["role"] == "admin"
    assert api.token not in out + err
    code, out, err = invoke(capsys, "console", "--no-open")
    assert code == 0 and out.strip().startswith(f"{api.url}/console/login?code=") and "once" in err
    assert httpx.get(out.strip(), follow_redirects=False).status_code == 303


# ----- pages in the browser, over a stand-in Temporal -----

@pytest.fixture
def managed_api(stigmer_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ApiServer, FakeTemporal]]:
    """An API whose Temporal is the managed one (its web UI's address known), over a stand-in client."""
    monkeypatch.setenv("STIGMER_PLUGINS", PLUGIN)
    cfg = scripted_config(stigmer_home, STIGMER_TEMPORAL_MANAGED="true", STIGMER_TEMPORAL_UI_PORT="18233")
    fake = FakeTemporal()
    with serve_api(make_context(cfg, fake_client(fake))) as served:
        yield served, fake


def test_pages_show_status_and_link_executions_to_the_temporal_ui(managed_api: tuple[ApiServer, FakeTemporal],
                                                                  browser: Any) -> None:
    api, _ = managed_api
    with _as(api, api.token) as http:
        http.post("/v1/apply", json={"documents": [AGENT]}).raise_for_status()
        started = http.post("/v1/executions", json={"agent": "hello", "message": "hi"}).json()
    page = open_console(browser, api.url, api.token)
    page.wait_for_selector("#llm")
    assert "scripted" in page.inner_text("#llm")
    assert page.get_attribute("a[href^='http://127.0.0.1:18233']", "href") == "http://127.0.0.1:18233"
    page.goto(f"{api.url}/console/#/executions")
    page.wait_for_selector(f"a[href='#/executions/{started['id']}']")
    link = page.get_attribute("td a[target=_blank]", "href")
    assert link == f"http://127.0.0.1:18233/namespaces/default/workflows/stigmer-exec-{started['id']}"
    page.goto(f"{api.url}/console/#/agents")
    page.wait_for_selector("text=Be brief.")


def test_what_a_model_writes_is_shown_as_text_never_run_as_html(api: ApiServer, http: httpx.Client,
                                                                browser: Any) -> None:
    http.post("/v1/apply", json={"documents": [AGENT]}).raise_for_status()
    execution = http.post("/v1/executions", json={"agent": "hello", "message": "<b>hi</b>"}).json()
    evil = "<img src=x onerror=\"document.title='owned'\"><script>document.title='owned'</script>"
    events = [{"execution_id": execution["id"], "type": "step_started", "data": {"step": 1}},
              {"execution_id": execution["id"], "type": "token", "data": {"step": 1, "text": evil}},
              {"execution_id": execution["id"], "type": "tool_started",
               "data": {"step": 1, "call_id": "c1", "name": "<i>x</i>", "args": {"a": evil}}},
              {"execution_id": execution["id"], "type": "completed", "data": {"output": evil, "steps": 1}}]
    http.post("/v1/events", json={"events": events}).raise_for_status()
    page = open_console(browser, api.url, api.token)
    page.goto(f"{api.url}/console/#/executions/{execution['id']}")
    page.wait_for_selector("#final .answer")
    assert page.inner_text("#final .answer") == evil
    assert page.query_selector("main img") is None and page.query_selector("main script") is None
    assert page.query_selector("main b") is None and page.title() == "stigmer console"


def test_stigmer_console_prints_the_link_when_no_browser_opens(api: ApiServer, capsys: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or False)
    code, out, err = invoke(capsys, "console")
    assert code == 0 and opened == [out.strip()] and "no browser could be opened" in err
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    code, out, err = invoke(capsys, "console")
    assert code == 0 and out == "" and "opened the admin console in your browser" in err and len(opened) == 2


def test_a_page_without_the_login_cookie_is_refused_in_the_browser(api: ApiServer, browser: Any) -> None:
    page = browser.new_context().new_page()
    page.goto(api.url + "/")
    assert page.url == f"{api.url}/console/login"
    assert "Run stigmer console in a terminal" in page.inner_text("body")
    assert page.query_selector("#nav") is None


# ----- end to end: a real Temporal, a real runner, the scripted model -----

@pytest.fixture(scope="module")
def stack(temporal_server: TemporalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with scripted_stack(temporal_server, tmp_path_factory, "console") as running:
        yield running


def _apply(stack: Stack, name: str, steps: list[dict[str, Any]], **spec: Any) -> str:
    script = write_script(stack.scripts / f"{name}-{uuid.uuid4().hex[:6]}.json", steps, token_size=2)
    doc = {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": name},
           "spec": {"instructions": "Be helpful.", "model": f"scripted:{script}", **spec}}
    with _as(stack.api, stack.api.token) as http:
        http.post("/v1/apply", json={"documents": [doc]}).raise_for_status()
    return script


def _events(stack: Stack, execution_id: str) -> list[dict[str, Any]]:
    with _as(stack.api, stack.api.token) as http:
        text = http.get(f"/v1/executions/{execution_id}/events", params={"follow": "false"}).text
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def _wait(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_a_run_started_from_the_page_streams_to_completion(stack: Stack, browser: Any) -> None:
    final = "The workspace has nothing in it yet, so there is nothing to list."
    _apply(stack, "looker", [{"content": "Let me look.", "tool_calls": [{"name": "list_files", "args": {}}],
                              "usage": {"input_tokens": 20, "output_tokens": 5}},
                             {"content": final, "usage": {"input_tokens": 22, "output_tokens": 12}}],
           tools=["workspace"], workspace="looker-ws", approvals={"mode": "never"})
    page = open_console(browser, stack.api.url, stack.api.token)
    page.goto(f"{stack.api.url}/console/#/executions")
    page.select_option("#start-run select[name=agent]", "looker")
    page.fill("#start-run textarea[name=message]", "What is in my workspace?")
    page.click("#start-run button[type=submit]")
    page.wait_for_url("**/console/#/executions/*")
    page.wait_for_selector("#final .answer", timeout=60_000)
    assert page.inner_text("#final .answer") == final
    assert "42 in / 17 out tokens" in page.inner_text("#final .usage")
    tool = page.query_selector(".tool")
    assert tool is not None and tool.query_selector(".name").inner_text() == "list_files"  # type: ignore[union-attr]
    assert page.inner_text(".tool .args") == "{}" and page.inner_text(".tool .result") != "running…"
    assert int(page.get_attribute("#run", "data-tokens") or 0) > 10  # the tokens streamed into the page
    assert page.inner_text("#state") == "completed"
    execution_id = page.url.rsplit("/", 1)[1]
    assert _events(stack, execution_id)[-1]["type"] == "completed"


@pytest.mark.slow
def test_an_approval_clicked_in_the_page_lets_the_tool_run_once(stack: Stack, browser: Any, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    write = {"name": "write_file", "args": {"path": "note.txt", "content": "hi"}}
    _apply(stack, "writer", [{"content": "", "tool_calls": [write]}, {"content": "Wrote it."}],
           tools=["workspace"], workspace=str(workspace))
    with _as(stack.api, stack.api.token) as http:
        execution = http.post("/v1/executions", json={"agent": "writer", "message": "write a note"}).json()

    def pending() -> list[dict[str, Any]]:
        with _as(stack.api, stack.api.token) as http:
            return list(http.get("/v1/approvals", params={"status": "pending", "execution": execution["id"]})
                        .json()["items"])

    approval = _wait(pending, "the approval")[0]
    assert not (workspace / "note.txt").exists()
    page = open_console(browser, stack.api.url, stack.api.token)
    page.goto(f"{stack.api.url}/console/#/approvals")
    box = page.wait_for_selector(f"[data-approval='{approval['id']}']")
    assert "note.txt" in box.inner_text()
    box.query_selector("[data-action=approve]").click()  # type: ignore[union-attr]
    page.wait_for_selector(f"[data-approval='{approval['id']}'] .badge.approved")
    assert box.query_selector("[data-action=approve]").is_disabled()  # type: ignore[union-attr]
    _wait(lambda: [e for e in _events(stack, execution["id"]) if e["type"] == "completed"], "the end")
    assert (workspace / "note.txt").read_text() == "hi"
    runs = [e for e in _events(stack, execution["id"]) if e["type"] == "tool_finished"]
    assert [e["data"]["name"] for e in runs] == ["write_file"]  # it ran, once
    page.goto(f"{stack.api.url}/console/#/executions/{execution['id']}")
    page.wait_for_selector("#final .answer")
    assert page.inner_text("#final .answer") == "Wrote it."


@pytest.mark.slow
def test_a_rejection_with_a_reason_from_the_page_keeps_the_tool_from_running(stack: Stack, browser: Any,
                                                                              tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    write = {"name": "write_file", "args": {"path": "no.txt", "content": "no"}}
    _apply(stack, "refused", [{"content": "", "tool_calls": [write]}, {"content": "Understood, nothing written."}],
           tools=["workspace"], workspace=str(workspace))
    page = open_console(browser, stack.api.url, stack.api.token)
    page.goto(f"{stack.api.url}/console/#/executions")
    page.select_option("#start-run select[name=agent]", "refused")
    page.fill("#start-run textarea[name=message]", "write it")
    page.click("#start-run button[type=submit]")
    box = page.wait_for_selector(".approval", timeout=60_000)  # the live run shows it, with the buttons
    box.query_selector("input").fill("not today")  # type: ignore[union-attr]
    box.query_selector("[data-action=reject]").click()  # type: ignore[union-attr]
    page.wait_for_selector("#final .answer", timeout=60_000)
    assert page.inner_text("#final .answer") == "Understood, nothing written."
    assert not (workspace / "no.txt").exists()
    execution_id = page.url.rsplit("/", 1)[1]
    with _as(stack.api, stack.api.token) as http:
        decided = http.get("/v1/approvals", params={"execution": execution_id}).json()["items"]
    assert [(a["status"], a["reason"]) for a in decided] == [("rejected", "not today")]


@pytest.mark.slow
def test_a_session_is_a_chat(stack: Stack, browser: Any) -> None:
    _apply(stack, "talker", [{"content": "Hello there."}, {"content": "Still here."}], approvals={"mode": "never"})
    page = open_console(browser, stack.api.url, stack.api.token)
    page.goto(f"{stack.api.url}/console/#/sessions")
    page.select_option("#new-session select[name=agent]", "talker")
    page.fill("#new-session input[name=name]", "chat-page")
    page.click("#new-session button[type=submit]")
    page.wait_for_selector("#send textarea")
    for message, answer in (("Hi", "Hello there."), ("Are you there?", "Still here.")):
        page.fill("#send textarea", message)
        page.click("#send button[type=submit]")
        page.wait_for_selector(f".bubble.agent >> text={answer}", timeout=60_000)
    page.reload()
    page.wait_for_selector(".bubble.agent >> text=Still here.")
    assert [b.inner_text() for b in page.query_selector_all(".bubble.user")] == ["Hi", "Are you there?"]
    assert "· 2 turns ·" in page.inner_text("main p.muted")
    page.goto(f"{stack.api.url}/console/#/sessions")
    row = page.wait_for_selector("tr:has(a:text('chat-page'))")
    assert row.query_selector_all("td")[3].inner_text() == "2"


@pytest.mark.slow
def test_a_viewer_console_reads_only(stack: Stack, browser: Any) -> None:
    with _as(stack.api, stack.api.token) as http:
        viewer = http.post("/v1/tokens", json={"name": f"v-{uuid.uuid4().hex[:6]}", "role": "viewer"}).json()["token"]
    page = open_console(browser, stack.api.url, viewer)
    assert page.inner_text("#who") == "viewer (read-only)"
    page.goto(f"{stack.api.url}/console/#/executions")
    page.wait_for_selector(".readonly")
    assert page.query_selector("#start-run") is None
    refused = page.evaluate("""async () => (await fetch('/v1/executions', {method: 'POST',
        headers: {'X-Stigmer-Console': '1', 'Content-Type': 'application/json'},
        body: JSON.stringify({agent: 'talker', message: 'hi'})})).status""")
    assert refused == 403
    assert viewer not in page.content() and all(viewer not in c["value"] for c in page.context.cookies())


def test_the_console_is_package_data() -> None:
    """Every file the console serves ships in the wheel (pyproject's package-data globs)."""
    import fnmatch
    import tomllib

    from stigmer.daemon._routes_console import STATIC

    globs = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["stigmer"]
    root = STATIC.parents[2]
    files = [p.relative_to(root).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert files and all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), files


def test_a_config_without_managed_temporal_has_no_ui_link(cfg: Config, http: httpx.Client) -> None:
    assert http.get("/v1/status").json()["temporal"]["ui_url"] is None
