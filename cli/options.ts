// Parsing of option values into typed numbers, with errors that name the flag.

import { InputError } from "../engine/errors.js";
import { parseDurationNs, UnitError } from "../engine/units.js";
import { isRtcBase, RTC_BASE_EXPECTED } from "../qmp/qemu_values.js";

/** A duration flag; `min_ns` 1 for lengths that cannot be zero (--slice-max). */
export function durationOption(flag: string, min_ns = 0) {
  return (text: string): number => {
    let ns: number;
    try {
      ns = parseDurationNs(text);
    } catch (err) {
      if (err instanceof UnitError) throw new InputError(`${flag} ${JSON.stringify(text)}: ${err.message}`);
      throw err;
    }
    if (ns < min_ns) throw new InputError(`${flag} ${JSON.stringify(text)}: must be at least ${min_ns} ns`);
    return ns;
  };
}

export function integerOption(flag: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (text: string): number => {
    const value = Number(text);
    if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new InputError(`${flag} ${JSON.stringify(text)}: expected an integer within ${min}..${max}`);
    }
    return value;
  };
}

/** Comma-separated distinct integers ("1,4"); a repeated one is a typo, not a count. */
export function integerListOption(flag: string) {
  return (text: string): number[] => {
    if (text.trim() === "") return [];
    const values = text.split(",").map((part) => integerOption(flag, 0)(part.trim()));
    const seen = new Set<number>();
    for (const v of values) {
      if (seen.has(v)) throw new InputError(`${flag} ${JSON.stringify(text)}: ${v} is listed twice`);
      seen.add(v);
    }
    return values;
  };
}

/** A guest RTC base as QEMU's -rtc base= takes it; checked here so that a typo fails before any VM starts. */
export function rtcBaseOption(flag: string) {
  return (text: string): string => {
    if (!isRtcBase(text)) throw new InputError(`${flag} ${JSON.stringify(text)}: ${RTC_BASE_EXPECTED}`);
    return text;
  };
}
