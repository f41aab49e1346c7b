"""Process hardening shared by the long-lived processes that hold stigmer's secrets (daemon, runners).

``make_undumpable()`` sets ``PR_SET_DUMPABLE`` to 0: the kernel then makes ``/proc/PID/environ``
(where the API keys and the daemon's token live), ``mem``, ``fd`` and friends root-owned, so a
process of the same user (a shell command, an MCP server) can no longer read them or attach a
debugger, and no core dump is written. Children are not affected (execve resets the flag). It does
nothing against root, which may read any process. No stigmer imports: any layer may call it.
"""

from __future__ import annotations

import ctypes
import sys

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def make_undumpable() -> bool:
    """Close this process's ``/proc/PID/environ`` and memory to same-user processes; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
