"""``stigmer run AGENT "message"``: start an execution and stream it live.

The model the runner resolved is shown first, with the source that won (``--model``, the
agent's ``spec.model``, or the runner's own configuration). Tokens are printed as they come,
each tool call with its arguments and a short result, then the final answer, the steps and
the elapsed time. ``--json`` prints JSON Lines instead (one
event per line, the last one ``completed`` with ``output`` or ``failed`` with ``error``). The exit
code is 0 only when the execution completed. Ctrl-C asks whether to cancel or detach.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from ..errors import DaemonNotRunning, RuntimeFailure, UserError
from ._decide import announce, decided_line, how_to_decide, prompt_and_decide, usage_text

if TYPE_CHECKING:
    from ._client import Client

SHORT = 160


def short(value: Any, limit: int = SHORT) -> str:
    """One line, at most ``limit`` characters: how tool arguments and results are shown."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Renderer:
    """Turns events into what a person reads: streamed text, tool lines, the final summary."""

    def __init__(self, out: IO[str] | None = None, err: IO[str] | None = None, *, live: bool = True) -> None:
        from ._term import Spinner

        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.streamed = False
        self.at_line_start = True
        self.steps_with_tokens: set[Any] = set()
        # While nothing streams (the model thinks, a tool runs) a spinner on stderr says what is awaited;
        # only at a terminal, and always stopped before anything else is written or asked.
        self.spinner = Spinner(self.err)
        self.spinner.tty = self.spinner.tty and live  # a replay of past events has nothing to wait for

    def waiting(self, kind: str, data: dict[str, Any]) -> None:
        """After an event that leaves the run waiting, name the wait (at a terminal, at the start of a line)."""
        if not self.spinner.tty or not self.at_line_start:
            return
        if kind == "tool_started" or (kind == "approval_decided" and data.get("decision") == "approved"):
            self.spinner.update(f"running {data.get('name') or data.get('tool') or 'the tool'}")
        elif kind in ("model_resolved", "step_started", "tool_finished"):
            self.spinner.update("waiting for the model")

    def pause(self) -> None:
        """Stop the spinner (before output, a question, Ctrl-C's prompt or the end)."""
        self.spinner.done()

    def _line(self, text: str, *, fg: str | None = None) -> None:
        if not self.at_line_start:
            self.out.write("\n")
        click.secho(text, file=self.out, fg=fg)
        self.at_line_start = True

    def show(self, event: dict[str, Any], started: float) -> None:
        kind, data = event["type"], event.get("data") or {}
        self.pause()
        self._show(kind, data, started)
        self.waiting(kind, data)

    def _show(self, kind: str, data: dict[str, Any], started: float) -> None:
        if kind == "token":
            text = str(data.get("text", data.get("token", "")))
            self.out.write(text)
            self.out.flush()
            if text:
                self.streamed = True
                self.steps_with_tokens.add(data.get("step"))
                self.at_line_start = text.endswith("\n")
        elif kind == "message":
            # a model that does not stream: its text arrives whole, once
            if data.get("content") and data.get("step") not in self.steps_with_tokens:
                self._line(str(data["content"]))
                self.streamed = True
        elif kind == "model_resolved":
            click.secho(model_line(data), file=self.err, fg="bright_black")
        elif kind == "step_started" and int(data.get("attempt") or 1) > 1:
            self._line(f"↻ step {data.get('step')}: retrying (attempt {data.get('attempt')})", fg="yellow")
        elif kind == "tool_started":
            self._line(f"→ {data.get('name', '?')}({short(data.get('args', {}), 120)})", fg="cyan")
        elif kind == "tool_finished":
            mark, fg = ("✗", "red") if data.get("is_error") else ("←", "bright_black")
            self._line(f"  {mark} {short(data.get('result', data.get('content', '')))}", fg=fg)
        elif kind == "truncated":
            self._truncated(data)
        elif kind == "approval_requested":
            self.end_line()
            announce(data, self.err)
        elif kind == "approval_decided":
            self._line(f"  {decided_line(data)}", fg="green" if data.get("decision") == "approved" else "yellow")
        elif kind == "completed":
            self._completed(data, started)
        elif kind == "failed":
            self._failed(data)

    def end_line(self) -> None:
        """End the answer's line, so what goes to stderr does not land in the middle of it."""
        self.pause()
        if not self.at_line_start:
            self.out.write("\n")
            self.out.flush()
            self.at_line_start = True

    def _truncated(self, data: dict[str, Any]) -> None:
        """A reply cut at the token limit: said on stderr, so an answer redirected to a file stays clean."""
        self.end_line()
        limit = f" (max_tokens {data['max_tokens']})" if data.get("max_tokens") else ""
        click.secho(f"! the reply was cut at the token limit{limit}: raise llm.max_tokens (`stigmer config set "
                    "llm.max_tokens N`, then `stigmer local restart`) or use --model with a larger output limit",
                    file=self.err, fg="yellow")

    def _completed(self, data: dict[str, Any], started: float) -> None:
        if not self.streamed and data.get("output"):
            self._line(str(data["output"]))
        elif not self.at_line_start:
            self._line("")
        steps = data.get("steps")
        cut = " (the answer was cut at the token limit)" if data.get("truncated") else ""
        click.secho(f"✓ completed{f' in {steps} steps' if steps else ''}, {time.monotonic() - started:.1f}s{cut}",
                    file=self.err, fg="green")
        self._usage(data)

    def _failed(self, data: dict[str, Any]) -> None:
        if not self.at_line_start:
            self._line("")
        if data.get("cancelled"):
            click.secho("✗ cancelled", file=self.err, fg="yellow")
        else:
            click.secho(f"✗ failed: {data.get('error', 'unknown error')}", file=self.err, fg="red")
        self._usage(data)

    def _usage(self, data: dict[str, Any]) -> None:
        """The execution's tokens and cost (and the session's, in a session), from the terminal event."""
        text = usage_text(data.get("usage"))
        if text:
            session = usage_text(data.get("session_usage"))
            click.secho(f"usage: {text}" + (f"; session: {session}" if session else ""), file=self.err,
                        fg="bright_black")


