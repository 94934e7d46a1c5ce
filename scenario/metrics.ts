// The pieces `results.ts` builds metrics from: console text cut into lines, the first capture
// group of a pattern read as a number, and a bounded sample of values with nearest-rank
// percentiles. Memory is bounded per node (one partial line) and per aggregate (a sample).

import { InputError } from "../engine/errors.js";
import { Prng } from "../engine/prng.js";

/** Longer lines are cut here before matching (a console that never prints a newline stays bounded). */
export const LINE_CHARS_MAX = 64 * 1024;
/** Values kept per aggregate for percentiles; beyond it a uniform sample of this size is kept. */
export const VALUES_KEPT_MAX = 1 << 20;

/**
 * Cuts a stream of text pieces into lines: "\n" ends a line, a "\r" before it is dropped
 * (consoles write "\r\n"), a line may span pieces, and the text after the last "\n" is a
 * line of its own at end(). Lines longer than LINE_CHARS_MAX are cut (counted in `lines_cut`).
 */
export class LineSplitter {
  lines_cut = 0;
  private partial = "";
  private partial_cut = false;

  constructor(private readonly onLine: (line: string) => void) {}

  push(text: string): void {
    let from = 0;
    // Each pass consumes one "\n" or the rest of the text: at most text.length + 1 passes.
    for (;;) {
      const nl = text.indexOf("\n", from);
      if (nl < 0) {
        this.append(text.slice(from));
        return;
      }
      this.append(text.slice(from, nl));
      this.emit();
      from = nl + 1;
    }
  }

  /** The last line when the text did not end with a newline. */
  end(): void {
    if (this.partial !== "" || this.partial_cut) this.emit();
  }

  private append(piece: string): void {
    const room = LINE_CHARS_MAX - this.partial.length;
    if (piece.length <= room) {
      this.partial += piece;
      return;
    }
    this.partial += piece.slice(0, room);
    this.partial_cut = true;
  }

  private emit(): void {
    let line = this.partial;
    let end = line.length;
    while (end > 0 && line.charCodeAt(end - 1) === 13) end--;
    if (end < line.length) line = line.slice(0, end);
    if (this.partial_cut) this.lines_cut += 1;
    this.partial = "";
    this.partial_cut = false;
    this.onLine(line);
  }
}

/** A metric's pattern compiled; an invalid one (or one without a capture group) is a one-line InputError. */
export function compilePattern(metric_name: string, pattern: string): RegExp {
  let re: RegExp;
  try {
    re = new RegExp(pattern);
  } catch (err) {
    throw new InputError(`metric ${JSON.stringify(metric_name)}: invalid pattern ${JSON.stringify(pattern)}: ${(err as Error).message.replace(/[\r\n]+/g, " ")}`);
  }
  // An alternative that matches the empty string shows how many groups the pattern has.
  const groups = new RegExp(`${pattern}|`).exec("")!.length - 1;
  if (groups < 1) throw new InputError(`metric ${JSON.stringify(metric_name)}: pattern ${JSON.stringify(pattern)} has no capture group (its first group is the value)`);
  return re;
}

/** A decimal number, optionally signed, with an exponent: what Number() reads, without "", "0x10", "Infinity". */
const NUMBER_TEXT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

export type LineValue = { kind: "none" } | { kind: "value"; value: number } | { kind: "unparsable" };

/** The pattern's first capture group on `line`: no match, a number, or a match that is no number. */
export function lineValue(re: RegExp, line: string): LineValue {
  const m = re.exec(line);
  if (m === null) return { kind: "none" };
  const text = m[1]?.trim();
  if (text === undefined || !NUMBER_TEXT.test(text)) return { kind: "unparsable" };
  const value = Number(text);
  return Number.isFinite(value) ? { kind: "value", value } : { kind: "unparsable" };
}

export interface ValueStats {
  count: number;
  /** null when count is 0. */
  mean: number | null;
  p50: number | null;
  p99: number | null;
  min: number | null;
  max: number | null;
  /** false when more than VALUES_KEPT_MAX values came: p50 and p99 are then those of a uniform sample (count, mean, min, max stay exact). */
  percentiles_exact: boolean;
}

/**
 * count, sum, min, max of every value, and the values themselves up to `kept_max`; past
 * that a uniform reservoir sample (algorithm R, seeded: the same trace gives the same result).
 */
export class ValueSample {
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;
  private values = new Float64Array(64);
  private kept = 0;
  private readonly prng: Prng;

  constructor(
    stream: number,
    private readonly kept_max = VALUES_KEPT_MAX,
  ) {
    if (!(kept_max >= 1)) throw new RangeError(`kept_max must be at least 1, got ${kept_max}`);
    this.prng = new Prng(0, stream);
  }

  add(value: number): void {
    this.count += 1;
    this.sum += value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    if (this.kept < this.kept_max) {
      if (this.kept === this.values.length) this.grow();
      this.values[this.kept++] = value;
      return;
    }
    const slot = this.prng.nextBelow(this.count);
    if (slot < this.kept_max) this.values[slot] = value;
  }

  stats(): ValueStats {
    if (this.count === 0) return { count: 0, mean: null, p50: null, p99: null, min: null, max: null, percentiles_exact: true };
    const sorted = this.values.slice(0, this.kept).sort();
    return {
      count: this.count,
      mean: this.sum / this.count,
      p50: nearestRank(sorted, 50),
      p99: nearestRank(sorted, 99),
      min: this.min,
      max: this.max,
      percentiles_exact: this.count === this.kept,
    };
  }

  private grow(): void {
    const next = new Float64Array(Math.min(this.values.length * 2, this.kept_max));
    next.set(this.values);
    this.values = next;
  }
}

/** Nearest-rank percentile: the smallest value with at least p% of the values at or below it, sorted[ceil(p * n / 100) - 1]. */
export function nearestRank(sorted: Float64Array, p: number): number {
  if (sorted.length === 0 || !(p > 0 && p <= 100)) throw new RangeError(`nearestRank needs values and 0 < p <= 100 (got ${sorted.length} values, p ${p})`);
  // p * n is an exact integer, so the division rounds once and ceil sees the exact rank.
  return sorted[Math.ceil((p * sorted.length) / 100) - 1]!;
}
