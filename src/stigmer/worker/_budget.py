"""An execution's budget (``spec.budget``, ``stigmer run --max-tokens-total``) and the check against its usage.

Pure functions: workflow code checks after each model call that asks for more work (docs/SESSIONS.md,
"Budgets"). A final answer is never thrown away for a budget: it is already paid for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..providers.usage import total_tokens


@dataclass(frozen=True)
class Budget:
    """The limits of one execution; ``tokens_from`` names where ``max_tokens`` came from (for the message)."""

    max_tokens: int | None = None
    max_cost_usd: float | None = None
    on_exceeded: str = "fail"
    tokens_from: str = "spec.budget.maxTokens"
    step_tokens: int | None = None  # what one more budget's worth adds (``ask`` approved)
    step_cost: float | None = None


@dataclass(frozen=True)
class Overrun:
    """A limit reached: ``limit`` is ``maxTokens`` or ``maxCostUsd``."""

    limit: str
    value: float
    used: float
    message: str

    def data(self) -> dict[str, Any]:
        """``failed.data.budget`` and the ``args`` of a budget approval."""
        return {"limit": self.limit, "value": self.value, "used": self.used}


def budget_of(agent: dict[str, Any], max_tokens_total: int | None) -> Budget:
    """The budget of an execution: the agent's ``spec.budget``, its token limit overridden by the run's."""
    raw = agent.get("budget") or {}
    tokens = raw.get("maxTokens")
    source = "spec.budget.maxTokens"
    if max_tokens_total is not None:
        tokens, source = max_tokens_total, "--max-tokens-total"
    cost = raw.get("maxCostUsd")
    on_exceeded = "ask" if raw.get("onExceeded") == "ask" else "fail"
    return Budget(max_tokens=int(tokens) if tokens is not None else None,
                  max_cost_usd=float(cost) if cost is not None else None, on_exceeded=on_exceeded,
                  tokens_from=source, step_tokens=int(tokens) if tokens is not None else None,
                  step_cost=float(cost) if cost is not None else None)


def overrun(budget: Budget, usage: dict[str, Any]) -> Overrun | None:
    """The first limit ``usage`` has reached, or None. A cost of None (a price unknown) never reaches one."""
    used = total_tokens(usage)
    if budget.max_tokens is not None and used >= budget.max_tokens:
        return Overrun("maxTokens", budget.max_tokens, used,
                       f"budget exceeded: {used} tokens used, the limit is {budget.max_tokens} "
                       f"({budget.tokens_from} {budget.max_tokens})")
    cost = usage.get("cost_usd")
    if budget.max_cost_usd is not None and cost is not None and float(cost) >= budget.max_cost_usd:
        return Overrun("maxCostUsd", budget.max_cost_usd, float(cost),
                       f"budget exceeded: ${float(cost):.4f} spent, the limit is ${budget.max_cost_usd:g} "
                       f"(spec.budget.maxCostUsd {budget.max_cost_usd:g})")
    return None


def raised(budget: Budget, limit: str) -> Budget:
    """The budget after a person approved going on: the reached limit grows by its own first value again."""
    if limit == "maxTokens" and budget.max_tokens is not None:
        return replace(budget, max_tokens=budget.max_tokens + (budget.step_tokens or budget.max_tokens))
    if limit == "maxCostUsd" and budget.max_cost_usd is not None:
        return replace(budget, max_cost_usd=budget.max_cost_usd + (budget.step_cost or budget.max_cost_usd))
    return budget
