// Reading YAML (and JSON, parsed by the same YAML 1.2 parser so positions agree) with
// every error located "file:line:column: message" and one line long: the topology and
// scenario parsers share it.

import {
  LineCounter, parseDocument, isAlias, isMap, isScalar, isSeq,
  type Document, type Node as YamlNode, type Scalar, type YAMLMap,
} from "yaml";
import { InputError, locatedMessage } from "./errors.js";
import { UnitError } from "./units.js";

export type { YamlNode };

/** Locates nodes in the text being parsed and throws located InputErrors. */
export class Ctx {
  constructor(
    readonly text: string,
    readonly source: string,
    readonly baseDir: string,
    private readonly lc: LineCounter,
    readonly doc: Document,
  ) {}

  failAt(offset: number, message: string): never {
    const { line, col } = this.lc.linePos(Math.max(0, Math.min(offset, this.text.length)));
    // Quoted user text may hold line breaks (block scalars); the message stays one line.
    throw new InputError(locatedMessage(this.source, line, col, message.replace(/\r?\n/g, "\\n")));
  }

  fail(node: YamlNode | null | undefined, message: string): never {
    return this.failAt(node?.range?.[0] ?? 0, message);
  }

  /** Aliases (*x) read as the node they name; errors then point at the anchor. */
  deref(node: unknown): YamlNode | null {
    if (isAlias(node)) return (node.resolve(this.doc) as YamlNode | undefined) ?? null;
    return (node as YamlNode | null) ?? null;
  }

  /** The text of a scalar as written ("50" stays "50", "0.10" stays "0.10"). */
  sourceText(node: Scalar): string {
    if (typeof node.value === "string") return node.value;
    const [start, end] = node.range ?? [0, 0];
    return this.text.slice(start, end).trim();
  }
}

export interface Field { name: string; key: YamlNode; value: YamlNode | null }

export function describe(node: YamlNode | null): string {
  if (node === null) return "nothing";
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (isScalar(node)) {
    if (node.value === null) return "nothing";
    const text = String(node.value);
    const short = text.length > 40 ? `${text.slice(0, 40)}…` : text;
    return typeof node.value === "string" ? `"${short}"` : short;
  }
  return "something else";
}

/** Edit distance counting a swap of neighbours as one edit (typos are often swaps). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidate a typo most likely meant: about one edit per four letters at most. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  return bestD <= Math.max(1, Math.floor(word.length / 4)) ? best : undefined;
}

export function readFields(ctx: Ctx, map: YAMLMap, allowed: readonly string[], where: string, hint: (name: string) => string = () => `expected ${allowed.join(", ")}`): Map<string, Field> {
  const fields = new Map<string, Field>();
  for (const pair of map.items) {
    const key = ctx.deref(pair.key);
    if (!isScalar(key) || typeof key.value !== "string") ctx.fail(key, `${where}: field names must be words, got ${describe(key)}`);
    const name = key.value as string;
    if (!allowed.includes(name)) {
      const guess = closest(name, allowed);
      ctx.fail(key, `${where}: unknown field "${name}" (${guess ? `did you mean "${guess}"?` : hint(name)})`);
    }
    // A field with nothing after the colon has no value node; point just past the key.
    const value = ctx.deref(pair.value) ?? null;
    fields.set(name, { name, key, value });
  }
  return fields;
}

export function valueOrKey(f: Field): YamlNode {
  return f.value ?? f.key;
}

/** A scalar's text for unit parsing, or a type error naming what was expected. */
export function scalarText(ctx: Ctx, f: Field, where: string, expected: string): string {
  const v = f.value;
  if (!isScalar(v) || v.value === null || typeof v.value === "boolean") {
    ctx.fail(valueOrKey(f), `${where}.${f.name}: expected ${expected}, got ${describe(v)}`);
  }
  return ctx.sourceText(v as Scalar);
}

/** Runs a unit parser; its UnitError becomes a located error naming the field. */
export function withUnits<T>(ctx: Ctx, f: Field, where: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof UnitError) ctx.fail(valueOrKey(f), `${where}.${f.name}: ${e.message}`);
    throw e;
  }
}

/** The document's root mapping; a syntax error, an empty file or another root is a located error naming `fields`. */
export function parseYamlRoot(text: string, source: string, lc: LineCounter, what: string, fields: readonly string[]): { doc: Document; root: YAMLMap } {
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const locate = (offset: number, message: string): InputError => {
    const { line, col } = lc.linePos(Math.max(0, Math.min(offset, text.length)));
    return new InputError(locatedMessage(source, line, col, message));
  };
  const err = doc.errors[0];
  if (err) throw locate(err.pos[0], `syntax error: ${err.message.split("\n")[0]!.replace(/\s+at line \d+, column \d+:?$/, "")}`);
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) {
    throw locate(0, `empty ${what} (expected fields ${fields.join(", ")})`);
  }
  if (!isMap(root)) throw locate(root.range?.[0] ?? 0, `expected a mapping with fields ${fields.join(", ")}, got ${describe(root as YamlNode)}`);
  return { doc, root };
}

