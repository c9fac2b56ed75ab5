// Figures as people read them. Pure functions: no DOM.

const UNITS = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"];

/** Bits per second, e.g. "1.25 Mbit/s"; "–" for null (not counted). */
export function bits(bps) {
  if (bps === null || bps === undefined || !Number.isFinite(bps)) return "–";
  let v = Math.max(0, bps);
  let i = 0;
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(v >= 10 ? 1 : 2)} ${UNITS[i]}`;
}

/** Packets per second, e.g. "120 pps". */
export function pps(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} pps`;
}

/** A Rate ({pps, bits_per_s}) or null: "1.25 Mbit/s, 120 pps", or "–". */
export function rate(r) {
  if (!r) return "–";
  return `${bits(r.bits_per_s)}, ${pps(r.pps)}`;
}

/** A rate short enough for an edge label. */
export function shortRate(r) {
  if (!r) return "";
  return bits(r.bits_per_s);
}

/** The sum of the bit rates of HostRates (nulls skipped); null when none counted. */
export function sumBits(list) {
  let total = null;
  for (const h of list) {
    if (h.rate) total = (total ?? 0) + h.rate.bits_per_s;
  }
  return total;
}

/** Total drops per second of a {reason: rate} map. */
export function dropTotal(drops) {
  let t = 0;
  for (const v of Object.values(drops || {})) t += v;
  return t;
}

/** A source filter ({mode, sources}) as text. */
export function filter(f) {
  if (!f) return "";
  const mode = f.mode ?? "";
  const src = Array.isArray(f.sources) ? f.sources.join(" ") : "";
  return src ? `${mode} ${src}` : String(mode);
}

/** Compares dotted IPv4 addresses numerically (for sorting). */
export function ipOrder(a, b) {
  const n = (s) => s.split(".").reduce((acc, p) => acc * 256 + (Number(p) || 0), 0);
  return n(a) - n(b);
}

/** `list` sorted by the IPv4 address key(item) (numerically), as a new array. */
export function sortByIp(list, key) {
  const n = (s) => s.split(".").reduce((acc, p) => acc * 256 + (Number(p) || 0), 0);
  return list
    .map((item) => [n(key(item)), item])
    .sort((a, b) => a[0] - b[0])
    .map((x) => x[1]);
}
