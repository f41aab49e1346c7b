"""A sentinel API key lives in the whole stack's environment for a run; it must surface nowhere a person could read.

The stack runs on the scripted provider, but ``ANTHROPIC_API_KEY`` and ``STIGMER_LLM_API_KEY`` hold
sentinels, so the daemon, the runners and every CLI call carry them exactly as a real key would be
carried. The runners' token (role ``runner``, in their environment as ``STIGMER_SERVER_TOKEN``) is
searched for too: it must stay in ``run/runner-token`` and the runners' environment. Executions with
tool calls (one runs ``env`` in the shell tool, the way a curious model would), and a failing one,
exercise events, errors and workflow histories. Then every place a key
could leak is searched, raw and decoded: logs, the SQLite files, events, ``config show``,
``local status``, error messages, Temporal histories (``temporal workflow show``, raw and decoded
through the codec server), the blob store (``blobs.threshold`` is set low, so nearly every payload
goes there), the OpenTelemetry spans the daemon and runners export (the whole stack traces to a recorder on
loopback) and every process's command line while the stack runs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.faults.checks import history
from tests.support.local_daemon import LocalStack
from tests.support.otlp import OtlpReceiver

pytestmark = pytest.mark.slow

CORES = [secrets.token_hex(12), secrets.token_hex(12)]  # + the runner token, once the stack made it
SENTINELS = {"ANTHROPIC_API_KEY": f"sk-ant-SENTINEL-{CORES[0]}", "STIGMER_LLM_API_KEY": f"sk-SENTINEL-{CORES[1]}"}

TOOL_STEPS: list[dict[str, Any]] = [
    {"content": "Writing.", "tool_calls": [{"name": "write_file", "args": {"path": "note.txt", "content": "hi"}}]},
    {"content": "Looking around.", "tool_calls": [{"name": "run_shell", "args": {"command": "env; ls; sleep 0.5"}}]},
    {"content": "Done."},
]
FAILING_STEPS: list[dict[str, Any]] = [{"content": "never", "fail": {"status": 401, "message": "bad key", "times": 99}}]


def leaks(text: str | bytes) -> bool:
    """True when any sentinel (or its random core, so a partly masked copy too) is in ``text``."""
    raw = text.encode() if isinstance(text, str) else text
    return any(core.encode() in raw for core in CORES)


def _agent(home: Path, name: str, steps: list[dict[str, Any]]) -> Path:
    from tests.support.scripted_provider import write_script

    script = write_script(home / f"{name}.json", steps, token_size=4)
    path = home / f"{name}.yaml"
    path.write_text(f"apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata:\n  name: {name}\n"
                    f"spec:\n  instructions: Do the steps.\n  model: 'scripted:{script}'\n"
                    "  tools: [workspace, shell]\n  approvals: {mode: never}\n")
    return path


def _cmdlines() -> list[bytes]:
    """Every process's command line, as /proc shows it to anyone on the machine."""
    lines = []
    for proc in psutil.process_iter():
        try:
            lines.append(Path(f"/proc/{proc.pid}/cmdline").read_bytes())
        except OSError:
            continue
    return lines


class CmdlineSampler:
    """Reads every process's command line every 50 ms in a thread, while the block runs."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            self.seen += _cmdlines()
            self.rounds += 1
            if self._stop.wait(0.05):
                return

    def __enter__(self) -> CmdlineSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert self.rounds >= 2


def _decoded(value: Any) -> Iterator[str]:
    """Every string in a JSON value, base64 payload data decoded as well (history payloads are base64)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "data" and isinstance(item, str):
                with contextlib.suppress(ValueError):
                    yield base64.b64decode(item, validate=True).decode("utf-8", errors="replace")
            yield from _decoded(item)
    elif isinstance(value, list):
        for item in value:
            yield from _decoded(item)
    elif isinstance(value, str):
        yield value


