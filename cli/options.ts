// Parsing of option values into typed numbers, with errors that name the flag.

import { InputError } from "../engine/errors.js";
import { parseDurationNs, UnitError } from "../engine/units.js";

export function durationOption(flag: string) {
  return (text: string): number => {
    try {
      return parseDurationNs(text);
    } catch (err) {
      if (err instanceof UnitError) throw new InputError(`${flag} ${JSON.stringify(text)}: ${err.message}`);
      throw err;
    }
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

export function integerListOption(flag: string) {
  return (text: string): number[] => {
    if (text.trim() === "") return [];
    return text.split(",").map((part) => integerOption(flag, 0)(part.trim()));
  };
}
