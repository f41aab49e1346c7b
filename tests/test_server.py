"""``stigmer server`` (issue 12): the API alone, as a team runs it, in real processes on loopback.

Each test starts ``stigmer server`` as a subprocess on a free port over a SQLite database URL (the PostgreSQL
backend plugs into the same ``--database-url``), waits for ``/v1/health``, and talks to it over HTTP(S) and
through the CLI's ``--server``. Refusals are checked before anything binds: ``0.0.0.0`` is named only where
it is refused.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import signal
import socket
import stat
from pathlib import Path

import pytest

from tests.support.cli import stigmer
from tests.support.ports import free_port
from tests.support.server import start_server
from tests.support.temporal import TemporalServer

AGENT = "apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata: {name: hello}\nspec: {instructions: Be brief.}\n"
NO_TEMPORAL = ("--temporal-address", "127.0.0.1:1")  # nothing listens there: the API answers all the same


def _db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'team.db'}"


def _init(tmp_path: Path, name: str = "alice") -> Path:
    out = tmp_path / f"{name}.token"
    done = stigmer("server", "init", "--database-url", _db(tmp_path), "--name", name, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def _clean(text: str) -> None:
    assert "Traceback" not in text and "internal error" not in text


def test_init_writes_the_first_admin_token_to_a_new_0600_file_and_refuses_a_second_time(tmp_path: Path) -> None:
    out = _init(tmp_path)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    token = out.read_text().strip()
    assert token.startswith("stg_")
    again = stigmer("server", "init", "--database-url", _db(tmp_path), "--name", "bob", "--out",
                    str(tmp_path / "bob.token"))
    assert again.returncode == 2 and "has an admin token already (alice)" in again.stderr
    assert "nothing was created" in again.stderr and "token create --role admin" in again.stderr
    assert not (tmp_path / "bob.token").exists()
    taken = stigmer("server", "init", "--database-url", f"sqlite:///{tmp_path / 'other.db'}", "--out", str(out))
    assert taken.returncode != 0 and f"--out {out} exists already" in taken.stderr
    assert out.read_text().strip() == token  # never overwritten
    _clean(again.stderr + taken.stderr)


def test_named_tokens_only_admin_reads_status_viewer_cannot_post_and_sigterm_exits_0(
        tmp_path: Path, temporal_server: TemporalServer) -> None:
    admin_file = _init(tmp_path)
    admin = admin_file.read_text().strip()
    server = start_server(tmp_path, "--database-url", _db(tmp_path), "--temporal-address", temporal_server.address)
    try:
        with server.client() as anonymous:
            refused = anonymous.get("/v1/status")
            assert refused.status_code == 401 and "stigmer server init" in refused.json()["hint"]
            assert anonymous.post("/v1/apply", json={"documents": []}).status_code == 401
        with server.client(admin) as http:
            status = http.get("/v1/status").json()
            api, temporal = status["components"]
            assert api["name"] == "api" and api["pid"] == server.process.pid and api["address"] == server.url
            assert api["uptime_s"] >= 0 and api["state"] == "ready"
            assert temporal["name"] == "temporal" and temporal["managed"] is False
            assert temporal["address"] == temporal_server.address and "external" in temporal["detail"]
            assert status["temporal"]["managed"] is False and status["store"] == str(tmp_path / "team.db")
        # The CLI, elsewhere, with the admin token: makes a viewer token and applies an agent.
        remote = ("--server", server.url, "--token-file", str(admin_file))
        viewer_file = tmp_path / "viewer.token"
        made = stigmer(*remote, "token", "create", "--role", "viewer", "--name", "ci", "--out", str(viewer_file))
        assert made.returncode == 0, made.stderr
        (tmp_path / "hello.yaml").write_text(AGENT)
        assert stigmer(*remote, "apply", "-f", str(tmp_path / "hello.yaml")).returncode == 0
        as_viewer = ("--server", server.url, "--token-file", str(viewer_file))
        listed = stigmer(*as_viewer, "get", "agents", "-o", "json")
        assert listed.returncode == 0 and [a["name"] for a in json.loads(listed.stdout)] == ["hello"]
        denied = stigmer(*as_viewer, "delete", "agent", "hello")
        assert denied.returncode != 0 and "the viewer token may not call DELETE /v1/agents/hello" in denied.stderr
        with server.client(viewer_file.read_text().strip()) as viewer:
            assert viewer.post("/v1/apply", json={"documents": []}).status_code == 403
            assert viewer.get("/v1/agents").status_code == 200
        assert not (Path(tmp_path / "stigmer-home") / "run" / "token").exists()  # no daemon token in server mode
    finally:
        code = server.stop(signal.SIGTERM)
    log = server.output()
    assert code == 0, log
    assert f"listening on {server.url}" in log and "stopped" in log.splitlines()[-1]
    assert admin not in log
    _clean(log)


def test_status_reaches_the_external_temporal(tmp_path: Path, temporal_server: TemporalServer) -> None:
    admin = _init(tmp_path).read_text().strip()
    server = start_server(tmp_path, "--database-url", _db(tmp_path), "--temporal-address", temporal_server.address)
    try:
        with server.client(admin) as http:
            from tests.support.local_daemon import wait_until

            wait_until(lambda: http.get("/v1/status").json()["components"][1]["state"] == "ready", timeout=30,
                       what="temporal ready in /v1/status")
    finally:
        assert server.stop(signal.SIGINT) == 0  # Ctrl-C too


def test_a_non_loopback_host_needs_tls_or_a_proxy(tmp_path: Path) -> None:
    port = free_port()
    done = stigmer("server", "--host", "0.0.0.0", "--port", str(port), "--database-url", _db(tmp_path), *NO_TEMPORAL)
    assert done.returncode == 2
    assert "server.host 0.0.0.0 (flag --host) is not a loopback address" in done.stderr
    assert "--tls-cert FILE --tls-key FILE" in done.stderr and "--behind-proxy" in done.stderr
    _clean(done.stderr)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        pass  # refused before anything bound
    from stigmer.config import resolve
    from stigmer.daemon.server import server_settings

    cert, key = _self_signed(tmp_path)
    for extra in ({"server.tls.cert": (str(cert), "--tls-cert"), "server.tls.key": (str(key), "--tls-key")},
                  {"server.behind_proxy": (True, "--behind-proxy")}):  # either one allows it (checked, not bound)
        cfg = resolve({"server.host": ("0.0.0.0", "--host"), **extra}, env={"STIGMER_HOME": str(tmp_path)})
        assert server_settings(cfg).host == "0.0.0.0"


def test_bad_input_is_a_message_naming_the_flag(tmp_path: Path) -> None:
    cases = [
        (("--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(tmp_path / "k.pem")),
         "server.tls.cert (flag --tls-cert): ", "does not exist"),
        (("--tls-cert", str(tmp_path / "c.pem")), "--tls-cert was given without --tls-key", "both"),
        (("--database-url", "mysql://db/stigmer"), "flag --database-url: server.database_url: unsupported",
         "postgresql"),
        (("--database-url", "sqlite://relative.db"), "expected sqlite:///ABSOLUTE/PATH", "fix the --database-url"),
        (("--database-url", "postgresql://db:port/x"), "not a database URL", "fix the --database-url"),
        (("--behind-proxy", "--trusted-proxy", "proxy.example"), "not an IP address or CIDR network",
         "--trusted-proxy"),
        (("--host", "my-laptop"), "server.host 'my-laptop' (flag --host) is not an IP address", "0.0.0.0"),
    ]
    for args, message, hint in cases:
        done = stigmer("server", *args, *NO_TEMPORAL)
        assert done.returncode == 2 and message in done.stderr and hint in done.stderr, (args, done.stderr)
        _clean(done.stderr)
    (tmp_path / "c.pem").write_text("not a certificate\n")
    (tmp_path / "k.pem").write_text("not a key\n")
    done = stigmer("server", "--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem"))
    assert done.returncode == 2 and "are not a PEM certificate and its private key" in done.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = stigmer("server", "--port", str(port), "--database-url", _db(tmp_path), *NO_TEMPORAL)
    assert done.returncode == 2 and f"the API port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "stigmer server --port N" in done.stderr
    _clean(done.stderr)


def test_a_password_in_database_url_on_the_command_line_is_refused(tmp_path: Path) -> None:
    for command in (("server",), ("server", "init", "--out", str(tmp_path / "a.token"))):
        done = stigmer(*command, "--database-url", "postgresql://stigmer:hunter2-xyz@127.0.0.1:1/stigmer")
        assert done.returncode == 2 and "--database-url holds a password" in done.stderr
        assert "STIGMER_DATABASE_URL" in done.stderr and "hunter2" not in done.stderr + done.stdout
        _clean(done.stderr)
    assert not (tmp_path / "a.token").exists()
    listed = stigmer("config", "show", "--json", env={"STIGMER_DATABASE_URL": "postgresql://u:hunter2-xyz@db/s"})
    shown = json.loads(listed.stdout)["server.database_url"]
    assert shown == {"value": "postgresql://u:***@db/s", "source": "env", "origin": "STIGMER_DATABASE_URL"}


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (the client trusts it as its CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stigmer test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


def test_tls_serving_and_the_cli_trusting_its_certificate_with_ca_file(tmp_path: Path) -> None:
    admin_file = _init(tmp_path)
    cert, key = _self_signed(tmp_path)
    server = start_server(tmp_path, "--database-url", _db(tmp_path), "--tls-cert", str(cert), "--tls-key", str(key),
                          *NO_TEMPORAL, ca_file=cert)
    try:
        assert server.url.startswith("https://127.0.0.1:")
        remote = ("--server", server.url, "--token-file", str(admin_file))
        untrusted = stigmer(*remote, "get", "agents")
        assert untrusted.returncode != 0 and f"the certificate of {server.url} is not trusted" in untrusted.stderr
        assert "--ca-file" in untrusted.stderr
        _clean(untrusted.stderr)
        listed = stigmer(*remote, "--ca-file", str(cert), "get", "agents", "-o", "json")
        assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr
        by_env = stigmer(*remote, "get", "agents", "-o", "json", env={"STIGMER_CA_FILE": str(cert)})
        assert by_env.returncode == 0, by_env.stderr
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as plain:
            plain.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b'{"ok":true}' not in plain.recv(4096)  # no plain HTTP on the TLS port
    finally:
        assert server.stop() == 0


def test_forwarded_headers_count_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    """The access log names the client: the X-Forwarded-For address when the peer (127.0.0.1) is a trusted proxy,
    the peer itself when it is not."""
    _init(tmp_path)
    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    for probe, trusted, client in (("us", "127.0.0.1", "203.0.113.9"), ("other", "10.9.9.0/24", "127.0.0.1")):
        server = start_server(tmp_path, "--database-url", _db(tmp_path), "--behind-proxy", "--trusted-proxy",
                              trusted, *NO_TEMPORAL)
        try:
            with server.client() as http:
                assert http.get("/v1/health", params={"probe": probe}, headers=forwarded).status_code == 200
        finally:
            assert server.stop() == 0
        line = next(line for line in server.output().splitlines() if f"probe={probe}" in line)
        assert f"uvicorn.access: {client}:" in line, line
        assert f"forwarded headers trusted from {trusted}" in server.output()


def test_without_behind_proxy_forwarded_headers_are_ignored(tmp_path: Path) -> None:
    _init(tmp_path)
    server = start_server(tmp_path, "--database-url", _db(tmp_path), *NO_TEMPORAL)
    try:
        with server.client() as http:
            http.get("/v1/health", params={"probe": "direct"}, headers={"X-Forwarded-For": "203.0.113.9"})
    finally:
        assert server.stop() == 0
    line = next(line for line in server.output().splitlines() if "probe=direct" in line)
    assert "uvicorn.access: 127.0.0.1:" in line, line


def test_without_database_url_the_sqlite_default_is_used_and_said(tmp_path: Path, stigmer_home: Path) -> None:
    server = start_server(tmp_path, *NO_TEMPORAL)
    try:
        with server.client() as http:
            assert http.get("/v1/status").status_code == 401  # no token exists yet: nobody gets in
    finally:
        assert server.stop() == 0
    default = stigmer_home / "data" / "stigmer.db"
    assert default.exists() and f"using the SQLite file {default}" in server.output()


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:p%40ss@[::1]:5432/db?sslmode=require", "postgresql://u:***@[::1]:5432/db?sslmode=require"),
    ("postgresql://u@db/s?password=sek&sslmode=verify-full", "postgresql://u@db/s?password=***&sslmode=verify-full"),
    ("postgresql://stigmer@db:5432/stigmer", "postgresql://stigmer@db:5432/stigmer"),
    ("sqlite:////srv/stigmer.db", "sqlite:////srv/stigmer.db"),
])
def test_a_database_url_is_shown_without_its_password(url: str, shown: str, stigmer_home: Path) -> None:
    from stigmer.config import resolve

    cfg = resolve(env={"STIGMER_HOME": str(stigmer_home), "STIGMER_DATABASE_URL": url})
    assert cfg.shown()["server.database_url"]["value"] == shown
    assert cfg.value("server.database_url") == url  # the server itself gets the real one
