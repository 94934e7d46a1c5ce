// Branded scalar types and the one place where "50ms" / "1Gbit" / "64KiB" become numbers.
// Simulated time and host (wall) time are distinct types so they cannot be mixed up.

declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** Simulated time in integer nanoseconds since the start of the run. */
export type VirtualNs = Brand<number, "VirtualNs">;
/** Host monotonic time in nanoseconds: only ever reported, never used for decisions. */
export type HostNs = Brand<number, "HostNs">;
/** Index of a simulated node, 0-based, dense. */
export type NodeId = Brand<number, "NodeId">;

/** The largest virtual time; stands for "never" in bounds and wake-ups. */
export const VIRTUAL_NS_NEVER = Number.MAX_SAFE_INTEGER as VirtualNs;

export function virtualNs(value: number): VirtualNs {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`virtual time must be a non-negative safe integer, got ${value}`);
  }
  return value as VirtualNs;
}

export function nodeId(value: number): NodeId {
  if (!Number.isSafeInteger(value) || value < 0 || value > 0xffff) {
    throw new RangeError(`node id must be an integer in 0..65535, got ${value}`);
  }
  return value as NodeId;
}

export function hostNowNs(): HostNs {
  return Number(process.hrtime.bigint()) as HostNs;
}

/** Formats virtual ns for people: "1.250000000s", exact (no float rounding). */
export function formatVirtualNs(t: number): string {
  if (t === VIRTUAL_NS_NEVER) return "never";
  const s = Math.floor(t / 1e9);
  const frac = String(t - s * 1e9).padStart(9, "0");
  return `${s}.${frac}s`;
}

// ---------------------------------------------------------------------------------------
// Unit parsing. Every parser reads the decimal text into integers (BigInt) and scales
// exactly, so "0.1ms" is 100000 ns and never 99999.99999999999. Messages carry no
// location: callers know the file, line and column and prefix them.

/** A malformed quantity; the message is short and has no location. */
export class UnitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnitError";
  }
}

interface Quantity {
  text: string;
  negative: boolean;
  /** The number is digits / 10^scale, exactly. */
  digits: bigint;
  scale: number;
  unit: string;
}

/** Splits "1.5 ms" into an exact decimal and its unit; exponents are not accepted. */
function splitQuantity(raw: string): Quantity {
  const text = raw.trim();
  const m = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)\s*(.*)$/.exec(text);
  if (!m) throw new UnitError(`not a number: "${text}"`);
  const [int = "", frac = ""] = m[2]!.split(".");
  return {
    text,
    negative: m[1] === "-" && /[1-9]/.test(m[2]!),
    digits: BigInt((int + frac) || "0"),
    scale: frac.length,
    unit: m[3]!,
  };
}

/** digits / 10^scale * factor as a safe integer, or a UnitError saying why not. */
function scaleExact(q: Quantity, factor: bigint, what: string): number {
  const divisor = 10n ** BigInt(q.scale);
  const scaled = q.digits * factor;
  if (scaled % divisor !== 0n) throw new UnitError(`${q.text} is not a whole number of ${what}`);
  const value = scaled / divisor;
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new UnitError(`${q.text} is too large (more than ${Number.MAX_SAFE_INTEGER} ${what})`);
  return Number(value);
}

/** Shared front half of the parsers: number, sign, and the unit looked up in a table. */
function parseWithUnits(raw: string, kind: string, example: string, lookup: (unit: string) => bigint | undefined, expected: string): { q: Quantity; factor: bigint } {
  const q = splitQuantity(raw);
  if (q.negative) throw new UnitError(`negative value ${q.text}`);
  // A bare zero is unambiguous in every unit, so it needs none.
  if (q.unit === "" && q.digits === 0n) return { q, factor: 1n };
  if (q.unit === "") throw new UnitError(`missing unit in "${q.text}" (write e.g. ${q.text}${example})`);
  const factor = lookup(q.unit);
  if (factor === undefined) throw new UnitError(`unknown ${kind} unit "${q.unit}" (expected ${expected})`);
  return { q, factor };
}

