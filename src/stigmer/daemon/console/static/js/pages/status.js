// The stack: its components, the LLM in use and why it was chosen, Temporal (with a link to its web UI).

import { get } from "../api.js";
import { badge, h, table } from "../dom.js";

export async function render(main, ctx) {
  const s = await get("/v1/status");
  ctx.status = s;
  const llm = s.llm || {};
  const why = (item) => (item && item.value !== null && item.value !== undefined
    ? h("span", {}, h("code", { text: String(item.value) }), h("span", { class: "muted", text: `  ${item.source}${item.origin ? `: ${item.origin}` : ""}` }))
    : h("span", { class: "muted", text: "-" }));
  main.append(h("h1", { text: "Status" }),
    h("h2", { text: "LLM" }),
    h("div", { class: "card grid2", id: "llm" },
      h("div", { class: "k", text: "provider" }), why(llm.provider),
      h("div", { class: "k", text: "model" }), why(llm.model),
      h("div", { class: "k", text: "base URL" }), why(llm.base_url)),
    h("h2", { text: "Temporal" }),
    h("div", { class: "card grid2" },
      h("div", { class: "k", text: "address" }), h("code", { text: s.temporal.address }),
      h("div", { class: "k", text: "namespace" }), h("code", { text: s.temporal.namespace }),
      h("div", { class: "k", text: "web UI" }), s.temporal.ui_url
        ? h("a", { href: s.temporal.ui_url, target: "_blank", rel: "noopener noreferrer", text: s.temporal.ui_url })
        : h("span", { class: "muted", text: "not known (Temporal is not managed by this stigmer)" }),
      h("div", { class: "k", text: "task queue" }), h("code", { text: s.task_queue }),
      h("div", { class: "k", text: "store" }), h("code", { text: s.store })),
    h("h2", { text: "Components" }),
    table(["name", "state", "address", "pid", "uptime", "restarts", "detail"],
      (s.components || []).map((c) => [h("strong", { text: c.name }), badge(c.state), c.address || "-", c.pid ?? "-",
        c.uptime_s ? `${Math.round(c.uptime_s)} s` : "-", String(c.restarts ?? 0),
        c.last_error ? h("span", { class: "error", text: c.last_error }) : (c.detail || "")]),
      "No supervised components (the API runs alone)."));
}
