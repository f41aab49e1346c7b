// A run as it happens: each step's tokens as they stream, its tool calls with arguments and results, approvals
// waiting for a person, and the final answer with its usage. Used by the execution page and the session chat.

import { follow, post } from "./api.js";
import { errorBox, h, usageText } from "./dom.js";

export function liveRun(container, executionId, ctx, onEnd) {
  const steps = new Map();
  const tools = new Map();
  const approvals = new Map();
  const model = h("div", { class: "muted" });
  container.append(model);

  const step = (n) => {
    if (!steps.has(n)) {
      const text = h("div", { class: "text" });
      const block = h("div", { class: "step", "data-step": n }, h("div", { class: "label", text: `step ${n}` }), text);
      container.append(block);
      steps.set(n, { block, text });
    }
    return steps.get(n);
  };

  const handlers = {
    model_resolved: (d) => { model.textContent = `model ${d.model.provider}:${d.model.model} (${d.origin})`; },
    step_started: (d) => step(d.step),
    token: (d) => {
      container.dataset.tokens = String(Number(container.dataset.tokens || 0) + 1);  // how many streamed in
      step(d.step).text.append(d.text);
    },
    message: (d) => { if (typeof d.content === "string") step(d.step).text.textContent = d.content; },
    truncated: (d) => step(d.step).block.append(h("div", { class: "error", text: "reply cut at the token limit" })),
    tool_started: (d) => {
      const result = h("pre", { class: "result", text: "running…" });
      const box = h("div", { class: "tool", "data-call": d.call_id }, h("span", { class: "name", text: d.name }),
        h("pre", { class: "args", text: JSON.stringify(d.args, null, 2) }), result);
      tools.set(d.call_id, { box, result });
      step(d.step).block.append(box);
    },
    tool_finished: (d) => {
      const tool = tools.get(d.call_id);
      if (!tool) return;
      tool.result.textContent = d.result;
      if (d.is_error) tool.box.classList.add("error");
    },
    approval_requested: (d) => {
      const box = approvalBox(d, ctx);
      approvals.set(d.approval_id, box);
      step(d.step ?? 0).block.append(box);
    },
    approval_decided: (d) => {
      const box = approvals.get(d.approval_id);
      if (box) box.replaceWith(h("div", { class: "muted", text: `approval ${d.decision}${d.reason ? `: ${d.reason}` : ""}` }));
    },
    completed: (d) => {
      container.append(h("div", { class: "final", id: "final" }, h("div", { class: "label muted", text: "final answer" }),
        h("div", { class: "text answer", text: d.output }),
        h("div", { class: "usage", text: [`${d.steps} steps`, usageText(d.usage)].filter(Boolean).join(" · ") })));
      if (onEnd) onEnd("completed", d);
    },
    failed: (d) => {
      container.append(h("div", { class: "final failed", id: "final" },
        h("div", { class: "label muted", text: d.cancelled ? "cancelled" : "failed" }), h("div", { class: "text", text: d.error })));
      if (onEnd) onEnd(d.cancelled ? "cancelled" : "failed", d);
    },
  };
  return follow(executionId, (event) => (handlers[event.type] || (() => {}))(event.data || {}));
}

// Approve or reject one call: what the inbox and a live run show for a pending approval.
export function approvalBox(request, ctx, onDecided) {
  const id = request.approval_id || request.id;
  const reason = h("input", { placeholder: "reason (told to the model)", size: 32 });
  const status = h("div");
  const decide = async (approve) => {
    for (const b of box.querySelectorAll("button")) b.disabled = true;
    try {
      const body = { args_hash: request.args_hash };
      if (!approve) body.reason = reason.value;
      const decided = await post(`/v1/approvals/${encodeURIComponent(id)}/${approve ? "approve" : "reject"}`, body);
      status.replaceChildren(h("span", { class: `badge ${decided.status}`, text: decided.status }));
      if (onDecided) onDecided(decided);
    } catch (error) {
      status.replaceChildren(errorBox(error));
      for (const b of box.querySelectorAll("button")) b.disabled = false;
    }
  };
  const buttons = ctx.role === "admin"
    ? h("div", { class: "row" }, h("button", { class: "primary", type: "button", "data-action": "approve", onclick: () => decide(true), text: "Approve" }),
      reason, h("button", { class: "danger", type: "button", "data-action": "reject", onclick: () => decide(false), text: "Reject" }))
    : h("div", { class: "readonly", text: "read-only console: an admin decides" });
  const box = h("div", { class: "approval", "data-approval": id },
    h("div", {}, h("strong", { text: request.tool ? `${request.tool} waits for approval` : "waiting for approval" }),
      request.reason ? h("span", { class: "muted", text: ` — ${request.reason}` }) : null),
    h("pre", { text: JSON.stringify(request.args, null, 2) }), buttons, status);
  return box;
}