const DURATION_UNITS: Record<string, bigint> = {
  ns: 1n, nsec: 1n,
  us: 1_000n, "µs": 1_000n, "μs": 1_000n, usec: 1_000n, // µ: micro sign and Greek mu both occur
  ms: 1_000_000n, msec: 1_000_000n,
  s: 1_000_000_000n, sec: 1_000_000_000n,
  m: 60_000_000_000n, min: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

/** "50ms", "1.5 us", "2min" → integer nanoseconds (exact; fractions of a ns are an error). */
export function parseDurationNs(text: string): number {
  const { q, factor } = parseWithUnits(text, "duration", "ms", (u) => DURATION_UNITS[u], "ns, us, ms, s, m, h");
  return scaleExact(q, factor, "ns");
}

const SI: Record<string, bigint> = { "": 1n, k: 10n ** 3n, m: 10n ** 6n, g: 10n ** 9n, t: 10n ** 12n };
const BINARY: Record<string, bigint> = { ki: 2n ** 10n, mi: 2n ** 20n, gi: 2n ** 30n, ti: 2n ** 40n };

/** Prefix ("k", "Mi", "") → multiplier, case-insensitive as tc reads it. */
function prefixFactor(prefix: string): bigint | undefined {
  const p = prefix.toLowerCase();
  return SI[p] ?? BINARY[p];
}

/**
 * Bandwidth unit → bits per second. "bit" families are case-insensitive like tc's.
 * NOTE: tc reads "bps"/"kbps"/"mbps" as BYTES per second; we follow common networking
 * usage (Mbps = megabits/s), as latency_configs/README.md says. Bytes are written "/s"
 * with a capital B: "MB/s", "KiB/s"; "Mb/s" is megabits.
 */
function bandwidthFactor(unit: string): bigint | undefined {
  let m = /^([kmgt]i?)?(?:bit(?:\/s)?|bps)$/i.exec(unit);
  if (m) return prefixFactor(m[1] ?? "");
  m = /^([kmgt]i?)?(B|b)\/s$/i.exec(unit);
  if (!m) return undefined;
  const per = prefixFactor(m[1] ?? "");
  return per === undefined ? undefined : per * (m[2] === "B" ? 8n : 1n);
}

/** "100Mbit", "30 Mbps", "12.5MB/s", "1Gbit" → integer bits per second. */
export function parseBandwidthBps(text: string): number {
  const expected = "bit, kbit, mbit, gbit, tbit, bps, kbps, Mbps, Gbps, B/s, KB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s";
  const { q, factor } = parseWithUnits(text, "bandwidth", "Mbit", bandwidthFactor, expected);
  return scaleExact(q, factor, "bit/s");
}

/** Size unit → bytes. The B must be a capital: "kb" is too easily kilobits. */
function sizeFactor(unit: string): bigint | undefined {
  const m = /^([kmgt]i?)?B$/i.exec(unit);
  if (!m || !unit.endsWith("B")) return undefined;
  return prefixFactor(m[1] ?? "");
}

/** "64KiB", "1.5MB", "1500B" → integer bytes (KB = 1000, KiB = 1024). */
export function parseSizeBytes(text: string): number {
  const { q, factor } = parseWithUnits(text, "size", "B", sizeFactor, "B, KB, MB, GB, KiB, MiB, GiB");
  return scaleExact(q, factor, "bytes");
}

/** "0.1%" → 0.001, "0.25" or 0.25 → 0.25; must lie within [0, 1]. */
export function parseRatio(value: string | number): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new UnitError(`not a number: "${value}"`);
    if (value < 0) throw new UnitError(`negative value ${value}`);
    if (value > 1) throw new UnitError(`ratio ${value} is above 1 (write e.g. 0.1% or 0.001)`);
    return value;
  }
  const q = splitQuantity(value);
  if (q.negative) throw new UnitError(`negative value ${q.text}`);
  if (q.unit !== "" && q.unit !== "%") throw new UnitError(`unknown ratio unit "${q.unit}" (expected % or none)`);
  // Building "digits e -exp" lets Number() round once, correctly, from the exact decimal.
  const ratio = Number(`${q.digits}e-${q.scale + (q.unit === "%" ? 2 : 0)}`);
  if (ratio > 1) throw new UnitError(`ratio ${q.text} is above ${q.unit === "%" ? "100%" : "1"} (write e.g. 0.1% or 0.001)`);
  return ratio;
}

/** n / factor as exact decimal text ("1.5", "50"), trailing zeros dropped. BigInt because
 *  Math.floor(n / factor) in floats can round up for n just below a multiple of factor. */
function exactDecimal(n: number, factor: number): string {
  const big = BigInt(n);
  const f = BigInt(factor);
  const rest = big % f;
  if (rest === 0n) return String(big / f);
  const digits = String(factor).length - 1; // only powers of ten reach here (h, m are whole)
  return `${big / f}.${String(rest).padStart(digits, "0").replace(/0+$/, "")}`;
}

/** The shortest exact text among units; ties go to the form without a decimal point. */
function shortestForm(n: number, units: [string, number][]): string {
  let best = "";
  for (const [unit, factor] of units) {
    const text = exactDecimal(n, factor) + unit;
    const better = best === "" || text.length < best.length || (text.length === best.length && best.includes(".") && !text.includes("."));
    if (better) best = text;
  }
  return best;
}

/** 50_000_000 → "50ms", 1500 → "1.5us", 0 → "0s"; parseDurationNs reads it back exactly. */
export function formatDurationNs(ns: number): string {
  if (!Number.isSafeInteger(ns) || ns < 0) throw new RangeError(`duration must be a non-negative safe integer ns, got ${ns}`);
  if (ns === 0) return "0s";
  const units: [string, number][] = [["ns", 1], ["us", 1e3], ["ms", 1e6], ["s", 1e9]];
  // Minutes and hours only when whole: "1.5m" reads too much like metres.
  if (ns % 3.6e12 === 0) units.push(["h", 3.6e12]);
  else if (ns % 6e10 === 0) units.push(["m", 6e10]);
  return shortestForm(ns, units);
}

/** 30_000_000 → "30Mbit", as tc prints rates; 0 means unlimited and prints "0bit". */
export function formatBandwidthBps(bps: number): string {
  if (!Number.isSafeInteger(bps) || bps < 0) throw new RangeError(`bandwidth must be a non-negative safe integer bit/s, got ${bps}`);
  if (bps === 0) return "0bit";
  return shortestForm(bps, [["bit", 1], ["Kbit", 1e3], ["Mbit", 1e6], ["Gbit", 1e9], ["Tbit", 1e12]]);
}

/**
 * A run's RTC base (`--rtc-base`, QEMU's `-rtc base=`) as epoch seconds: a date
 * YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, read as UTC as QEMU does. null for anything else
 * (`utc`, `localtime`: the host's clock when QEMU started, not known to the nanosecond).
 */
export function rtcBaseEpochS(rtc_base: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2}))?$/.exec(rtc_base);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map((v) => Number(v ?? 0)) as [number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  return Number.isFinite(ms) && ms >= 0 ? ms / 1000 : null;
}
