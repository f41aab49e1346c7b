"""The secret store: values a person granted to MCP servers, in ``$STIGMER_HOME/secrets.json`` (0600).

``stigmer secret set|list|delete NAME`` edits it; the runner reads it when it connects an MCP server
whose ``env``/``headers`` reference ``${NAME}`` or ``valueFrom: {secret: NAME}`` (``grants.py``). Values
live only here and in the MCP child's environment or request headers: never in SQLite, workflow input
or history, events or logs. A runner on another machine reads its own home's store.

The file is written through :func:`stigmer._fs.write_atomic` with mode 0600 and re-chmodded to 0600
when someone loosened it. Read-modify-write happens under an ``flock``, so two ``secret set`` at once
do not lose one another's entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .._fs import write_atomic
from ..errors import ConfigError, UserError
from .envvars import is_stigmer_secret
from .grants import ENV_NAME

log = logging.getLogger("stigmer.secrets")

FILE = "secrets.json"
VERSION = 1


def check_name(name: str) -> str:
    """``name`` if it may name a secret-store entry, else a UserError saying why and what to do."""
    if not ENV_NAME.match(name or ""):
        raise UserError(f"{name!r} is not a valid secret name: use an environment variable name "
                        "(letters, digits and _, not starting with a digit)",
                        hint="e.g. `stigmer secret set GITHUB_TOKEN`")
    if is_stigmer_secret(name):
        raise UserError(f"{name} is one of stigmer's own secrets: it is configured through `stigmer config` or the "
                        "environment, and is never handed to MCP servers",
                        hint="store the credential the MCP server needs under its own name, e.g. GITHUB_TOKEN")
    return name


class SecretStore:
    """The secret store of one stigmer home."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / FILE

    def _tighten(self) -> None:
        """Put the mode back to 0600 if someone loosened it (the values are readable by others meanwhile)."""
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE(self.path.stat().st_mode)
            if mode & 0o077:
                os.chmod(self.path, 0o600)
                log.warning("%s was mode %o; set it back to 0600", self.path, mode)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the secret store: {exc.strerror or exc}",
                              hint="check the file's owner and permissions") from None
        self._tighten()
        try:
            data = json.loads(text)
            entries = data["secrets"]
            if not isinstance(entries, dict) or not all(isinstance(e, dict) and isinstance(e.get("value"), str)
                                                        for e in entries.values()):
                raise ValueError("unexpected layout")
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.path}: not a valid secret store ({type(exc).__name__})",
                              hint="move the file away and set the secrets again with `stigmer secret set NAME`"
                              ) from None
        return entries

    def _write(self, entries: Mapping[str, dict[str, Any]]) -> None:
        write_atomic(self.path, json.dumps({"version": VERSION, "secrets": dict(entries)}, indent=1) + "\n", 0o600,
                     fsync=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def names(self) -> dict[str, float]:
        """Each entry's name and when it was set (seconds since the epoch); never a value."""
        return {name: float(entry.get("set_at") or 0) for name, entry in sorted(self._read().items())}

    def values(self) -> dict[str, str]:
        """Every entry's value: for the runner, which hands the referenced ones to an MCP server."""
        return {name: entry["value"] for name, entry in self._read().items()}

    def set(self, name: str, value: str) -> bool:
        """Store ``value`` under ``name``; True when the entry is new."""
        check_name(name)
        if not value:
            raise UserError(f"no value given for {name}: nothing was stored",
                            hint="type the value at the prompt, or pipe it: `... | stigmer secret set NAME -`")
        if "\x00" in value:
            raise UserError(f"the value for {name} holds a NUL byte, which no environment variable can carry")
        with self._locked():
            entries = self._read()
            created = name not in entries
            entries[name] = {"value": value, "set_at": time.time()}
            self._write(entries)
        return created

    def delete(self, name: str) -> bool:
        """Remove ``name``; False when there was no such entry."""
        with self._locked():
            entries = self._read()
            if entries.pop(name, None) is None:
                return False
            self._write(entries)
        return True
