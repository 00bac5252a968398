// The HTTP layer: admin session and API key in sessionStorage, JSON in and out, and one error
// type that carries the server's {"error": {message, type, param, code}} envelope.

const SESSION_KEY = "sora2api.session";
const API_KEY_KEY = "sora2api.apikey";

export const session = {
  get: () => sessionStorage.getItem(SESSION_KEY) || "",
  set: (token) => sessionStorage.setItem(SESSION_KEY, token),
  clear: () => sessionStorage.removeItem(SESSION_KEY),
};

export const apiKey = {
  get: () => sessionStorage.getItem(API_KEY_KEY) || "",
  set: (key) => sessionStorage.setItem(API_KEY_KEY, key),
  clear: () => sessionStorage.removeItem(API_KEY_KEY),
};

export class ApiError extends Error {
  constructor(status, message, { code = null, param = null, type = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
    this.type = type;
  }

  /** Build from a response status and its parsed body (the error envelope when there is one). */
  static from(status, body, fallback) {
    const err = body && typeof body === "object" ? body.error : null;
    if (err && typeof err === "object") {
      return new ApiError(status, String(err.message || fallback), err);
    }
    if (typeof err === "string") return new ApiError(status, err);
    return new ApiError(status, fallback || `Request failed with HTTP ${status}`);
  }
}

// The app installs a handler so any call can send the admin back to login or the password screen.
let onAuthError = () => {};
export function setAuthErrorHandler(fn) {
  onAuthError = fn;
}

export async function readBody(resp) {
  const text = await resp.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Call the API. `opts.key`: authenticate with the API key instead of the admin session.
 * `opts.raw`: return the Response itself on success (downloads, streams).
 */
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: "application/json" };
  const credential = opts.key ? apiKey.get() : session.get();
  if (credential) headers.Authorization = `Bearer ${credential}`;
  const init = { method, headers, credentials: "same-origin", signal: opts.signal };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `Network error: the server did not answer (${err.message})`);
  }
  if (resp.ok && opts.raw) return resp;
  const data = await readBody(resp);
  if (!resp.ok) {
    const err = ApiError.from(resp.status, data);
    if (!opts.key && !opts.noAuthRedirect) onAuthError(err);
    throw err;
  }
  return data;
}

/** The list inside a listing response, whatever key the endpoint uses. */
export function listOf(data, ...names) {
  if (Array.isArray(data)) return data;
  for (const name of [...names, "data", "items", "results"]) {
    if (data && Array.isArray(data[name])) return data[name];
  }
  return [];
}
