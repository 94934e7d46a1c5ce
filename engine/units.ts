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
