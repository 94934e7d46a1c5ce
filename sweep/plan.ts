// A sweep file: one scenario and the points to run it at. Each point sets values in the
// scenario's YAML document by path (Document.setIn keeps every other line, comment and
// anchor as written) and is parsed by scenario/parse.ts like any scenario file, so every
// point is checked before anything runs, and every mistake is one located line (exit 2):
// in the sweep file when a point's value or path is at fault.

import path from "node:path";
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type YAMLMap } from "yaml";
import { InputError } from "../engine/errors.js";
import { readInputText } from "../engine/input_file.js";
import { Ctx, describe, parseYamlRoot, readFields, scalarText, valueOrKey, type Field, type YamlNode } from "../engine/yaml_fields.js";
import { parseScenario, type Scenario, type ScenarioDefaults } from "../scenario/parse.js";
import { readId, seqItems } from "../scenario/values.js";

const SWEEP_FIELDS = ["name", "scenario", "grid", "points"] as const;
/** A sweep is run point by point by people waiting for it: more is a mistake, not a sweep. */
export const POINTS_MAX = 10_000;
const PATH_SEGMENTS_MAX = 16;
/** A point's directory name: "<index>-<slug>", the slug cut here. */
const SLUG_CHARS_MAX = 48;

/** One step of a value path: a field name, or an index into a list. */
export type PathSegment = string | number;

export interface SweepParam {
  /** As written: "workload.messages", "faults[1].at". */
  path: string;
  segments: PathSegment[];
}

export interface SweepPoint {
  index: number;
  /** "points/<index>-<slug>", relative to the sweep directory. */
  dir: string;
  /** Path -> value (plain JSON), in the order of `params`. */
  values: Record<string, unknown>;
  /** The point's scenario, every value applied. */
  text: string;
}

export interface SweepPlan {
  source: string;
  name: string;
  /** The scenario file as the point runs name it (relative to the working directory): paths in it resolve against its folder. */
  scenario_source: string;
  params: SweepParam[];
  points: SweepPoint[];
  /** The first point parsed: what kind of run every point is (kind, node count, memory). */
  first: Scenario;
}

/** One value of one path, and where the sweep file says it (for located errors). */
interface Setting {
  param: SweepParam;
  value: unknown;
  /** Names the value in a slug when it is not a short scalar ("faults#2"). */
  choice: number;
  node: YamlNode;
}

export function loadSweepFile(file: string, defaults: ScenarioDefaults): SweepPlan {
  return parseSweep(readInputText(file), file, defaults);
}

export function parseSweep(text: string, source: string, defaults: ScenarioDefaults): SweepPlan {
  const lc = new LineCounter();
  const { doc, root } = parseYamlRoot(text, source, lc, "sweep file", SWEEP_FIELDS);
  const ctx = new Ctx(text, source, path.dirname(source), lc, doc);
  const fields = readFields(ctx, root, SWEEP_FIELDS, "top level");
  const scenario_field = fields.get("scenario");
  if (scenario_field === undefined) ctx.fail(root, "top level: missing field \"scenario\" (the scenario file to sweep, relative to this file)");
  const scenario_text_path = scalarText(ctx, scenario_field!, "top level", "a scenario file path");
  const scenario_source = path.isAbsolute(scenario_text_path) ? scenario_text_path : path.join(ctx.baseDir, scenario_text_path);
  if (!fields.has("grid") && !fields.has("points")) ctx.fail(root, "top level: give grid: (path -> list of values) and/or points: (a list of path -> value)");
  const grid = fields.has("grid") ? readGrid(ctx, fields.get("grid")!) : [];
  const listed = fields.has("points") ? readPoints(ctx, fields.get("points")!) : [[]];
  const combos = combinations(ctx, root, listed, grid);
  const params = paramsOf([...listed, ...grid]);
  const scenario_text = readScenarioText(ctx, scenario_field!, scenario_source);
  const base = parseScenario(scenario_text, scenario_source, defaults); // its own errors, located in it
  if (base.vm?.ssh === true) ctx.fail(valueOrKey(scenario_field!), "scenario: vm.ssh: true; a sweep's points run closed-world (vm.ssh: false), side by side");
  const scenario_doc = parseDocument(scenario_text, { uniqueKeys: true });
  const points: SweepPoint[] = [];
  let first: Scenario | null = null;
  for (const [index, settings] of combos.entries()) {
    const point_text = applySettings(ctx, scenario_doc, settings);
    const scenario = parsePoint(ctx, scenario_doc, scenario_source, point_text, settings, index, defaults);
    if (scenario.vm?.ssh === true) ctx.fail(settings.find((s) => s.param.path.startsWith("vm"))?.node ?? root, `point ${index}: vm.ssh: true; a sweep's points run closed-world`);
    if (first !== null && (scenario.workload === null) !== (first.workload === null)) ctx.fail(settings[0]!.node, `point ${index}: VM and in-process points in one sweep (its points share one kind of run)`);
    first ??= scenario;
    const values = Object.fromEntries(params.map((p) => [p.path, settings.find((s) => s.param.path === p.path)?.value ?? null]));
    points.push({ index, dir: `points/${index}-${slugOf(settings)}`, values, text: point_text });
  }
  const name = fields.has("name") ? readId(ctx, fields.get("name")!, "name") : path.basename(source).replace(/\.(ya?ml|json)$/i, "");
  return { source, name, scenario_source, params, points, first: first! };
}

