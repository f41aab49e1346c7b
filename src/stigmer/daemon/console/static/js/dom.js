// Building the page from data: every value is set as text, never as HTML (a model's answer is untrusted).

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export const badge = (status) => h("span", { class: `badge ${status || ""}`, text: status || "-" });

export function when(ts) {
  if (!ts) return "-";
  const d = new Date(ts * 1000);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function usageText(usage) {
  if (!usage) return "";
  const parts = [`${usage.input_tokens ?? 0} in / ${usage.output_tokens ?? 0} out tokens`];
  if (usage.cached_tokens) parts.push(`${usage.cached_tokens} cached`);
  if (usage.cost_usd !== null && usage.cost_usd !== undefined) parts.push(`$${Number(usage.cost_usd).toFixed(4)}`);
  if (usage.estimated) parts.push("estimated");
  return parts.join(" · ");
}

export const json = (value) => h("pre", { text: JSON.stringify(value, null, 2) });

export function errorBox(error) {
  return h("div", { class: "error", text: error.hint ? `${error.message} — ${error.hint}` : error.message });
}

export function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "muted", text: empty });
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map((t) => h("th", { text: t })))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))));
}

export function temporalLink(ctx, workflowId) {
  const ui = ctx.status && ctx.status.temporal && ctx.status.temporal.ui_url;
  if (!ui || !workflowId) return null;
  const ns = encodeURIComponent(ctx.status.temporal.namespace || "default");
  return h("a", { href: `${ui}/namespaces/${ns}/workflows/${encodeURIComponent(workflowId)}`, target: "_blank",
    rel: "noopener noreferrer", text: "Temporal UI ↗" });
}
