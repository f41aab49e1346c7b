// Agents and MCP servers, as applied (`stigmer apply`).

import { get } from "../api.js";
import { h, table, when } from "../dom.js";

export async function render(main) {
  const [agents, servers] = await Promise.all([get("/v1/agents"), get("/v1/mcpservers")]);
  const spec = (item) => (item.document && item.document.spec) || item.spec || {};
  main.append(h("h1", { text: "Agents" }),
    table(["name", "model", "tools", "MCP servers", "instructions", "updated"], agents.items.map((a) => {
      const s = spec(a);
      return [h("a", { href: `#/executions?agent=${encodeURIComponent(a.name)}`, text: a.name }),
        s.model || h("span", { class: "muted", text: "default" }), (s.tools || []).join(", ") || "-",
        (s.mcpServers || []).join(", ") || "-",
        h("span", { class: "muted", text: (s.instructions || "").slice(0, 140) }), when(a.updated_at)];
    }), "No agents yet: apply one with `stigmer apply -f examples/agents/`."),
    h("h1", { text: "MCP servers" }),
    table(["name", "transport", "target", "updated"], servers.items.map((m) => {
      const s = spec(m);
      const transport = s.stdio ? "stdio" : "http";
      const target = s.stdio ? [s.stdio.command, ...(s.stdio.args || [])].join(" ") : (s.http && s.http.url) || "";
      return [h("strong", { text: m.name }), transport, h("code", { text: target }), when(m.updated_at)];
    }), "No MCP servers."));
}
