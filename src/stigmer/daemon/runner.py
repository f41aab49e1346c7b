"""Runner workers: N ``stigmer runner`` processes, the same command a cloud deployment runs.

There is one way to start a runner (``stigmer runner``) so the daemon's runners and a
hand-started one cannot drift apart. The configuration reaches it only through the
environment (``cfg.to_env()``, which carries the provider keys) plus the daemon's URL and the
runner token (role ``runner``: it can post events and nothing else; never the admin token);
argv carries no setting and no secret. A runner counts as ready when
Temporal lists it (by its pid) among the pollers of the task queue: the real thing, not a timer.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from ..config import envvars as ev
from .service import Service

if TYPE_CHECKING:
    from ..config import Config
    from .temporal import TemporalClientCache

log = logging.getLogger("stigmer.daemon.runner")

RUNNER_ARGV = [sys.executable, "-m", "stigmer", "runner"]


def runner_env(cfg: Config, server_url: str, token: str, name: str) -> dict[str, str]:
    """The full environment of a runner child: ours, the resolved config, where to post events and the runner token."""
    from ..config.resolve import origins_json

    env = dict(os.environ)
    env.update(cfg.to_env())
    env[ev.CONFIG_ORIGINS] = origins_json(cfg)  # so the runner says why it uses its model, not just "env"
    env[ev.SERVER_URL] = server_url
    env[ev.SERVER_TOKEN] = token
    env[ev.COMPONENT] = name
    env[ev.MANAGED_RUNNER] = "1"  # the daemon stores this runner's event spool at its start (worker.spool)
    return env


class RunnerService(Service):
    """One ``stigmer runner`` process, named ``runner-<index>``."""

    ready_timeout_s = 60.0
    stop_timeout_s = 10.0
    # No ``needs``: a runner retries Temporal itself (worker.main.CONNECT_PATIENCE_S), so its ~1 s of imports
    # overlap the dev server's boot instead of following it. Readiness still waits for its poller in Temporal.

    def __init__(self, index: int, cfg: Config, clients: TemporalClientCache, server_url: str, token: str) -> None:
        super().__init__()
        self.name = f"runner-{index}"
        self.cfg = cfg
        self.clients = clients
        self.server_url = server_url
        self.token = token
        self.task_queue = str(cfg.value("runner.task_queue"))
        self.address = f"task queue {self.task_queue}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        return list(RUNNER_ARGV), runner_env(self.cfg, self.server_url, self.token, self.name)

    async def ready(self) -> bool:
        """True when Temporal reports a poller on our task queue whose identity is this process."""
        pid = self.pid
        if pid is None:
            return False
        try:
            identities = await poller_identities(self.clients, self.task_queue, self.cfg.temporal.namespace)
        except Exception as exc:  # Temporal briefly unreachable: not ready yet
            log.debug("%s: describe task queue: %s", self.name, exc)
            return False
        return any(identity.split("@", 1)[0] == str(pid) for identity in identities)


async def poller_identities(clients: TemporalClientCache, task_queue: str, namespace: str) -> list[str]:
    """Identities (``pid@host``) of the workers polling ``task_queue`` for workflow tasks."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    client = await clients.get()
    request = DescribeTaskQueueRequest(namespace=namespace, task_queue=TaskQueue(name=task_queue),
                                       task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
    response = await client.workflow_service.describe_task_queue(request)
    return [poller.identity for poller in response.pollers]
