"""The CLI's HTTP client for the daemon's API (the CLI's only way in).

It finds the daemon through ``$STIGMER_HOME/run/state.json`` (written once the API listens) and
authenticates with ``run/token``. No state file, or nothing answering where it points, means the
daemon is down: :class:`~stigmer.errors.DaemonNotRunning`, which says how to start it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import envvars as ev
from ..errors import DaemonNotRunning, RuntimeFailure, UserError

if TYPE_CHECKING:
    import httpx

DEFAULT_TIMEOUT_S = 30.0
# An event stream sends a comment every few seconds while idle; this long without a byte means the daemon is gone.
STREAM_READ_TIMEOUT_S = 60.0


class NoAnswer(RuntimeFailure):
    """A request was sent but no answer came back (timeout, connection dropped): it may or may not have happened."""


class ApiRefused(UserError):
    """The daemon refused a request (a 4xx): its ``detail`` and ``hint``, and the ``status`` for callers that branch."""

    def __init__(self, message: str, *, hint: str | None = None, status: int = 400) -> None:
        super().__init__(message, hint=hint)
        self.status = status


def home_dir() -> Path:
    """``$STIGMER_HOME`` (or ``~/.stigmer``), without resolving the whole configuration."""
    from ..config.resolve import default_home

    return default_home(os.environ)


def read_token_file(path: str, what: str) -> str:
    """The token in the file ``path`` (named ``what`` in errors); refused unless only its owner may read it."""
    token_file = Path(path).expanduser()
    try:
        mode = token_file.stat().st_mode
        token = token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UserError(f"cannot read the token file {token_file} ({what}): {exc.strerror or exc}",
                        hint="point it at the file `stigmer token create --out FILE` wrote") from None
    if mode & 0o077:
        raise UserError(f"the token file {token_file} may be read by other users (mode {mode & 0o777:o})",
                        hint=f"chmod 600 {token_file}")
    if not token:
        raise UserError(f"the token file {token_file} ({what}) is empty", hint="write the token into it")
    return token


def server_url(server: str) -> str:
    """``--server`` checked (the CLI's and a runner's): an http(s) URL, plain ``http://`` only to a loopback address,
    since a token must not cross a network in clear."""
    from urllib.parse import urlsplit

    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"--server {server!r} is not an http(s) URL", hint="e.g. --server https://stigmer.example.com")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        raise UserError(f"--server {server} would send the token unencrypted",
                        hint="use https:// (plain http is for loopback addresses only)")
    return server.rstrip("/")


def remote(server: str) -> tuple[str, str]:
    """The URL (:func:`server_url`) and token for a server elsewhere: the token from ``STIGMER_TOKEN_FILE`` (a file
    only its owner may read, as ssh wants of a key) or ``STIGMER_TOKEN``, never from the command line, where ``ps``
    and the shell's history would keep it."""
    url = server_url(server)
    path = os.environ.get(ev.TOKEN_FILE, "").strip()
    token = read_token_file(path, "STIGMER_TOKEN_FILE (or --token-file)") if path else os.environ.get(ev.TOKEN, "")
    token = token.strip()
    if not token:
        raise UserError(f"no token for the server at {server}",
                        hint="set STIGMER_TOKEN_FILE (or --token-file) to a file holding a token from `stigmer token "
                             "create`, or STIGMER_TOKEN to the token itself")
    return url, token


def tls_verify() -> Any:
    """How an https server's certificate is checked: the system's CAs, or those in ``STIGMER_CA_FILE`` (``--ca-file``)
    for a server with a private CA or a self-signed certificate. Verification is never turned off."""
    path = os.environ.get(ev.CA_FILE, "").strip()
    if not path:
        return True
    import ssl

    try:
        return ssl.create_default_context(cafile=str(Path(path).expanduser()))
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"cannot use the CA file {path} (--ca-file / STIGMER_CA_FILE): "
                        f"{getattr(exc, 'strerror', None) or exc}",
                        hint="point it at a PEM file holding the CA certificate (or the server's own)") from None