def model_line(data: dict[str, Any]) -> str:
    """``model ollama:llama3.2 (runner: env STIGMER_LLM_MODEL)``: the model the runner pinned, and which source won."""
    model = data.get("model") or {}
    return f"model {model.get('provider')}:{model.get('model')} ({data.get('source')}: {data.get('origin')})"


def outcome(event: dict[str, Any]) -> int | None:
    """The exit code an event ends the run with (0 completed, 1 failed/cancelled), or None if it does not end it."""
    if event["type"] == "completed":
        return 0
    if event["type"] in ("failed", "cancelled"):
        return 1
    return None


def follow(client: Client, execution_id: str, *, as_json: bool, after: int = 0, prompt: bool = False,
           renderer: Renderer | None = None) -> int:
    """Print the execution's events until its last one; return the exit code it implies.

    An ``approval_requested`` is asked at the terminal when ``prompt`` (a person is there, no ``--json``);
    otherwise it is printed with the commands that decide it, and the stream waits for a decision made elsewhere.
    """
    renderer = renderer or Renderer()
    try:
        return _follow(client, execution_id, as_json=as_json, after=after, prompt=prompt, renderer=renderer)
    finally:  # Ctrl-C included: its question must not share the line with a spinner
        renderer.pause()


def _follow(client: Client, execution_id: str, *, as_json: bool, after: int, prompt: bool,
            renderer: Renderer) -> int:
    started, last = time.monotonic(), after
    for attempt in range(2):  # one reconnect when the stream drops before the end
        try:
            for event in client.events(execution_id, after=last):
                last = event.get("seq", last)
                if as_json:
                    click.echo(json.dumps(event, ensure_ascii=False, default=str))
                    if event["type"] == "approval_requested":
                        click.echo(how_to_decide(str(event["data"].get("approval_id"))), err=True)
                elif prompt and event["type"] == "approval_requested":
                    renderer.end_line()
                    prompt_and_decide(client, event.get("data") or {}, renderer.err)
                else:
                    renderer.show(event, started)
                code = outcome(event)
                if code is not None:
                    return code
        except RuntimeFailure:
            if attempt:
                raise
    raise RuntimeFailure(f"the event stream of execution {execution_id} ended before the execution did",
                         hint=f"follow it with `stigmer execution logs {execution_id} -f`")


def _ask_cancel_or_detach(client: Client, execution_id: str) -> int:
    """Ctrl-C during a run: cancel it, or leave it running in the background."""
    click.echo("", err=True)
    answer = "d"
    if sys.stdin.isatty():
        try:
            answer = click.prompt("cancel the execution or detach from it?", type=click.Choice(["cancel", "detach"]),
                                  default="detach", err=True)[0]
        except click.exceptions.Abort:
            answer = "c"
    if answer == "c":
        client.post(f"/v1/executions/{execution_id}/cancel")
        click.echo(f"cancelling execution {execution_id}", err=True)
    else:
        click.echo(f"detached; follow it with `stigmer execution logs {execution_id} -f`", err=True)
    return 130


