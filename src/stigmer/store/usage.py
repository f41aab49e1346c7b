"""Usage in the store: the tokens and cost of executions that ended, summed, optionally grouped.

An execution counts once it ended with ``data.usage`` on its terminal event (before that, or from a
runner that reports none, it has no usage and is left out). ``cost_usd`` sums the known costs;
``unpriced`` says some execution's cost was unknown (a cloud model without a price), so the sum is
a lower bound; ``estimated`` says some tokens were estimated (the provider reported none). Executions
deleted (``stigmer execution prune``, retention, a deleted session) leave the sums.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ._base import StoreBase

# --by -> the SQL of the group key (over ``executions e LEFT JOIN sessions s``); {provider}/{model}: the model's
USAGE_GROUPS: dict[str, str] = {
    "agent": "e.agent",
    "model": "COALESCE({provider}, '?') || ':' || COALESCE({model}, '?')",
    "session": "e.session_id",
}
_SUMS = ("COUNT(*) AS executions, SUM(e.input_tokens) AS input_tokens, SUM(e.output_tokens) AS output_tokens, "
         "SUM(e.cached_tokens) AS cached_tokens, SUM(e.cost_usd) AS cost_usd, "
         "MAX(CASE WHEN e.cost_usd IS NULL THEN 1 ELSE 0 END) AS unpriced, MAX(e.usage_estimated) AS estimated")


class UsageMixin(StoreBase):
    """Sums of the executions' usage."""

    def usage(self, *, since: float | None = None, by: str | None = None) -> dict[str, Any]:
        """``{"total": sums, "items": [sums + key per group]}`` over executions that ended at or after ``since``
        (a timestamp; None: all), grouped ``by`` agent, model or session (None: no groups), biggest first."""
        where, args = "e.input_tokens IS NOT NULL", []
        if since is not None:
            where += " AND e.finished_at >= ?"
            args.append(since)
        source = f"FROM executions e LEFT JOIN sessions s ON s.id = e.session_id WHERE {where}"
        total = _sums(self._read(f"SELECT {_SUMS} {source}", args)[0])
        items: list[dict[str, Any]] = []
        if by is not None:
            key = USAGE_GROUPS[by].format(provider=self.json_field("e.model", "provider"),
                                          model=self.json_field("e.model", "model"))
            rows = self._read(f"SELECT {key} AS key, MAX(s.name) AS name, {_SUMS} {source} GROUP BY {key} "
                              "ORDER BY SUM(e.input_tokens + e.output_tokens) DESC, key", args)
            items = [{"key": row["key"], **({"name": row["name"]} if by == "session" else {}), **_sums(row)}
                     for row in rows]
        return {"total": total, "items": items}


def _sums(row: sqlite3.Row) -> dict[str, Any]:
    return {"executions": int(row["executions"]), "input_tokens": int(row["input_tokens"] or 0),
            "output_tokens": int(row["output_tokens"] or 0), "cached_tokens": int(row["cached_tokens"] or 0),
            "cost_usd": round(float(row["cost_usd"] or 0.0), 8), "unpriced": bool(row["unpriced"]),
            "estimated": bool(row["estimated"])}