class Client:
    """A connection to the running daemon. Use :meth:`connect`; close with :meth:`close` (or ``with``)."""

    def __init__(self, base_url: str, token: str, timeout: float | None = None) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout or DEFAULT_TIMEOUT_S, verify=tls_verify(),
                                  headers={"Authorization": f"Bearer {token}"})

    @classmethod
    def connect(cls, home: Path | None = None) -> Client:
        """The client for the server named by ``--server``/``STIGMER_SERVER`` (see :func:`remote`), else for the
        local daemon of ``home``; DaemonNotRunning when there is none."""
        from ..daemon.files import read_state, read_token

        server = os.environ.get(ev.SERVER, "").strip()
        if server:
            return cls(*remote(server))
        run_dir = (home or home_dir()) / "run"
        state = read_state(run_dir)
        token = read_token(run_dir)
        if state is None or token is None:
            raise DaemonNotRunning()
        return cls(state.url, token)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None) -> Any:
        """Call the API; return the decoded JSON, or raise a stigmer error carrying the daemon's message."""
        import httpx

        try:
            response = self._http.request(method, path, json=json_body, params=params, headers=headers)
        except httpx.ConnectError as exc:
            raise self._unreachable(exc) from None
        except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            what = "did not answer in time" if isinstance(exc, httpx.TimeoutException) else "dropped the connection"
            raise NoAnswer(f"the stigmer daemon at {self.base_url} {what}",
                           hint="check it with `stigmer local status` and its log with `stigmer local logs`") from None
        _raise_for(response)
        return response.json()

    def _unreachable(self, exc: Exception) -> Exception:
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return UserError(f"the certificate of {self.base_url} is not trusted: {str(exc).rpartition('] ')[2]}",
                             hint="if the server uses a private CA or a self-signed certificate, trust it with "
                                  "--ca-file FILE (env STIGMER_CA_FILE)")
        return DaemonNotRunning(f"the stigmer daemon is not answering at {self.base_url}")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None, *, headers: dict[str, str] | None = None) -> Any:
        return self.request("POST", path, json_body=body if body is not None else {}, headers=headers)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def events(self, execution_id: str, after: int = 0, follow: bool = True) -> Iterator[dict[str, Any]]:
        """The execution's events from ``after`` on (server-sent events), until its last one."""
        import httpx

        params = {"after": after, "follow": "true" if follow else "false"}
        timeout = httpx.Timeout(DEFAULT_TIMEOUT_S, read=STREAM_READ_TIMEOUT_S)
        try:
            with self._http.stream("GET", f"/v1/executions/{execution_id}/events", params=params,
                                   timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                yield from parse_sse(response.iter_lines())
        except httpx.ConnectError as exc:
            raise self._unreachable(exc) from None
        except (httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError):
            raise RuntimeFailure(f"lost the event stream of execution {execution_id}",
                                 hint=f"follow it again with `stigmer execution logs {execution_id} -f`") from None


def parse_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Decode a ``text/event-stream``: each event's ``data`` is one JSON event; comments are skipped."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield json.loads("\n".join(data))
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    if data:
        yield json.loads("\n".join(data))


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    hint = body.get("hint") if isinstance(body, dict) else None
    message = detail if isinstance(detail, str) else f"the daemon answered {response.status_code}"
    if response.status_code == 401 and os.environ.get(ev.SERVER, "").strip():
        raise RuntimeFailure(f"the server refused this client's token: {message}",
                             hint=hint or "check STIGMER_TOKEN_FILE / STIGMER_TOKEN; an admin can make a new token")
    if response.status_code == 401:
        raise RuntimeFailure("the daemon refused this client's token",
                             hint="the token in $STIGMER_HOME/run/token changed: `stigmer local restart`")
    if response.status_code < 500:
        raise ApiRefused(message, hint=hint, status=response.status_code)
    raise RuntimeFailure(message, hint=hint or "see the daemon's log: `stigmer local logs`")
