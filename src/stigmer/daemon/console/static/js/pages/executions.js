// Executions: the list (filter by agent and state), a form to start a run, and one run's live view.

import { get, newKey, post } from "../api.js";
import { badge, errorBox, h, table, temporalLink, usageText, when } from "../dom.js";
import { liveRun } from "../live.js";

const STATES = ["", "pending", "running", "completed", "failed", "cancelled"];

function startForm(agents) {
  const agent = h("select", { name: "agent" }, agents.map((a) => h("option", { value: a.name, text: a.name })));
  const message = h("textarea", { name: "message", placeholder: "What should the agent do?", rows: 2 });
  const problem = h("div");
  const form = h("form", { class: "inline card", id: "start-run" },
    h("label", {}, "agent", agent), h("label", {}, "message", message),
    h("button", { class: "primary", type: "submit", text: "Run" }), problem);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    problem.replaceChildren();
    try {
      const started = await post("/v1/executions", { agent: agent.value, message: message.value },
        { "Idempotency-Key": newKey() });
      window.location.hash = `#/executions/${encodeURIComponent(started.id)}`;
    } catch (error) {
      problem.replaceChildren(errorBox(error));
    }
  });
  return form;
}

export async function list(main, ctx, params) {
  const query = new URLSearchParams({ limit: "100" });
  for (const key of ["agent", "status"]) if (params.get(key)) query.set(key, params.get(key));
  const [executions, agents] = await Promise.all([get(`/v1/executions?${query}`), get("/v1/agents")]);
  const filter = (key, options) => {
    const select = h("select", { name: key }, options.map(([value, label]) =>
      h("option", { value, text: label, selected: params.get(key) === value || (!params.get(key) && !value) })));
    select.addEventListener("change", () => {
      const next = new URLSearchParams(params);
      if (select.value) next.set(key, select.value); else next.delete(key);
      window.location.hash = `#/executions?${next}`;
    });
    return h("label", {}, key === "status" ? "state" : key, select);
  };
  main.append(h("h1", { text: "Executions" }),
    ctx.role === "admin"
      ? (agents.items.length ? startForm(agents.items) : h("p", { class: "muted", text: "Apply an agent to start runs." }))
      : h("div", { class: "readonly", text: "read-only console: runs are started by an admin" }),
    h("div", { class: "row filters" },
      filter("agent", [["", "all agents"], ...agents.items.map((a) => [a.name, a.name])]),
      filter("status", STATES.map((s) => [s, s || "all states"]))),
    table(["id", "agent", "state", "message", "model", "steps", "usage", "started", ""],
      executions.items.map((e) => [h("a", { href: `#/executions/${encodeURIComponent(e.id)}`, class: "mono", text: e.id }),
        e.agent, badge(e.status), h("span", { text: e.message.slice(0, 80) }),
        h("code", { text: e.model ? `${e.model.provider}:${e.model.model}` : "-" }), e.steps ?? "-",
        h("span", { class: "muted", text: usageText(e.usage) }), when(e.created_at),
        temporalLink(ctx, e.workflow_id)]), "No executions match."));
}

export async function one(main, ctx, id) {
  const e = await get(`/v1/executions/${encodeURIComponent(id)}`);
  const state = h("span", { id: "state" }, badge(e.status));
  const cancel = ctx.role === "admin" && ["pending", "running"].includes(e.status)
    ? h("button", { class: "secondary", type: "button", text: "Cancel", onclick: async () => {
      try { await post(`/v1/executions/${encodeURIComponent(id)}/cancel`); } catch (error) { main.append(errorBox(error)); }
    } }) : null;
  const run = h("div", { id: "run" });
  main.append(h("h1", {}, "Execution ", h("span", { class: "mono", text: e.id })),
    h("div", { class: "card grid2" },
      h("div", { class: "k", text: "agent" }), h("a", { href: `#/executions?agent=${encodeURIComponent(e.agent)}`, text: e.agent }),
      h("div", { class: "k", text: "state" }), h("div", { class: "row" }, state, cancel),
      h("div", { class: "k", text: "message" }), h("div", { class: "text", text: e.message }),
      h("div", { class: "k", text: "session" }), e.session_id
        ? h("a", { href: `#/sessions/${encodeURIComponent(e.session_id)}`, text: `${e.session_id} (turn ${e.turn})` }) : "-",
      h("div", { class: "k", text: "started" }), when(e.created_at),
      h("div", { class: "k", text: "workflow" }), h("div", { class: "row" }, h("code", { text: e.workflow_id }),
        temporalLink(ctx, e.workflow_id))),
    h("h2", { text: "Run" }), run);
  const source = liveRun(run, e.id, ctx, (status) => {
    state.replaceChildren(badge(status));
    if (cancel) cancel.remove();
  });
  return () => source.close();
}
