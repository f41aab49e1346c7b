"""Run the real ``stigmer`` command as a person would: a subprocess, its exit code and output."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


def stigmer(*args: str, env: Mapping[str, str] | None = None, input: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``stigmer ARGS`` with the test's environment (plus ``env``), captured."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "stigmer", *args], env=full_env, input=input, text=True,
                          capture_output=True, timeout=timeout, check=False)
