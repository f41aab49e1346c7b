// The approvals inbox: tool calls waiting for a person (approve, or reject with a reason), and recent decisions.

import { get } from "../api.js";
import { badge, h, table, when } from "../dom.js";
import { approvalBox } from "../live.js";

export async function render(main, ctx) {
  const [pending, recent] = await Promise.all([get("/v1/approvals?status=pending&limit=100"), get("/v1/approvals?limit=30")]);
  main.append(h("h1", { text: "Approvals" }));
  if (!pending.items.length) main.append(h("p", { class: "muted", id: "inbox-empty", text: "Nothing waits for a decision." }));
  for (const a of pending.items) {
    main.append(h("div", { class: "card" },
      h("div", { class: "row muted" }, "execution ", h("a", { href: `#/executions/${encodeURIComponent(a.execution_id)}`, class: "mono", text: a.execution_id }),
        a.session_id ? ` · session ${a.session_id}` : "", ` · step ${a.step ?? "-"} · asked ${when(a.requested_at)}`),
      approvalBox({ ...a, reason: a.question }, ctx)));
  }
  main.append(h("h2", { text: "Recent" }),
    table(["tool", "state", "execution", "reason", "by", "decided"],
      recent.items.filter((a) => a.status !== "pending").map((a) => [h("code", { text: a.tool || a.kind }), badge(a.status),
        h("a", { href: `#/executions/${encodeURIComponent(a.execution_id)}`, class: "mono", text: a.execution_id }),
        a.reason || "", a.decided_by || "", when(a.decided_at)]), "No decisions yet."));
}
