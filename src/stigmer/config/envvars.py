"""Every environment variable stigmer reads or sets, defined once.

Upstream systems like ours lost executions when the name a parent set drifted from the name
a child read. Both sides import the names from here, and ``Config.to_env()`` writes exactly
these names for child processes (runners, servers).
"""

from __future__ import annotations

HOME = "STIGMER_HOME"

# LLM: stigmer's own names, then the short forms, then providers' own variables.
LLM_PROVIDER = "STIGMER_LLM_PROVIDER"
LLM_MODEL = "STIGMER_LLM_MODEL"
LLM_BASE_URL = "STIGMER_LLM_BASE_URL"
LLM_API_KEY = "STIGMER_LLM_API_KEY"
LLM_MAX_TOKENS = "STIGMER_LLM_MAX_TOKENS"
LLM_TEMPERATURE = "STIGMER_LLM_TEMPERATURE"
LLM_NUM_CTX = "STIGMER_LLM_NUM_CTX"
LLM_CONTEXT_TOKENS = "STIGMER_LLM_CONTEXT_TOKENS"
LLM_CONTEXT_STRATEGY = "STIGMER_LLM_CONTEXT_STRATEGY"
LLM_TOOL_CALLS = "STIGMER_LLM_TOOL_CALLS"
SHORT_LLM_PROVIDER = "LLM_PROVIDER"
SHORT_LLM_MODEL = "LLM_MODEL"
ANTHROPIC_API_KEY = "ANTHROPIC_API_KEY"
OPENAI_API_KEY = "OPENAI_API_KEY"
OLLAMA_HOST = "OLLAMA_HOST"
OLLAMA_BASE_URL = "OLLAMA_BASE_URL"
# Runner deployments of the upstream system: MODE=cloud defaults the provider to Anthropic.
MODE = "MODE"

# Temporal: its own names (also read by temporalio.envconfig), and the older service address.
TEMPORAL_ADDRESS = "TEMPORAL_ADDRESS"
TEMPORAL_SERVICE_ADDRESS = "TEMPORAL_SERVICE_ADDRESS"
TEMPORAL_NAMESPACE = "TEMPORAL_NAMESPACE"
TEMPORAL_API_KEY = "TEMPORAL_API_KEY"
TEMPORAL_TLS = "TEMPORAL_TLS"
TEMPORAL_TLS_CLIENT_CERT_PATH = "TEMPORAL_TLS_CLIENT_CERT_PATH"
TEMPORAL_TLS_CLIENT_KEY_PATH = "TEMPORAL_TLS_CLIENT_KEY_PATH"
TEMPORAL_TLS_SERVER_CA_CERT_PATH = "TEMPORAL_TLS_SERVER_CA_CERT_PATH"
TEMPORAL_TLS_SERVER_NAME = "TEMPORAL_TLS_SERVER_NAME"
STIGMER_TEMPORAL_MANAGED = "STIGMER_TEMPORAL_MANAGED"
STIGMER_TEMPORAL_PORT = "STIGMER_TEMPORAL_PORT"
STIGMER_TEMPORAL_UI_PORT = "STIGMER_TEMPORAL_UI_PORT"

# Runner and server. The upstream runner's own names for the task queue and its concurrency are read too.
RUNNER_TASK_QUEUE = "STIGMER_RUNNER_TASK_QUEUE"
UPSTREAM_TASK_QUEUE = "STIGMER_TASK_QUEUE"
UPSTREAM_RUNNER_TASK_QUEUE = "TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE"
RUNNER_WORKERS = "STIGMER_RUNNER_WORKERS"
RUNNER_MAX_CONCURRENT = "STIGMER_RUNNER_MAX_CONCURRENT"
RUNNER_CACHED_WORKFLOWS = "STIGMER_RUNNER_CACHED_WORKFLOWS"
RUNNER_METRICS_ADDRESS = "STIGMER_RUNNER_METRICS_ADDRESS"
UPSTREAM_MAX_CONCURRENCY = "TEMPORAL_MAX_CONCURRENCY"
SERVER_HOST = "STIGMER_SERVER_HOST"
SERVER_PORT = "STIGMER_SERVER_PORT"
# `stigmer server` (team mode): the shared database, TLS, and the reverse proxies whose forwarded headers count.
DATABASE_URL = "STIGMER_DATABASE_URL"
SERVER_TLS_CERT = "STIGMER_SERVER_TLS_CERT"
SERVER_TLS_KEY = "STIGMER_SERVER_TLS_KEY"
SERVER_BEHIND_PROXY = "STIGMER_SERVER_BEHIND_PROXY"
SERVER_TRUSTED_PROXIES = "STIGMER_SERVER_TRUSTED_PROXIES"