@pytest.fixture(scope="module")
def surfaces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[str | bytes]]]:
    """Run the stack with the sentinels; collect every surface (name -> texts) to search."""
    home = tmp_path_factory.mktemp("sentinel") / "home"
    home.mkdir()
    otlp = OtlpReceiver().__enter__()
    stack = LocalStack.scripted(home, [{"content": "unused"}], STIGMER_BLOBS_THRESHOLD="256",
                                OTEL_EXPORTER_OTLP_ENDPOINT=otlp.url, OTEL_BSP_SCHEDULE_DELAY="100", **SENTINELS)
    found: dict[str, list[str | bytes]] = {}
    try:
        started = stack.start()
        assert started.returncode == 0, started.stderr
        found["stigmer local start output"] = [started.stdout, started.stderr]
        runner = psutil.Process(stack.components()["runner-1"]["pid"])
        assert runner.environ()["ANTHROPIC_API_KEY"] == SENTINELS["ANTHROPIC_API_KEY"]  # the key is really there
        runner_token = (home / "run" / "runner-token").read_text().strip()
        assert runner.environ()["STIGMER_SERVER_TOKEN"] == runner_token  # and so is the runner token
        CORES.append(runner_token)
        for name, steps in (("tools", TOOL_STEPS), ("broken", FAILING_STEPS)):
            assert stack.run("apply", "-f", str(_agent(home, name, steps))).returncode == 0
        with CmdlineSampler() as sampler:  # every process's argv while the executions (and their tools) run
            runs = [stack.run("run", "tools", "go", "--json"), stack.run("run", "tools", "again", "--json"),
                    stack.run("run", "broken", "go")]
        found["process command lines"] = sampler.seen
        # sampled while the shell tool ran (bash execs its last command: argv is NUL-separated)
        assert any(b"sleep\x000.5" in line for line in sampler.seen)
        assert runs[0].returncode == 0 and runs[1].returncode == 0, runs[0].stderr + runs[1].stderr
        assert runs[2].returncode != 0 and runs[2].stderr.strip()  # the failing run says why
        found["stigmer run output and error messages"] = [t for r in runs for t in (r.stdout, r.stderr)]
        _collect_api_and_cli(stack, found)
    finally:
        stack.cleanup()  # the daemon and runners send their last spans as they stop
        otlp.__exit__()
    found["OpenTelemetry spans exported over OTLP (raw bodies)"] = [body for _, body in otlp.bodies]
    found["files under $STIGMER_HOME/logs"] = [p.read_bytes() for p in (home / "logs").rglob("*") if p.is_file()]
    found["blob store files ($STIGMER_HOME/blobs)"] = [p.read_bytes() for p in (home / "blobs").rglob("*")
                                                        if p.is_file()]
    found["SQLite store (db, -wal, -shm)"] = [p.read_bytes() for p in (home / "data").glob("stigmer.db*")]
    found["any file under $STIGMER_HOME"] = [p.read_bytes() for p in home.rglob("*") if p.is_file()]
    yield found