function readScenarioText(ctx: Ctx, f: Field, file: string): string {
  try {
    return readInputText(file);
  } catch (err) {
    if (err instanceof InputError) ctx.fail(valueOrKey(f), `scenario: ${err.message}`);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------
// grid, points, paths

function readGrid(ctx: Ctx, f: Field): Setting[][] {
  if (!isMap(f.value)) ctx.fail(valueOrKey(f), `grid: expected a mapping of value path -> list of values (seed: [1, 2, 3]), got ${describe(f.value)}`);
  const axes: Setting[][] = [];
  for (const pair of (f.value as YAMLMap).items) {
    const key = ctx.deref(pair.key)!;
    const param = readPath(ctx, key);
    if (axes.some((a) => a[0]!.param.path === param.path)) ctx.fail(key, `grid: "${param.path}" is given twice`);
    const list = ctx.deref(pair.value);
    if (!isSeq(list) || list.items.length === 0) ctx.fail(list ?? key, `grid.${param.path}: expected a non-empty list of values, got ${describe(list)}`);
    axes.push(list.items.map((item, choice) => setting(ctx, param, ctx.deref(item) ?? list, choice)));
  }
  if (axes.length === 0) ctx.fail(f.value, "grid: empty (give at least one path and its values)");
  return axes;
}

function readPoints(ctx: Ctx, f: Field): Setting[][] {
  return seqItems(ctx, f, "points").map((item, k) => {
    if (!isMap(item)) ctx.fail(item, `points[${k}]: expected a mapping of value path -> value ({seed: 2, workload.messages: 5}), got ${describe(item)}`);
    const settings: Setting[] = [];
    for (const pair of (item as YAMLMap).items) {
      const key = ctx.deref(pair.key)!;
      const param = readPath(ctx, key);
      if (settings.some((s) => s.param.path === param.path)) ctx.fail(key, `points[${k}]: "${param.path}" is given twice`);
      settings.push(setting(ctx, param, ctx.deref(pair.value) ?? key, k));
    }
    if (settings.length === 0) ctx.fail(item, `points[${k}]: empty (give at least one path: value)`);
    return settings;
  });
}

function setting(ctx: Ctx, param: SweepParam, node: YamlNode, choice: number): Setting {
  const value = isScalar(node) || isMap(node) || isSeq(node) ? node.toJSON() : null;
  if (value === null || value === undefined) ctx.fail(node, `${param.path}: expected a value, got ${describe(node)}`);
  return { param, value, choice, node };
}

/** "workload.messages", "faults[1].at", "seed": names joined by dots, list indexes in brackets. */
export function readPath(ctx: Ctx, key: YamlNode): SweepParam {
  if (!isScalar(key) || typeof key.value !== "string") ctx.fail(key, `expected a value path such as workload.messages or faults[1].at, got ${describe(key)}`);
  const text = key.value as string;
  const segments: PathSegment[] = [];
  const re = /^(?:\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d{1,6})\])/;
  let rest = text;
  for (let k = 0; k < PATH_SEGMENTS_MAX && rest !== ""; k++) {
    const m = re.exec(rest);
    if (m === null || (k === 0 && (m[0].startsWith(".") || m[2] !== undefined))) break;
    segments.push(m[1] ?? Number(m[2]));
    rest = rest.slice(m[0].length);
  }
  if (rest !== "" || segments.length === 0) ctx.fail(key, `"${text}": not a value path (field names joined by dots, list indexes in brackets: workload.messages, faults[1].at; at most ${PATH_SEGMENTS_MAX} steps)`);
  return { path: text, segments };
}

