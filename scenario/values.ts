// Scalar values of a scenario file, read with located one-line errors.

import { isScalar, isSeq, type YAMLSeq } from "yaml";
import { parseDurationNs, parseSizeBytes } from "../engine/units.js";
import { describe, scalarText, valueOrKey, withUnits, type Ctx, type Field, type YamlNode } from "../engine/yaml_fields.js";

const ID_RE = /^[A-Za-z0-9._-]{1,64}$/;

export function seqItems(ctx: Ctx, f: Field, where: string): YamlNode[] {
  if (!isSeq(f.value)) ctx.fail(valueOrKey(f), `${where}: expected a list, got ${describe(f.value)}`);
  return (f.value as YAMLSeq).items.map((item) => ctx.deref(item) as YamlNode);
}

export function readInt(ctx: Ctx, f: Field, where: string, min: number, max: number): number {
  const v = f.value;
  const n = isScalar(v) && typeof v.value === "number" ? v.value : NaN;
  if (!(Number.isSafeInteger(n) && n >= min && n <= max)) ctx.fail(valueOrKey(f), `${where}: expected an integer within ${min}..${max}, got ${describe(v)}`);
  return n;
}

export function readIntList(ctx: Ctx, f: Field, where: string): number[] {
  return seqItems(ctx, f, where).map((item, k) => readInt(ctx, { name: `${k}`, key: item, value: item }, `${where}[${k}]`, 0, 2 ** 31));
}

export function readStringList(ctx: Ctx, f: Field, where: string): string[] {
  const items = isSeq(f.value) ? seqItems(ctx, f, where) : [f.value];
  return items.map((item, k) => scalarText(ctx, { name: `${k}`, key: item ?? f.key, value: item ?? null }, where, "a string"));
}

export function readBool(ctx: Ctx, f: Field, where: string): boolean {
  const v = f.value;
  if (!(isScalar(v) && typeof v.value === "boolean")) ctx.fail(valueOrKey(f), `${where}: expected true or false, got ${describe(v)}`);
  return (v as { value: boolean }).value;
}

export function readId(ctx: Ctx, f: Field, where: string): string {
  const text = scalarText(ctx, f, where, "a name");
  if (!ID_RE.test(text)) ctx.fail(valueOrKey(f), `${where}: "${text}" must be 1-64 letters, digits, '.', '_' or '-'`);
  return text;
}

export function readDuration(ctx: Ctx, f: Field, where: string): number {
  const text = isScalar(f.value) && typeof f.value.value === "number" ? `${f.value.value}` : scalarText(ctx, f, where, "a duration such as 10s");
  if (/^\s*\d+(\.\d*)?\s*$/.test(text) && text.trim() !== "0") ctx.fail(valueOrKey(f), `${where}: ${text} needs a unit (ns, us, ms, s, m, h)`);
  // withUnits names the field itself: give it the place the field is in.
  const parent = where.endsWith(`.${f.name}`) ? where.slice(0, -(f.name.length + 1)) : where;
  return withUnits(ctx, f, parent, () => parseDurationNs(text));
}

/** A virtual time: a duration since the run's start (negative is the past: an error). */
export function readTime(ctx: Ctx, f: Field, where: string): number {
  const text = isScalar(f.value) ? String(f.value.value ?? "") : "";
  if (/^\s*-/.test(text)) ctx.fail(valueOrKey(f), `${where}: ${text.trim()} is in the past (virtual time starts at 0 when the run starts)`);
  return readDuration(ctx, f, where);
}

export function readPositiveDuration(ctx: Ctx, f: Field, where: string): number {
  const ns = readTime(ctx, f, where);
  if (ns <= 0) ctx.fail(valueOrKey(f), `${where}: must be longer than 0`);
  return ns;
}

export function readMemoryMib(ctx: Ctx, f: Field, where: string): number {
  const v = f.value;
  if (isScalar(v) && typeof v.value === "number") return readInt(ctx, f, where, 64, 65536);
  const bytes = withUnits(ctx, f, where, () => parseSizeBytes(scalarText(ctx, f, where, "a size such as 256MiB")));
  const mib = bytes / (1024 * 1024);
  if (!(Number.isInteger(mib) && mib >= 64 && mib <= 65536)) ctx.fail(valueOrKey(f), `${where}: expected whole MiB within 64MiB..64GiB, got ${bytes} bytes`);
  return mib;
}


/** One of a fixed set of words. */
export function readChoice<T extends string>(ctx: Ctx, f: Field, where: string, choices: readonly T[]): T {
  const v = f.value;
  const text = isScalar(v) && typeof v.value === "string" ? v.value : null;
  if (text === null || !(choices as readonly string[]).includes(text)) ctx.fail(valueOrKey(f), `${where}: expected one of ${choices.join(", ")}, got ${describe(v)}`);
  return text as T;
}
