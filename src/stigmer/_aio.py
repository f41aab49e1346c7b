"""Small asyncio helpers shared by the worker and the daemon (no stigmer imports: any layer may use them)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel a background task and wait until it has finished unwinding (its cancellation is expected)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
