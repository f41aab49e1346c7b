"""``stigmer llm``: what a model name resolves to, and the local models Ollama has.

These commands talk to the providers directly (Ollama's API, the embedded server), not to the
daemon: they answer whether the stack runs or not. LangChain is never imported here.
"""

from __future__ import annotations

import json
from typing import Any

import click

from ._options import config_flags, flags_from, load_config

RESOLVE_EPILOG = """\b
Examples:
  stigmer llm resolve sonnet
  stigmer llm resolve ollama:qwen2.5-coder:7b --param temperature=0.5 --param max_tokens=512
  stigmer llm resolve ./models/my-model.gguf --json
  stigmer llm resolve                     # the configured model
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def llm() -> None:
    """Resolve model names, list and pull local models, and check the active LLM."""


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return f"{value:.1f} TB"


def _usd(value: float) -> str:
    return f"${value:.2f}" if round(value, 2) == value else f"${value:g}"


def _price_text(price: dict[str, Any]) -> str:
    source = price["source"]
    if source == "unknown":
        return f"unknown: {price['hint']}"
    if source == "local":
        return "0 (a local model: no price per token)"
    where = "config.yaml pricing" if source == "config.yaml" else "stigmer's price table"
    text = (f"{_usd(price['input'])} input / {_usd(price['output'])} output / {_usd(price['cached'])} cached input "
            f"per million tokens ({where}: {price['match']})")
    tier = price.get("above_input_tokens")
    if tier:
        text += f"; prompts over {tier['tokens']:,} tokens: {_usd(tier['input'])} / {_usd(tier['output'])}"
    return text


def tool_calls_of(spec: Any, cfg: Any) -> dict[str, str]:
    """How ``spec``'s model would call an agent's tools, and why (asks its server; says so when it cannot)."""
    from ..errors import StigmerError
    from ..providers.registry import get_provider, tool_mode

    try:
        return tool_mode(spec, cfg, get_provider(spec.provider).capabilities(spec, cfg)).to_dict()
    except StigmerError as exc:
        return {"mode": "unknown", "why": f"could not ask the provider: {exc.message}"}


def _print_spec(name: str | None, spec: Any, price: dict[str, Any]) -> None:
    params = " ".join(f"{k}={v}" for k, v in spec.params.items()) or "(none)"
    click.echo(f"{name or '(configured model)'} -> {spec.provider}:{spec.model}")
    click.echo(f"  provider  {spec.provider}")
    click.echo(f"  model     {spec.model}")
    base_url = spec.base_url or "(the provider's public API)"
    click.echo(f"  base URL  {base_url}")
    click.echo(f"  params    {params}")
    click.echo(f"  why       {spec.reason}")
    click.echo(f"  price     {_price_text(price)}")


@llm.command(epilog=RESOLVE_EPILOG)
@click.argument("name", required=False)
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A common parameter: max_tokens, temperature, top_p, stop (comma-separated) or num_ctx. Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the resolved ModelSpec as a JSON object.")
@config_flags
def resolve(name: str | None, params: tuple[str, ...], as_json: bool, **kwargs: Any) -> None:
    """Show what NAME resolves to: provider, full model id, base URL, native parameters, why, its price, and how it
    calls tools.

    The price (USD per million tokens) is what usage costs are computed with; its source is
    stigmer's table, `pricing:` in config.yaml, local (free), or unknown. Tool calls are native, emulated
    (schema-constrained JSON, for models without tool calling) or none; --llm-tool-calls or an agent's
    spec.toolCalls forces one.
    """
    from ..providers._params import parse_pairs
    from ..providers.pricing import describe
    from ..providers.registry import resolve_model

    cfg = load_config(flags_from(kwargs), quiet=as_json)
    spec = resolve_model(cfg, name, parse_pairs(params))
    price = describe(spec, cfg)
    tools = tool_calls_of(spec, cfg)
    if as_json:
        click.echo(json.dumps({**spec.to_dict(), "price": price, "tool_calls": tools}, indent=2))
    else:
        _print_spec(name, spec, price)
        click.echo(f"  tools     {tools['mode']} ({tools['why']})")


def _ollama_url(cfg: Any) -> str:
    from ..providers.registry import get_provider

    return str(get_provider("ollama").base_url(cfg))


@llm.command(name="list",
             epilog="\b\nExamples:\n  stigmer llm list\n  OLLAMA_HOST=gpu-box:11434 stigmer llm list --json")
@click.option("--json", "as_json", is_flag=True, help="Print the models as a JSON list.")
@config_flags
def list_models(as_json: bool, **kwargs: Any) -> None:
    """List the models the Ollama server has, with their size and whether they call tools."""
    from ..providers import ollama_api
    from ..providers.errors import ProviderError

    base_url = _ollama_url(load_config(flags_from(kwargs), quiet=as_json))
    rows: list[dict[str, Any]] = []
    for model in ollama_api.tags(base_url):
        try:
            tools: bool | None = ollama_api.supports_tools(ollama_api.show(base_url, model.name))
        except ProviderError:
            tools = None
        rows.append({"name": model.name, "size": model.size, "tools": tools})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"Ollama at {base_url} has no models yet: pull one with `stigmer llm pull qwen2.5-coder`")
        return
    from ._term import table

    table(["NAME", "SIZE", "TOOLS"],
          [[r["name"], _human_size(r["size"]), {True: "yes", False: "no", None: "?"}[r["tools"]]] for r in rows],
          right=(1,), styles={0: "bold"})


def _ollama_model_name(cfg: Any, name: str) -> str:
    from ..providers.names import BUILTIN_ALIASES

    aliases = {**BUILTIN_ALIASES, **{k.lower(): v for k, v in cfg.aliases.items()}}
    bare = name[len("ollama:"):] if name.lower().startswith("ollama:") else name
    target = aliases.get(bare.lower())
    if target is None:
        return bare
    provider, _, model = target.partition(":")
    if provider != "ollama":
        from ..errors import UserError

        raise UserError(f"{name!r} is a {provider} model: only Ollama models are pulled",
                        hint="pull an Ollama model, e.g. `stigmer llm pull qwen2.5-coder`")
    return model


def _show_pull(progress: Any, event: dict[str, Any]) -> None:
    """One of Ollama's pull events: a layer's bytes go to its bar, any other step is a line of its own."""
    digest, total = event.get("digest"), event.get("total")
    if digest and total:
        progress.update(str(digest), f"pulling {str(digest)[7:19]}", int(event.get("completed") or 0), int(total))
    elif event.get("status"):
        progress.note(str(event["status"]))


@llm.command(epilog="\b\nExamples:\n  stigmer llm pull qwen2.5-coder        # alias for qwen2.5-coder:7b\n"
                    "  stigmer llm pull llama3.2:3b")
@click.argument("model")
@config_flags
def pull(model: str, **kwargs: Any) -> None:
    """Download MODEL into the Ollama server, with a progress bar."""
    from ..providers import ollama_api

    cfg = load_config(flags_from(kwargs))
    name = _ollama_model_name(cfg, model)
    from ._term import Progress

    progress = Progress()
    try:
        for event in ollama_api.pull(_ollama_url(cfg), name):
            _show_pull(progress, event)
    finally:
        progress.close()
    click.echo(f"pulled {name}")


@llm.command(epilog="\b\nExamples:\n  stigmer llm status\n  stigmer llm status --llm-model llama3.2")
@config_flags
def status(**kwargs: Any) -> None:
    """Show the active LLM, why it was chosen, and whether it answers right now."""
    from ..errors import RuntimeFailure
    from ..providers.errors import ProviderError
    from ..providers.pricing import describe
    from ..providers.registry import preflight, resolve_model

    cfg = load_config(flags_from(kwargs))
    spec = resolve_model(cfg)
    _print_spec(None, spec, describe(spec, cfg))
    provider_item = cfg.items.get("llm.provider")
    if provider_item is not None:
        click.echo(f"  chosen    {provider_item.source}: {provider_item.origin}")
    if spec.provider == "llamacpp":
        from ..providers.embedded import note

        click.echo(f"  note      {note(spec.model)}")
    try:
        caps = preflight(spec, cfg, needs_tools=False)
    except ProviderError as exc:
        raise RuntimeFailure(f"the active LLM is not usable: {exc.message}", hint=exc.hint) from None
    from ..providers.registry import tool_mode

    context = f", context {caps.context_length} tokens" if caps.context_length else ""
    mode = tool_mode(spec, cfg, caps)
    click.echo(f"  ready     yes (tools: {mode.mode}{context}; {caps.source})")
    click.echo(f"  tools     {mode.mode}: {mode.why}")
