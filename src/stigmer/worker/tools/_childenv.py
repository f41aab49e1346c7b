"""The one environment stigmer's tool children start from: an MCP stdio server and a ``run_shell`` command.

Only the basics a program needs to run (the MCP SDK's own list: HOME, LOGNAME, PATH, SHELL, TERM,
USER) are taken from the runner; nothing else of the runner's environment, where stigmer's keys
and tokens live, reaches a child. Each caller adds what it grants on top (an MCP server its
resolved ``env``; the shell its workspace as HOME).
"""

from __future__ import annotations

import os

from ...config.grants import BASICS

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def scrubbed_env(**granted: str) -> dict[str, str]:
    """The basics from the runner's environment (no exported shell functions), then ``granted`` over them."""
    env = {name: os.environ[name] for name in BASICS if name in os.environ and not os.environ[name].startswith("()")}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(granted)
    return env
