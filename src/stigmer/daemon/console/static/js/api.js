// The console's only way to the daemon: the same /v1 routes the CLI calls, with the console's session cookie
// (sent by the browser; no script can read it) instead of a bearer token. Changes carry X-Stigmer-Console (CSRF).

export class ApiError extends Error {
  constructor(status, detail, hint) {
    super(detail);
    this.status = status;
    this.hint = hint;
  }
}

export async function api(method, path, body, headers = {}) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (method !== "GET") options.headers["X-Stigmer-Console"] = "1";
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401) {
    window.location.assign("/console/login");
    throw new ApiError(401, "the console session has ended");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.detail || response.statusText, data.hint);
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body, headers) => api("POST", path, body === undefined ? {} : body, headers);

export const EVENT_TYPES = ["model_resolved", "step_started", "token", "tool_started", "tool_finished", "message",
  "truncated", "approval_requested", "approval_decided", "context_trimmed", "context_summarised", "completed",
  "failed"];

// An execution's events, replayed then live (server-sent events); closed after its terminal event.
export function follow(executionId, onEvent) {
  const source = new EventSource(`/v1/executions/${encodeURIComponent(executionId)}/events`);
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, (message) => {
      const event = JSON.parse(message.data);
      onEvent(event);
      if (type === "completed" || type === "failed") source.close();
    });
  }
  return source;
}

export function newKey() {
  return (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2));
}