def _collect_api_and_cli(stack: LocalStack, found: dict[str, list[str | bytes]]) -> None:
    listed = json.loads(stack.run("get", "executions", "-o", "json").stdout)
    assert {e["status"] for e in listed} == {"completed", "failed"}
    found["events"], found["Temporal workflow histories"], found["stigmer execution get"] = [], [], []
    found["Temporal workflow histories decoded by the codec server"] = []
    for execution in listed:
        logs = stack.run("execution", "logs", execution["id"], "--json")
        found["events"] += [logs.stdout, logs.stderr]
        found["stigmer execution get"].append(stack.run("execution", "get", execution["id"]).stdout)
        events = history(stack, f"stigmer-exec-{execution['id']}")
        assert events, "the workflow has a history"
        found["Temporal workflow histories"] += [json.dumps(events), *_decoded(events)]
        plain = history(stack, f"stigmer-exec-{execution['id']}", decoded=True)
        reference = base64.b64encode(b"binary/stigmer-blob").decode()  # the claim check's encoding, as JSON shows it
        assert reference in json.dumps(events) and reference not in json.dumps(plain)  # the codec server decoded
        found["Temporal workflow histories decoded by the codec server"] += [json.dumps(plain), *_decoded(plain)]
    assert any("PATH=" in str(t) for t in found["events"])  # the shell tool really ran `env`
    found["stigmer get executions -o json"] = [json.dumps(listed)]
    shows = [stack.run("config", "show"), stack.run("config", "show", "--json")]
    assert json.loads(shows[1].stdout)["llm.api_key"]["source"] == "env"  # the key was resolved, then masked
    found["stigmer config show (+ --json)"] = [t for r in shows for t in (r.stdout, r.stderr)]
    status = stack.run("local", "status", "--json")
    found["stigmer local status --json"] = [status.stdout, status.stderr]
    created = stack.run("token", "create", "--name", "sentinel-viewer", "--role", "viewer", "--json")
    viewer = json.loads(created.stdout)["token"]
    listed_tokens = stack.run("token", "list", "--json")
    assert "sentinel-viewer" in listed_tokens.stdout
    found["stigmer token create / list"] = [created.stdout, created.stderr, listed_tokens.stdout, listed_tokens.stderr]
    scraped = httpx.get(f"http://127.0.0.1:{stack.api_port}/metrics", headers={"Authorization": f"Bearer {viewer}"},
                        timeout=30)
    assert scraped.status_code == 200 and "stigmer_api_requests_total" in scraped.text
    found["GET /metrics"] = [scraped.text]
    _collect_console(stack, found, viewer)


def _collect_console(stack: LocalStack, found: dict[str, list[str | bytes]], viewer: str) -> None:
    """The web console, as a browser sees it: every page, every script and API answer it loaded, its cookies, the
    URLs it visited. Neither a key nor a token (the admin's, a viewer's, the runners') may be in any of it."""
    from tests.support.console import launched

    link = stack.run("console", "--json")
    assert link.returncode == 0, link.stderr
    url = json.loads(link.stdout)["url"]
    seen: list[str | bytes] = [link.stdout, link.stderr]
    admin = (stack.home / "run" / "token").read_text().strip()
    with launched() as browser:
        page = browser.new_context().new_page()
        page.on("response", lambda r: seen.extend([r.url, json.dumps(dict(r.headers))]))
        bodies: list[Any] = []
        page.on("requestfinished", lambda r: bodies.append(r))
        page.goto(url)
        page.wait_for_url("**/console/")
        executions = json.loads(stack.run("get", "executions", "-o", "json").stdout)
        fragments = ["#/", "#/agents", "#/executions", "#/sessions", "#/approvals"]
        for fragment in fragments + [f"#/executions/{e['id']}" for e in executions]:
            page.goto(url.split("/console/")[0] + "/console/" + fragment)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(300)
            seen += [page.url, page.content()]
        for request in bodies:
            response = request.response()
            if response is not None and response.status < 300 and "event-stream" not in response.headers.get(
                    "content-type", ""):
                seen.append(response.body())
        seen += [json.dumps(page.context.cookies())]
    assert any(b"liveRun" in t for t in seen if isinstance(t, bytes))  # the scripts were collected
    assert any("PATH=" in t for t in seen if isinstance(t, str))  # a run's page, with the shell tool's `env` shown
    for token in (admin, viewer, CORES[-1]):
        assert not any(token in (t if isinstance(t, str) else t.decode(errors="replace")) for t in seen)
    found["web console (pages, scripts, API answers, cookies, URLs)"] = seen


def test_the_sentinel_key_leaks_nowhere(surfaces: dict[str, list[str | bytes]]) -> None:
    leaked = sorted(name for name, texts in surfaces.items() if any(leaks(t) for t in texts))
    print(f"surfaces searched: {len(surfaces)}; leaks found: {len(leaked)}")
    assert leaked == [], f"leaks found: {len(leaked)}: the sentinel key appears in {leaked}"