# Limits on what a client or a model controls, retention, and what MCP servers may be handed.
LIMIT_REQUEST_BYTES = "STIGMER_LIMIT_REQUEST_BYTES"
LIMIT_MESSAGE_CHARS = "STIGMER_LIMIT_MESSAGE_CHARS"
LIMIT_WRITE_FILE_BYTES = "STIGMER_LIMIT_WRITE_FILE_BYTES"
LIMIT_TOOL_OUTPUT_CHARS = "STIGMER_LIMIT_TOOL_OUTPUT_CHARS"
LIMIT_SUBSCRIBER_QUEUE = "STIGMER_LIMIT_SUBSCRIBER_QUEUE"
RETENTION_EXECUTIONS = "STIGMER_RETENTION_EXECUTIONS"
MCP_ALLOW_ENV = "STIGMER_MCP_ALLOW_ENV"

# Where large payloads live (the claim-check blob store), and the S3-compatible endpoint. AWS_ENDPOINT_URL is
# the AWS SDKs' own name; the credentials are only ever the AWS SDK's own (its variables and credential chain).
BLOBS_URL = "STIGMER_BLOBS_URL"
BLOBS_THRESHOLD = "STIGMER_BLOBS_THRESHOLD"
BLOBS_S3_ENDPOINT = "STIGMER_BLOBS_S3_ENDPOINT"
AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"

# Set by the daemon for its runner children so their event sink posts back to it.
SERVER_URL = "STIGMER_SERVER_URL"
SERVER_TOKEN = "STIGMER_SERVER_TOKEN"
# The CLI talking to a stigmer server elsewhere (stigmer --server URL; the token never on the command line).
SERVER = "STIGMER_SERVER"
TOKEN = "STIGMER_TOKEN"
TOKEN_FILE = "STIGMER_TOKEN_FILE"
# A CA certificate file the CLI trusts for an https:// --server (a private CA, a self-signed certificate).
CA_FILE = "STIGMER_CA_FILE"
# Set by the daemon for children: which component a process is (for its log lines).
COMPONENT = "STIGMER_COMPONENT"
# Set to 1 by the daemon for its runner children: their event spool stays in data/event-spool, which the daemon
# stores at its start, and they do not re-send it themselves (worker.spool).
MANAGED_RUNNER = "STIGMER_MANAGED_RUNNER"

# Provider plugins: comma-separated ``name=module`` pairs. The module has ``register(registry)``
# and is imported by the provider registry; config accepts ``name`` as a provider.
PLUGINS = "STIGMER_PLUGINS"

# Set by `stigmer local start` for the daemon it launches (not settings, so not in KEYS):
# --no-pull, and the source/origin of each setting as the CLI resolved it (JSON, no values),
# so the daemon's status explains the choice ("detected: Anthropic key found") rather than
# "env STIGMER_LLM_PROVIDER", which is only how the value travelled.
DAEMON_NO_PULL = "STIGMER_NO_PULL"
CONFIG_ORIGINS = "STIGMER_CONFIG_ORIGINS"

# Stigmer's own secrets: never handed to an MCP server, a shell child or a secret-store entry. The names of
# every secret setting in KEYS (their variables) are added by is_stigmer_secret(), so a future secret key is
# covered without editing this list. The TLS client key path is here because it says where stigmer's private
# key lives; the certificate and CA paths are public material and are not.
OWN_SECRETS = frozenset({ANTHROPIC_API_KEY, OPENAI_API_KEY, LLM_API_KEY, SERVER_TOKEN, TOKEN, TEMPORAL_API_KEY,
                         TEMPORAL_TLS_CLIENT_KEY_PATH})
# A STIGMER_* variable with one of these words in its name is treated as a secret too.
_SECRET_WORDS = frozenset({"TOKEN", "KEY", "SECRET", "PASSWORD", "APIKEY", "CREDENTIALS"})


def stigmer_secrets() -> frozenset[str]:
    """Every variable name that holds one of stigmer's own secrets: OWN_SECRETS plus each secret key's variables."""
    from .keys import KEYS  # keys.py imports this module: import it when asked, not at import time

    return OWN_SECRETS | {name for key in KEYS.values() if key.secret for name in key.env}


def is_stigmer_secret(name: str) -> bool:
    """True when ``name`` is one of stigmer's own secrets (``ANTHROPIC_API_KEY``, ``STIGMER_SERVER_TOKEN``, ...).

    Case-insensitive, because a reference's name is compared with variables people type.
    """
    upper = name.upper()
    if upper in stigmer_secrets():
        return True
    return upper.startswith("STIGMER_") and not _SECRET_WORDS.isdisjoint(upper.split("_")[1:])
