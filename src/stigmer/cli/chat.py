"""``stigmer chat AGENT``: a conversation at the terminal, one session, one turn per line.

At a terminal the line is read with prompt-toolkit (history with the arrow keys, kept in
``$STIGMER_HOME/chat_history``, 0600); tokens stream as they come, tool calls show inline and approvals
are asked inline. Ctrl-C during a turn interrupts that turn (the session stays); Ctrl-D or ``/exit`` ends.
Without a terminal each line of stdin is one turn (or a slash command), so a conversation can be scripted.
prompt-toolkit is imported only here, when a person chats, so ``stigmer --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import StigmerError, UserError
from ._decide import usage_text

if TYPE_CHECKING:
    from ._client import Client

HELP = """\
/new     start a new session with the same agent (the conversation so far stays in `stigmer session list`)
/usage   tokens and cost of this session so far
/help    this list
/exit    end the chat (Ctrl-D too); Ctrl-C during a turn interrupts only that turn"""


class Chat:
    """One conversation: the session it talks to and how a turn is sent, streamed and interrupted."""

    def __init__(self, client: Client, agent: str, *, name: str | None, model: str | None, interactive: bool) -> None:
        self.client, self.agent, self.model, self.interactive = client, agent, model, interactive
        self.session: dict[str, Any] = self._open(name)
        self.turn_model = model if self.session.get("reused") else None  # an explicit change for a reused session

    def _open(self, name: str | None) -> dict[str, Any]:
        """The session called ``name`` (created when new; it must be this agent's), or a new unnamed one."""
        from ._client import ApiRefused

        if name is not None:
            try:
                found: dict[str, Any] = self.client.get(f"/v1/sessions/{name}", turns=0)
            except ApiRefused as exc:
                if exc.status != 404:
                    raise
            else:
                if found.get("agent") != self.agent:
                    raise UserError(f"--session {name}: that session is agent {found.get('agent')!r}'s, not "
                                    f"{self.agent!r}'s", hint=f"chat with `stigmer chat {found.get('agent')} --session "
                                                              f"{name}`, or pick another name")
                click.secho(f"session {found['id']} ({name}) · agent {self.agent} · continued", err=True,
                            fg="bright_black")
                return {**found, "reused": True}
        body = {"agent": self.agent, "name": name, "model": self.model}
        created: dict[str, Any] = self.client.post("/v1/sessions", {k: v for k, v in body.items() if v is not None})
        label = f" ({name})" if name else ""
        click.secho(f"session {created['id']}{label} · agent {self.agent} · /help for commands", err=True,
                    fg="bright_black")
        return created

    def handle(self, line: str) -> bool:
        """One line typed: a slash command or a turn. False when the chat should end."""
        text = line.strip()
        if not text:
            return True
        if text.startswith("/"):
            return self._command(text)
        self.send(text)
        return True

    def _command(self, text: str) -> bool:
        command = text.split()[0].lower()
        if command in ("/exit", "/quit"):
            return False
        if command == "/new":
            self.session, self.turn_model = self._open(None), None
        elif command == "/usage":
            self.show_usage()
        elif command == "/help":
            click.echo(HELP)
        else:
            click.secho(f"unknown command {command}: /help lists them", err=True, fg="yellow")
        return True

    def show_usage(self) -> None:
        found = self.client.get(f"/v1/sessions/{self.session['id']}")
        turns = found.get("turns")
        count = int(found.get("turn_count", len(turns) if isinstance(turns, list) else turns or 0))
        click.echo(f"session {found['id']}: {count} turn(s) · {usage_text(found.get('usage')) or 'no usage yet'}")

    def send(self, message: str) -> None:
        """Send one turn and stream it to its end; a refused turn (a full queue) is said, and the chat goes on."""
        from .run import follow

        body: dict[str, Any] = {"message": message}
        if self.turn_model:
            body["model"] = self.turn_model
        try:
            execution = self.client.post(f"/v1/sessions/{self.session['id']}/messages", body,
                                         headers={"Idempotency-Key": uuid.uuid4().hex})
        except UserError as exc:
            click.secho(f"the turn was not sent: {exc}", err=True, fg="red")
            return
        self.turn_model = None
        if execution.get("queued"):
            click.secho(f"queued behind {execution['queued']} turn(s)", err=True, fg="bright_black")
        try:
            follow(self.client, execution["id"], as_json=False, prompt=self.interactive)
        except KeyboardInterrupt:
            self._interrupt(execution["id"])
        except StigmerError as exc:
            click.secho(f"error: {exc}", err=True, fg="red")

    def _interrupt(self, execution_id: str) -> None:
        """Ctrl-C in a turn: cancel that turn only (the daemon sends the session ``cancel_turn``)."""
        click.echo("", err=True)
        try:
            self.client.post(f"/v1/executions/{execution_id}/cancel")
        except StigmerError as exc:
            click.secho(f"could not interrupt the turn: {exc}", err=True, fg="yellow")
            return
        click.secho("turn interrupted; the session goes on", err=True, fg="yellow")


def _history_file() -> Path:
    """``$STIGMER_HOME/chat_history``, created 0600: what was typed may be private."""
    from ._client import home_dir

    home = home_dir()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = home / "chat_history"
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600))
    os.chmod(path, 0o600)
    return path


def _typed_lines(agent: str) -> Iterator[str]:
    """Lines typed at the terminal (prompt-toolkit); Ctrl-C at the prompt clears the line, Ctrl-D ends."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    prompt: PromptSession[str] = PromptSession(history=FileHistory(str(_history_file())))
    while True:
        try:
            yield prompt.prompt(f"{agent}> ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            return


def _piped_lines() -> Iterator[str]:
    for line in sys.stdin:
        yield line.rstrip("\n")


@click.command()
@click.argument("agent")
@click.option("--session", "name", default=None, metavar="NAME",
              help="Talk in session NAME: continued when it exists, created when it does not.")
@click.option("--model", default=None, help="Model for the session (name, alias or provider:model); for an "
                                             "existing session, the model from the next turn on (said in its record).")
def chat(agent: str, name: str | None, model: str | None) -> None:
    """Talk with AGENT: each line is a turn of one session; its model calls see every earlier turn.

    \b
    At a terminal: tokens stream as they come, tool calls and approvals show inline,
    arrow keys recall what you typed, Ctrl-C interrupts the current turn, Ctrl-D ends.
    Slash commands: /new, /usage, /help, /exit.
    Without a terminal, each line of stdin is one turn (or a slash command).

    \b
    Examples:
      stigmer chat hello
      stigmer chat hello --session intro       # come back to it later by name
      printf 'Hi\\n/usage\\n' | stigmer chat hello
    """
    from .run import _connect

    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    with _connect(True) as client:
        conversation = Chat(client, agent, name=name, model=model, interactive=interactive)
        for line in (_typed_lines(agent) if interactive else _piped_lines()):
            if not conversation.handle(line):
                break
    if interactive:
        click.secho("bye", err=True, fg="bright_black")