def test_every_surface_was_actually_collected(surfaces: dict[str, list[str | bytes]]) -> None:
    """A search of empty surfaces would prove nothing: each one holds real content."""
    empty = [name for name, texts in surfaces.items() if not any(len(t) for t in texts)]
    assert empty == []
    assert leaks(f"prefix {SENTINELS['ANTHROPIC_API_KEY']} suffix")  # the detector itself works


def test_stigmer_server_shows_neither_the_database_password_nor_the_temporal_key(tmp_path: Path) -> None:
    """Team mode's secrets (issue 12): the database URL's password and the Temporal API key, from the environment,
    searched in ``config show``/``get``, a replica's log, ``/v1/status`` and ``/v1/config``, its argv, and the errors of
    a replica and of ``server init`` that cannot open the database (whose URL the driver may quote)."""
    from tests.support.cli import stigmer
    from tests.support.ports import free_port
    from tests.support.server import start_server

    password, key = f"pw-{secrets.token_hex(12)}", f"tk-{secrets.token_hex(12)}"
    cores = [password[3:], key[3:]]
    pg_url = f"postgresql://stigmer:{password}@127.0.0.1:1/stigmer"  # nothing listens there
    env = {"STIGMER_DATABASE_URL": pg_url, "TEMPORAL_API_KEY": key}
    texts: dict[str, list[str | bytes]] = {}
    shows = [stigmer("config", "show", env=env), stigmer("config", "show", "--json", env=env),
             stigmer("config", "get", "server.database_url", env=env)]
    assert json.loads(shows[1].stdout)["server.database_url"]["value"] == "postgresql://stigmer:***@127.0.0.1:1/stigmer"
    texts["config show / get"] = [t for r in shows for t in (r.stdout, r.stderr)]
    failed = [stigmer("server", "--temporal-address", "127.0.0.1:1", "--port", str(free_port()), env=env, timeout=120),
              stigmer("server", "init", "--out", str(tmp_path / "admin.token"), env=env, timeout=120)]
    for done in failed:
        assert done.returncode != 0 and "cannot open the database postgresql://stigmer:***@127.0.0.1:1" in done.stderr
    texts["stigmer server / server init errors"] = [t for r in failed for t in (r.stdout, r.stderr)]
    sqlite = {"STIGMER_DATABASE_URL": f"sqlite:///{tmp_path / 'team.db'}", "TEMPORAL_API_KEY": key}
    assert stigmer("server", "init", "--out", str(tmp_path / "admin.token"), env=sqlite).returncode == 0
    admin = (tmp_path / "admin.token").read_text().strip()
    server = start_server(tmp_path, "--temporal-address", "127.0.0.1:1", env=sqlite)
    try:
        assert psutil.Process(server.process.pid).environ()["TEMPORAL_API_KEY"] == key  # the key is really there
        texts["the replica's command line"] = [Path(f"/proc/{server.process.pid}/cmdline").read_bytes()]
        with server.client(admin) as http:
            from tests.support.local_daemon import wait_until

            wait_until(lambda: http.get("/v1/status").json()["components"][1]["state"] == "unreachable", timeout=30,
                       what="the replica tried Temporal (with the key)")
            texts["GET /v1/status, /v1/config"] = [http.get("/v1/status").text, http.get("/v1/config").text]
    finally:
        assert server.stop() == 0
    texts["the replica's log"] = [server.output()]
    assert "temporal: cannot reach" in server.output()  # it tried Temporal, with the key
    leaked = sorted(name for name, found in texts.items()
                    if any(core.encode() in (t.encode() if isinstance(t, str) else t) for t in found for core in cores))
    assert leaked == [], f"a team-mode secret appears in {leaked}"
    assert all(any(len(t) for t in found) for found in texts.values())
