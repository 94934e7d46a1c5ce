// Virtual-time axis: tick steps of 1, 2 or 5 x 10^k ns, labelled in the unit that suits the
// step (ns, µs, ms, s), so a label never shows more digits than the zoom can resolve.

const UNITS: Array<[number, string]> = [
  [1e9, "s"],
  [1e6, "ms"],
  [1e3, "µs"],
  [1, "ns"],
];

/** The smallest 1/2/5 x 10^k step at least `raw_ns` long. */
export function niceStepNs(raw_ns: number): number {
  if (!(raw_ns > 0)) return 1;
  const pow = 10 ** Math.floor(Math.log10(raw_ns));
  for (const m of [1, 2, 5, 10]) if (m * pow >= raw_ns) return Math.max(1, m * pow);
  return Math.max(1, 10 * pow);
}

/** The unit for labels of ticks `step_ns` apart: the largest that needs at most one decimal ("0.5 ms", not "500 µs"). */
export function unitFor(step_ns: number): [number, string] {
  for (const u of UNITS) if (step_ns >= u[0] / 10) return u;
  return [1, "ns"];
}

/** A tick label: enough decimals to tell ticks `step_ns` apart, unit last. */
export function formatTick(t_ns: number, step_ns: number): string {
  const [scale, name] = unitFor(step_ns);
  const decimals = Math.max(0, Math.min(9, Math.ceil(-Math.log10(step_ns / scale) - 1e-9)));
  return `${(t_ns / scale).toFixed(decimals)} ${name}`;
}

/** A duration or instant for people: "12.345678 ms", exact to the ns below 1 s. */
export function formatNs(t_ns: number): string {
  const a = Math.abs(t_ns);
  if (a >= 1e9) return `${(t_ns / 1e9).toFixed(9)} s`;
  if (a >= 1e6) return `${(t_ns / 1e6).toFixed(6)} ms`;
  if (a >= 1e3) return `${(t_ns / 1e3).toFixed(3)} µs`;
  return `${t_ns} ns`;
}
