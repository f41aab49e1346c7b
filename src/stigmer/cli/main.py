"""The ``stigmer`` command: a lazy group, so ``--help`` imports no command's dependencies.

Errors become messages here, at the CLI edge: a :class:`~stigmer.errors.StigmerError` prints its
message and hint and exits with its code; nothing prints a traceback at a person.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

import click

from .. import __version__
from ..errors import StigmerError
from ._term import click_color

# command name -> (module, attribute, one-line help). Modules are imported only when run.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "local": ("stigmer.cli.local", "local", "Start, stop and inspect the local stack (Temporal, LLM, runners)."),
    "run": ("stigmer.cli.run", "run", "Run an agent and stream its answer live."),
    "chat": ("stigmer.cli.chat", "chat", "Talk with an agent: a conversation (session), one turn per line."),
    "apply": ("stigmer.cli.resources", "apply", "Create or update agents and MCP servers from YAML."),
    "get": ("stigmer.cli.resources", "get", "List agents, mcpservers or executions."),
    "describe": ("stigmer.cli.resources", "describe", "Show one agent in detail."),
    "delete": ("stigmer.cli.resources", "delete", "Delete an agent or MCP server."),
    "execution": ("stigmer.cli.execution", "execution", "List, inspect, cancel and read the log of executions."),
    "session": ("stigmer.cli.session", "session", "List, inspect and delete sessions (conversations)."),
    "approval": ("stigmer.cli.approval", "approval", "List, approve and reject tool calls waiting for a person."),
    "console": ("stigmer.cli.console", "console", "Open the web console in a browser (a one-time login link)."),
    "usage": ("stigmer.cli.usage", "usage", "Tokens and cost used, summed by agent, model or session."),
    "config": ("stigmer.cli.config", "config", "Show and change settings, and where each value comes from."),
    "llm": ("stigmer.cli.llm", "llm", "Resolve model names, list and pull local models."),
    "token": ("stigmer.cli.token", "token", "Create, list and revoke API tokens (admin, viewer or runner)."),
    "secret": ("stigmer.cli.secret", "secret", "Store values MCP servers may reference (never stigmer's own keys)."),
    "runner": ("stigmer.cli.runner", "runner", "Start a runner worker alone (cloud deployments, scaling out)."),
    "server": ("stigmer.cli.server", "server", "Serve the API alone for a team: shared database, N replicas, TLS."),
    "doctor": ("stigmer.cli.doctor", "doctor", "Check every piece of the stack and say what to fix."),
}


def _available() -> dict[str, tuple[str, str, str]]:
    return {name: spec for name, spec in COMMANDS.items() if importlib.util.find_spec(spec[0]) is not None}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_available())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = _available().get(cmd_name)
        if spec is None:
            return None
        command = getattr(importlib.import_module(spec[0]), spec[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, spec[2]) for name, spec in _available().items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in _available():
            from ..config._suggest import did_you_mean

            raise click.UsageError(f"no such command {name!r}{did_you_mean(name, _available())}", ctx)
        return super().resolve_command(ctx, args)


EPILOG = """\b
Quick start:
  stigmer local start                       # zero config: picks an LLM, starts Temporal and a runner
  stigmer apply -f examples/agents/         # create the example agents
  stigmer run hello "Say hello"             # stream an answer
  stigmer config show                       # every setting and where it came from
"""


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="stigmer")
@click.option("--server", metavar="URL", default=None,
              help="Talk to the stigmer server at URL instead of the local daemon (env STIGMER_SERVER); its token "
                   "comes from STIGMER_TOKEN_FILE or STIGMER_TOKEN, never the command line.")
@click.option("--token-file", metavar="FILE", default=None,
              help="The file holding the token for --server, mode 0600 (env STIGMER_TOKEN_FILE).")
@click.option("--ca-file", metavar="FILE", default=None,
              help="Trust the CA certificate(s) in FILE for an https --server (a private CA or a self-signed "
                   "certificate; env STIGMER_CA_FILE).")
def cli(server: str | None, token_file: str | None, ca_file: str | None) -> None:
    """stigmer: run AI agents durably, locally or in the cloud."""
    # Through the environment: every command's client (cli/_client.py) and anything it starts see the same server.
    if server is not None:
        os.environ["STIGMER_SERVER"] = server
    if token_file is not None:
        os.environ["STIGMER_TOKEN_FILE"] = token_file
    if ca_file is not None:
        os.environ["STIGMER_CA_FILE"] = ca_file


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI and turn stigmer errors into messages and exit codes."""
    before = {name: os.environ.get(name) for name in _REMOTE}
    try:
        return _main(argv)
    finally:  # --server/--token-file last as long as the command (for callers that run several in one process)
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_REMOTE = ("STIGMER_SERVER", "STIGMER_TOKEN_FILE", "STIGMER_CA_FILE")


def _main(argv: list[str] | None) -> Any:
    try:
        # NO_COLOR / FORCE_COLOR reach every click.secho through the context (Rich reads them in _term.console)
        return cli.main(args=argv, prog_name="stigmer", standalone_mode=False, color=click_color())
    except StigmerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a bug: say so plainly; STIGMER_DEBUG=1 shows the traceback
        if os.environ.get("STIGMER_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc}\n  → rerun with STIGMER_DEBUG=1 and report it",
                   err=True)
        sys.exit(70)
