// The controller's API, with the bearer credential kept in this tab's sessionStorage.

const KEY = "mcgate.token";

/** An answer other than 2xx, with the API's error text. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The token this tab holds, or null. */
export function token() {
  return sessionStorage.getItem(KEY);
}

/** Keeps a token (the field of a pasted credential file, or the text itself). */
export function setToken(input) {
  const t = parseToken(input);
  if (!t) throw new Error("no token in what was pasted");
  sessionStorage.setItem(KEY, t);
  return t;
}

/** Forgets the token. */
export function clearToken() {
  sessionStorage.removeItem(KEY);
}

/** The token in a pasted text: a credential file's `token` field, or the text. */
export function parseToken(input) {
  const text = String(input ?? "").trim();
  if (text.startsWith("{")) {
    try {
      const v = JSON.parse(text);
      return typeof v.token === "string" ? v.token.trim() : null;
    } catch {
      return null;
    }
  }
  // A token is one word of printable ASCII.
  return /^[\x21-\x7e]+$/.test(text) ? text : null;
}

/** The request headers with the credential. */
export function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

/** GETs `path` (under the page's origin) and decodes its JSON. */
export async function get(path, { signal } = {}) {
  const r = await fetch(path, { headers: headers(), signal, cache: "no-store" });
  if (!r.ok) throw await errorOf(r);
  return r.json();
}

/** The ApiError of a refused answer. */
export async function errorOf(r) {
  let text = `${r.status} ${r.statusText}`;
  try {
    const body = await r.json();
    if (body && typeof body.error === "string") text = body.error;
  } catch {
    // Not JSON: the status says enough.
  }
  return new ApiError(r.status, text);
}

/** A path with a query from an object (empty values left out). */
export function withQuery(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && String(v).trim() !== "") q.set(k, String(v).trim());
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