/** Every listed point at every combination of the grid (the grid's first path varies slowest). */
function combinations(ctx: Ctx, root: YamlNode, listed: Setting[][], axes: Setting[][]): Setting[][] {
  const count = axes.reduce((n, a) => n * a.length, listed.length);
  if (count > POINTS_MAX) ctx.fail(root, `${count} points; at most ${POINTS_MAX}`);
  let out: Setting[][] = listed;
  for (const axis of axes) out = out.flatMap((settings) => axis.map((s) => [...settings, s]));
  for (const settings of out) {
    const seen = new Set<string>();
    for (const s of settings) {
      if (seen.has(s.param.path)) ctx.fail(s.node, `"${s.param.path}" is set by both points: and grid:`);
      seen.add(s.param.path);
    }
  }
  return out;
}

/** The paths any point sets, listed points' first, then the grid's: the merged table's parameter columns. */
function paramsOf(groups: Setting[][]): SweepParam[] {
  const params = new Map<string, SweepParam>();
  for (const settings of groups) for (const s of settings) if (!params.has(s.param.path)) params.set(s.param.path, s.param);
  return [...params.values()];
}

// ---------------------------------------------------------------------------------------
// applying a point

function applySettings(ctx: Ctx, base: Document, settings: readonly Setting[]): string {
  const doc = base.clone();
  for (const s of settings) {
    checkPath(ctx, doc, s);
    doc.setIn(s.param.segments, doc.createNode(s.value));
  }
  return String(doc);
}

/** Lists are indexed within their length, and only mappings are walked into by name. */
function checkPath(ctx: Ctx, doc: Document, s: Setting): void {
  const segs = s.param.segments;
  for (let k = 0; k < segs.length; k++) {
    const parent = k === 0 ? doc.contents : doc.getIn(segs.slice(0, k), true);
    const where = k === 0 ? "the scenario's top level" : `${pathText(segs.slice(0, k))}`;
    if (parent === undefined || parent === null) {
      if (typeof segs[k] === "number") ctx.fail(s.node, `${s.param.path}: the scenario has no list ${where}`);
      return; // setIn makes the missing mappings; the scenario parser then checks the field names
    }
    const seg = segs[k]!;
    if (typeof seg === "number") {
      if (!isSeq(parent)) ctx.fail(s.node, `${s.param.path}: ${where} is not a list in the scenario`);
      const length = (parent as { items: unknown[] }).items.length;
      if (seg >= length) ctx.fail(s.node, `${s.param.path}: ${where} has ${length} item(s) in the scenario (indexes from 0)`);
    } else if (!isMap(parent)) {
      ctx.fail(s.node, `${s.param.path}: ${where} is ${describe(parent as YamlNode)} in the scenario, not a mapping (set ${where} whole instead)`);
    }
  }
}

function pathText(segs: readonly PathSegment[]): string {
  return segs.map((s, k) => (typeof s === "number" ? `[${s}]` : k === 0 ? s : `.${s}`)).join("");
}

/**
 * The point's scenario parsed; its error is located at the sweep value to blame: the one
 * that fails on its own, else the point's first value.
 */
function parsePoint(ctx: Ctx, base: Document, source: string, text: string, settings: readonly Setting[], index: number, defaults: ScenarioDefaults): Scenario {
  try {
    return parseScenario(text, source, defaults);
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    const alone = settings.find((s) => failsAlone(ctx, base, source, s, defaults));
    const blamed = alone ?? settings[0]!;
    const message = err.message.startsWith(`${source}:`) ? `scenario line ${err.message.slice(source.length + 1)}` : err.message;
    ctx.fail(blamed.node, `point ${index} (${pointText(settings)}): ${message}`);
  }
}

function failsAlone(ctx: Ctx, base: Document, source: string, s: Setting, defaults: ScenarioDefaults): boolean {
  try {
    parseScenario(applySettings(ctx, base, [s]), source, defaults);
    return false;
  } catch (err) {
    if (err instanceof InputError) return true;
    throw err;
  }
}

export function pointText(settings: readonly { param: SweepParam; value: unknown }[]): string {
  return settings.map((s) => `${s.param.path}=${valueText(s.value)}`).join(", ");
}

/** A value as a table cell or CSV field: scalars as they are, lists and mappings as JSON. */
export function valueText(value: unknown): string {
  if (value === null || value === undefined) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

/** "seed1-messages5": each path's last name and its value; lists and mappings by their place in the sweep ("faults#1"). */
function slugOf(settings: readonly Setting[]): string {
  const parts = settings.map((s) => {
    const last = [...s.param.segments].reverse().find((seg) => typeof seg === "string") ?? "v";
    const short = isScalar(s.node) ? path.basename(String(s.value)).replace(/\.(ya?ml|json|txt)$/i, "") : `#${s.choice}`;
    return `${last}${short}`;
  });
  const slug = parts.join("-").replace(/[^A-Za-z0-9._#-]+/g, "_").replace(/#/g, "");
  return slug.slice(0, SLUG_CHARS_MAX).replace(/[-_.]+$/, "") || "point";
}