def start_execution(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    """POST the execution with an ``Idempotency-Key``; when no answer came, once more with the same key.

    A start whose answer was lost (a timeout, a dropped connection) may have happened: the retry
    gets that same execution back instead of starting a second one.
    """
    import uuid

    from ._client import NoAnswer

    headers = {"Idempotency-Key": uuid.uuid4().hex}
    try:
        started: dict[str, Any] = client.post("/v1/executions", body, headers=headers)
    except (NoAnswer, DaemonNotRunning):
        started = client.post("/v1/executions", body, headers=headers)
    return started


def _start_daemon() -> None:
    """The daemon is down: start it with ``stigmer local start`` (and say so)."""
    click.echo("the stigmer daemon is not running: starting it with `stigmer local start`…", err=True)
    done = subprocess.run([sys.executable, "-m", "stigmer", "local", "start"], check=False)
    if done.returncode != 0:
        raise RuntimeFailure("`stigmer local start` failed (see above)", hint="fix what it says, then run again")


def _connect(auto_start: bool) -> Client:
    from ._client import Client

    try:
        return Client.connect()
    except DaemonNotRunning:
        if not auto_start:
            raise
    _start_daemon()
    return Client.connect()


def _workspace_dir(given: Path) -> Path:
    """``--workspace`` (relative to the current directory) checked by the daemon's rules, then created.

    Refused before anything is sent or created: ``/``, the home directory, the stigmer home, a system directory.
    """
    import os

    from ..resources.workspace import default_homes, resolve_workspace

    text = str(given)
    if not text.startswith("~"):
        text = os.path.abspath(text)
    stigmer_home, user_home = default_homes()
    path = resolve_workspace(text, stigmer_home=stigmer_home, user_home=user_home, field="--workspace",
                             must_exist=False)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--workspace: cannot create {str(given)!r}: {exc.strerror or exc}",
                        hint="check the directory's parent and its permissions, or pick another directory") from None
    return path


@click.command()
@click.argument("agent")
@click.argument("message")
@click.option("--model", default=None, help="Model for this run (name, alias or provider:model), over the agent's.")
@click.option("--workspace", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory the agent's workspace tools work in (created if missing; not /, your home, "
                   "the stigmer home or a system directory).")
@click.option("--session", "session", default=None, metavar="NAME",
              help="Make this run a turn of session NAME (an id or a name; a new name creates the session). "
                   "Later runs with the same NAME continue the conversation.")
@click.option("--continue", "continue_", is_flag=True,
              help="Continue the agent's most recent session (its model calls see every earlier turn).")
@click.option("--max-tokens-total", type=click.IntRange(min=1), default=None, metavar="N",
              help="Stop this run cleanly (failed, naming the budget) once its input+output tokens reach N.")
@click.option("--detach", "-d", is_flag=True, help="Start the execution, print its id and return.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON Lines: one event per line.")
@click.option("--no-start", is_flag=True, help="Do not start the daemon when it is down; fail instead.")
def run(agent: str, message: str, model: str | None, workspace: Path | None, session: str | None, continue_: bool,
        max_tokens_total: int | None, detach: bool, as_json: bool, no_start: bool) -> None:
    """Run AGENT on MESSAGE and stream the answer live (exit 0 only when it completes).

    A tool call that needs a person's approval is asked inline at a terminal: [y] approve, [n] reject
    with a reason (the model is told), [a] always allow this tool in this session. Without a terminal,
    or with --json, the run prints the request and waits for `stigmer approval approve|reject ID`.

    \b
    Examples:
      stigmer run hello "Say hello"
      stigmer run files "Write a haiku to haiku.txt" --workspace ./scratch
      stigmer run hello "Hi" --model llama3.2        # another model for this run
      stigmer run hello "Hi" --json | tail -1         # JSON Lines; the last is completed/failed
      stigmer run hello "Hi" --detach                 # print the execution id and return
      stigmer run hello "I am Ada" --session intro    # a conversation: created now...
      stigmer run hello "Who am I?" --session intro   # ...continued here
      stigmer run hello "And now?" --continue         # the agent's most recent session
      stigmer run hello "Hi" --max-tokens-total 2000  # stop cleanly past 2,000 tokens
    """
    if session is not None and continue_:
        raise UserError("--session and --continue were both given",
                        hint="pass --session NAME for that session, or --continue for the agent's most recent one")
    body: dict[str, Any] = {"agent": agent, "message": message, "model": model}
    if session is not None:
        body["session"] = session
    if continue_:
        body["continue"] = True
    if max_tokens_total is not None:
        body["max_tokens_total"] = max_tokens_total
    if workspace is not None:
        body["workspace"] = str(_workspace_dir(workspace))
    with _connect(not no_start) as client:
        execution = start_execution(client, body)
        execution_id = execution["id"]
        if detach:
            click.echo(json.dumps(execution, default=str) if as_json else execution_id)
            return
        try:
            if not as_json:  # the model follows once the runner has resolved it (``model_resolved``)
                turn = f" · session {execution['session_id']} turn {execution.get('turn')}" \
                    if execution.get("session_id") else ""
                click.secho(f"execution {execution_id} · agent {agent}{turn}", err=True, fg="bright_black")
            interactive = not as_json and sys.stdin.isatty() and sys.stderr.isatty()
            code = follow(client, execution_id, as_json=as_json, prompt=interactive)
        except KeyboardInterrupt:
            code = _ask_cancel_or_detach(client, execution_id)
    if code:
        sys.exit(code)
