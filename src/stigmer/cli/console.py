"""``stigmer console``: open the web console in a browser with a one-time login link.

The CLI asks the API (``POST /v1/console/login-links``, with its token) for a code that works once, for 60 seconds;
the link carries the code, never the token. The browser trades it for a console session cookie and lands on the
console, so the address left in its history is spent. A viewer token opens a read-only console.
"""

from __future__ import annotations

import json
import time

import click


@click.command()
@click.option("--no-open", is_flag=True, help="Print the link instead of opening a browser.")
@click.option("--json", "as_json", is_flag=True, help="Print {url, role, expires_at} as JSON (for scripts).")
def console(no_open: bool, as_json: bool) -> None:
    """Open the web console (status, agents, executions live, sessions, approvals).

    \b
    Examples:
      stigmer console
      stigmer console --no-open          # print the link: open it within 60 s, once
      stigmer --server https://stigmer.example.com --token-file viewer.token console
    """
    from ._client import Client

    with Client.connect() as client:
        link = client.post("/v1/console/login-links", {})
        url = client.base_url + link["path"]
    if as_json:
        click.echo(json.dumps({"url": url, "role": link["role"], "expires_at": link["expires_at"]}, indent=2))
        return
    seconds = max(0, round(link["expires_at"] - time.time()))
    if not no_open:
        import webbrowser

        if webbrowser.open(url):
            click.echo(f"opened the {link['role']} console in your browser", err=True)
            return
        click.echo("no browser could be opened here: open this link yourself", err=True)
    click.echo(url)
    click.echo(f"the link works once, within {seconds} s (run `stigmer console` again for a new one)", err=True)
