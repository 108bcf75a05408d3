// REST calls of the console: same origin only, the session cookie, and the CSRF token on
// every state-changing request.
const BASE = "/api/v1";
let csrfToken = null;

export class ApiError extends Error {
  constructor(status, code, message, retryAfter, field = null) {
    super(message);
    this.status = status; this.code = code; this.retryAfter = retryAfter; this.field = field;
  }
}

// The server could not be reached at all (it is restarting, or the network is down): the
// request may be tried again as it is.
export class NetworkError extends Error {
  constructor(cause) {
    super(cause?.message ?? String(cause));
    this.name = "NetworkError";
  }
}

export function setCsrfToken(token) { csrfToken = token; }

export function toLogin() {
  const next = location.pathname + location.search + location.hash;
  location.assign("/login?next=" + encodeURIComponent(next));
}

export async function api(path, options = {}) {
  return (await apiResponse(path, options)).data;
}

// Like api(), with the row count a list endpoint sends in X-Total-Count (null if none).
export async function apiPage(path, options = {}) {
  const { data, headers } = await apiResponse(path, options);
  const total = headers.get("X-Total-Count");
  return { data, total: total === null ? null : Number(total) };
}

async function apiResponse(path, { method = "GET", body, redirectOn401 = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (!["GET", "HEAD"].includes(method) && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let res;
  try {
    res = await fetch(BASE + path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new NetworkError(err); // fetch rejects only when no answer came
  }
  if (res.status === 204) return { data: null, headers: res.headers };
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    if (res.status === 401 && redirectOn401) toLogin();
    const err = data?.error ?? { code: "http_error", message: `HTTP ${res.status}` };
    throw new ApiError(res.status, err.code, err.message, Number(res.headers.get("Retry-After")) || null, err.field ?? null);
  }
  return { data, headers: res.headers };
}
