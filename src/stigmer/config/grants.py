"""What an MCP server's ``env``/``headers`` may reference, and how a reference is granted and filled in.

A value is a plain string, which may name variables as ``${NAME}``, or ``{valueFrom: {secret: NAME}}``.
Only the reference is stored and pinned into an execution (SQLite, workflow input and history); the
runner fills it in when it connects. A reference is an explicit grant, never "any variable the runner
has":

- stigmer's own secrets (``envvars.is_stigmer_secret``: LLM keys, stigmer's tokens, the Temporal API key)
  can never be referenced; ``apply`` refuses such a document;
- ``${NAME}`` resolves from the secret store (``stigmer secret set NAME``), else from the runner's
  environment when ``NAME`` is in ``mcp.allow_env`` (or is one of the :data:`BASICS` every child gets);
- ``valueFrom: {secret: NAME}`` resolves from the secret store only.

Anything else is refused with a :class:`GrantError` naming the server, the field, the variable and both
ways to grant it. Ground floor: the resources (validation at apply), the daemon (check at run start) and
the runner (resolution at connect time) all use these functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from .envvars import is_stigmer_secret

REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
BASICS = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER")
"""The runner variables every tool child gets anyway (the MCP SDK's list), so ``${PATH}`` needs no grant."""
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VALUE_FROM = "valueFrom"


class GrantError(UserError):
    """A reference that is not granted (or never may be). The API answers it with 422."""

    status = 422


@dataclass(frozen=True)
class Reference:
    """One variable a value refers to.

    Attributes:
        field: where, as a person reads it: ``spec.stdio.env.GITHUB_TOKEN``.
        name: the variable (``GITHUB_TOKEN``).
        store_only: True for ``valueFrom: {secret: NAME}`` (the secret store only, never the environment).
    """

    field: str
    name: str
    store_only: bool = False

    @property
    def written(self) -> str:
        """The reference as the document spells it."""
        return f"valueFrom.secret {self.name}" if self.store_only else f"${{{self.name}}}"


def secret_name(value: Any) -> str | None:
    """The NAME of a ``{valueFrom: {secret: NAME}}`` value (a plain dict, as stored and pinned), else None."""
    if isinstance(value, Mapping):
        inner = value.get(VALUE_FROM)
        if isinstance(inner, Mapping) and isinstance(inner.get("secret"), str):
            return str(inner["secret"])
    return None


def value_references(field: str, value: Any) -> list[Reference]:
    """The references in one ``env``/``headers`` value (a string or a valueFrom dict)."""
    name = secret_name(value)
    if name is not None:
        return [Reference(field, name, store_only=True)]
    return [Reference(field, m.group(1)) for m in REF.finditer(str(value))]


def _fields(spec: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    stdio, http = spec.get("stdio") or {}, spec.get("http") or {}
    yield "spec.stdio.env", stdio.get("env") or {}
    yield "spec.http.headers", http.get("headers") or {}


def server_references(spec: Mapping[str, Any]) -> list[Reference]:
    """Every reference of an MCP server spec (the stored/pinned dict form: ``stdio.env``, ``http.headers``)."""
    return [ref for prefix, values in _fields(spec) for key, value in values.items()
            for ref in value_references(f"{prefix}.{key}", value)]


def refuse_own_secret(ref: Reference) -> None:
    """Raise a GrantError when ``ref`` names one of stigmer's own secrets (they are never handed out)."""
    if is_stigmer_secret(ref.name):
        raise GrantError(
            f"{ref.field}: {ref.written} is one of stigmer's own secrets; MCP servers can never be given it",
            hint="give the server its own credential: `stigmer secret set NAME` and reference that NAME "
                 "(stigmer's keys are set through `stigmer config`, not handed to tools)")


def how_to_grant(ref: Reference) -> str:
    """What a person does to grant ``ref``: the secret store, and (for ``${NAME}``) the allow-list."""
    store = f"store it with `stigmer secret set {ref.name}`"
    if ref.store_only:
        return store + " (on the machine whose runner runs the server)"
    return (f"{store}, or let MCP servers read the runner's own variable with "
            f"`stigmer config set mcp.allow_env {ref.name}` (STIGMER_MCP_ALLOW_ENV)")


def _ungranted_message(server: str, ref: Reference, why: str) -> GrantError:
    return GrantError(f"MCP server {server!r}: {ref.field}: {ref.written} {why}", hint=how_to_grant(ref))


def check_granted(server: str, spec: Mapping[str, Any], store_names: Iterable[str],
                  allow_env: Iterable[str]) -> None:
    """Raise a GrantError for the first reference of ``spec`` that is not granted (the daemon, at run start).

    It checks names only (the store's names, the allow-list): whether an allowed variable is set is
    only known where the runner runs, and it says so when it connects.
    """
    stored, allowed = set(store_names), set(allow_env) | set(BASICS)
    for ref in server_references(spec):
        refuse_own_secret(ref)
        if ref.name in stored or (not ref.store_only and ref.name in allowed):
            continue
        raise _ungranted_message(server, ref, "is not granted" if not ref.store_only else
                                 "is not in the secret store")


def check_run(agent: str, servers: Iterable[Mapping[str, Any]], cfg: Any) -> None:
    """The daemon's check before an execution starts: every reference of the agent's servers is granted.

    Against this home's secret store and ``mcp.allow_env``, which are what the daemon's own runners
    read. With ``runner.workers: 0`` the runners are elsewhere, with their own store: each checks when
    it connects the server instead.
    """
    from .secret_store import SecretStore

    servers = list(servers)
    if not cfg.value("runner.workers") or not any(server_references(s) for s in servers):
        return
    names = SecretStore(cfg.home).names()
    for server in servers:
        try:
            check_granted(str(server.get("name")), server, names, cfg.value("mcp.allow_env"))
        except GrantError as exc:
            raise GrantError(f"agent {agent!r}: {exc.message}", hint=exc.hint) from None


@dataclass(frozen=True)
class Grants:
    """What a runner may fill references from.

    Attributes:
        secrets: the secret store's entries (name -> value).
        allow_env: names of the runner's own variables MCP servers may reference (``mcp.allow_env``).
        environ: the runner's environment.
    """

    secrets: Mapping[str, str]
    allow_env: tuple[str, ...]
    environ: Mapping[str, str]

    def lookup(self, server: str, ref: Reference) -> str:
        """The value ``ref`` stands for, or a GrantError saying why it may not be had and how to grant it."""
        refuse_own_secret(ref)
        if ref.name in self.secrets:
            return self.secrets[ref.name]
        if ref.store_only:
            raise _ungranted_message(server, ref, "is not in this runner's secret store")
        if ref.name not in self.allow_env and ref.name not in BASICS:
            raise _ungranted_message(server, ref, "is not granted (not in the secret store nor in mcp.allow_env)")
        if ref.name not in self.environ:
            raise GrantError(f"MCP server {server!r}: {ref.field}: {ref.written} is granted (mcp.allow_env) but "
                             "not set in the runner's environment",
                             hint=f"set {ref.name} where the runner starts, or store it with "
                                  f"`stigmer secret set {ref.name}`")
        return self.environ[ref.name]

    def fill(self, server: str, prefix: str, values: Mapping[str, Any] | None) -> dict[str, str]:
        """Every value of ``values`` with its references filled in (``prefix`` names the field for errors)."""
        out: dict[str, str] = {}
        for key, value in (values or {}).items():
            field = f"{prefix}.{key}"
            name = secret_name(value)
            if name is not None:
                out[key] = self.lookup(server, Reference(field, name, store_only=True))
            else:
                out[key] = self._substitute(server, field, str(value))
        return out

    def _substitute(self, server: str, field: str, text: str) -> str:
        return REF.sub(lambda match: self.lookup(server, Reference(field, match.group(1))), text)
