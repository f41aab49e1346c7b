// Sessions as a chat: the list, a new conversation, and one conversation's turns with a box to send the next.

import { get, newKey, post } from "../api.js";
import { badge, errorBox, h, table, usageText, when } from "../dom.js";
import { liveRun } from "../live.js";

export async function list(main, ctx) {
  const [sessions, agents] = await Promise.all([get("/v1/sessions?limit=100"), get("/v1/agents")]);
  main.append(h("h1", { text: "Sessions" }));
  if (ctx.role === "admin" && agents.items.length) {
    const agent = h("select", { name: "agent" }, agents.items.map((a) => h("option", { value: a.name, text: a.name })));
    const name = h("input", { name: "name", placeholder: "name (optional)" });
    const problem = h("div");
    const form = h("form", { class: "inline card", id: "new-session" }, h("label", {}, "agent", agent),
      h("label", {}, "name", name), h("button", { class: "primary", type: "submit", text: "New conversation" }), problem);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const body = { agent: agent.value };
        if (name.value.trim()) body.name = name.value.trim();
        const created = await post("/v1/sessions", body);
        window.location.hash = `#/sessions/${encodeURIComponent(created.id)}`;
      } catch (error) {
        problem.replaceChildren(errorBox(error));
      }
    });
    main.append(form);
  }
  main.append(table(["session", "agent", "state", "turns", "usage", "last turn"], sessions.items.map((s) => [
    h("a", { href: `#/sessions/${encodeURIComponent(s.id)}`, text: s.name || s.id }), s.agent, badge(s.status),
    String(s.turn_count ?? 0), h("span", { class: "muted", text: usageText(s.usage) }), when(s.last_turn_at || s.created_at)]),
  "No sessions yet."));
}

function turnBubbles(turn, ctx) {
  const out = [h("div", { class: "bubble user", text: turn.message })];
  if (["completed", "failed", "cancelled"].includes(turn.status)) {
    out.push(h("div", { class: "bubble agent" }, h("div", { text: turn.output || turn.error || turn.status }),
      h("div", { class: "meta" }, h("a", { href: `#/executions/${encodeURIComponent(turn.id)}`, text: `turn ${turn.turn}` }),
        ` · ${turn.status}`, turn.usage ? ` · ${usageText(turn.usage)}` : "")));
  } else {
    const live = h("div", { class: "bubble agent live" });
    out.push(live);
    liveRun(live, turn.id, ctx);
  }
  return out;
}

export async function chat(main, ctx, ref) {
  const s = await get(`/v1/sessions/${encodeURIComponent(ref)}`);
  const log = h("div", { class: "chat", id: "chat" });
  for (const turn of s.turns || []) log.append(...turnBubbles(turn, ctx));
  main.append(h("h1", {}, `${s.name || s.id} `, badge(s.status)),
    h("p", { class: "muted", text: `agent ${s.agent} · ${s.turn_count ?? (s.turns || []).length} turns · ${usageText(s.usage) || "no usage yet"}` }), log);
  const sources = [];
  if (ctx.role === "admin" && s.status === "open") {
    const message = h("textarea", { name: "message", placeholder: "Say something…", rows: 2 });
    const problem = h("div");
    const form = h("form", { class: "inline card", id: "send" }, message, h("button", { class: "primary", type: "submit", text: "Send" }), problem);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      problem.replaceChildren();
      const text = message.value;
      try {
        const turn = await post(`/v1/sessions/${encodeURIComponent(s.id)}/messages`, { message: text }, { "Idempotency-Key": newKey() });
        message.value = "";
        const live = h("div", { class: "bubble agent live" });
        log.append(h("div", { class: "bubble user", text: text }), live);
        sources.push(liveRun(live, turn.id, ctx));
      } catch (error) {
        problem.replaceChildren(errorBox(error));
      }
    });
    main.append(form);
  }
  return () => sources.forEach((src) => src.close());
}
