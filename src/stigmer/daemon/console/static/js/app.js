// The console's shell: who is logged in, the navigation, and a hash router over the pages (one module each).

import { get } from "./api.js";
import { clear, errorBox } from "./dom.js";
import * as approvals from "./pages/approvals.js";
import * as executions from "./pages/executions.js";
import * as resources from "./pages/resources.js";
import * as sessions from "./pages/sessions.js";
import * as status from "./pages/status.js";

const main = document.getElementById("main");
const ctx = { role: "viewer", status: null };
let cleanup = null;

function route() {
  const [path, query] = (window.location.hash.slice(1) || "/").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  const page = parts[0] || "status";
  if (page === "executions" && parts[1]) return ["executions", () => executions.one(main, ctx, parts[1])];
  if (page === "sessions" && parts[1]) return ["sessions", () => sessions.chat(main, ctx, parts[1])];
  const pages = { status: status.render, agents: resources.render, executions: executions.list,
    sessions: sessions.list, approvals: approvals.render };
  const render = pages[page] || status.render;
  return [pages[page] ? page : "status", () => render(main, ctx, params)];
}

async function show() {
  if (cleanup) cleanup();
  cleanup = null;
  const [page, render] = route();
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page);
  clear(main);
  try {
    cleanup = (await render()) || null;
  } catch (error) {
    main.append(errorBox(error));
  }
  refreshPending();
}

async function refreshPending() {
  try {
    const pending = await get("/v1/approvals?status=pending&limit=100");
    const count = document.getElementById("pending-count");
    count.textContent = String(pending.items.length);
    count.hidden = pending.items.length === 0;
  } catch (_) { /* the badge is a hint only */ }
}

async function start() {
  try {
    const [who, stat] = await Promise.all([get("/v1/console/session"), get("/v1/status")]);
    ctx.role = who.role;
    ctx.status = stat;
    document.getElementById("who").textContent = who.role === "admin" ? "admin" : "viewer (read-only)";
    document.body.dataset.role = who.role;
  } catch (error) {
    main.replaceChildren(errorBox(error));
    return;
  }
  document.getElementById("logout").addEventListener("click", async () => {
    await fetch("/console/logout", { method: "POST", credentials: "same-origin", headers: { "X-Stigmer-Console": "1" } });
    window.location.assign("/console/login");
  });
  window.addEventListener("hashchange", show);
  setInterval(refreshPending, 5000);
  await show();
}

start();
