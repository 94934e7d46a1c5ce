// `faults:` of a scenario → the engine's FaultPlan. Each item has `at:` and one action:
//   partition: [[a, b], [c]]   groups (nodes not listed form one more group); heal: true
//   link_down / link_up: {between: [a, b]} | {from: a, to: b} | {from: a} | {to: b} | all
//   link: {<selection>, latency, jitter, bandwidth, loss, queue}     a change of parameters
//   poweroff (or crash) / restart / pause (with for: D, or a later resume) / resume: node(s)
// The items are checked in time order against the state they find (a restart needs a
// powered-off node, a heal a partition, a partition none already) and errors point at them.

import { isMap, isScalar, type YAMLMap } from "yaml";
import { readParams } from "../engine/topology_parse.js";
import type { FaultPlan, LinkChange, NetworkChange, NodeFault } from "../engine/trace_records.js";
import { formatBandwidthBps, formatDurationNs } from "../engine/units.js";
import { describe, readFields, valueOrKey, type Ctx, type Field, type YamlNode } from "../engine/yaml_fields.js";
import type { NodeNames } from "./node_names.js";
import { readBool, readPositiveDuration, readTime, seqItems } from "./values.js";

const NODE_ACTIONS = ["poweroff", "crash", "restart", "pause", "resume"] as const;
const NET_ACTIONS = ["partition", "heal", "link_down", "link_up", "link"] as const;
export const FAULT_ACTION_FIELDS = [...NET_ACTIONS, ...NODE_ACTIONS] as const;
const ITEM_FIELDS = ["at", "for", ...FAULT_ACTION_FIELDS] as const;
const SELECT_FIELDS = ["between", "from", "to", "all"] as const;
const PARAM_FIELDS = ["latency", "jitter", "bandwidth", "loss", "queue"] as const;
const FAULTS_MAX = 100_000;

type Action = (typeof FAULT_ACTION_FIELDS)[number];

interface Item {
  t_ns: number;
  order: number;
  action: Action;
  field: Field;
  item: YamlNode;
  for_ns: number | null;
}

export interface FaultContext {
  /** Faults at or after the run's end never happen: an error. */
  until_ns: number | null;
  inprocess: boolean;
}

export function compileFaults(ctx: Ctx, f: Field, names: NodeNames, o: FaultContext): FaultPlan {
  const items = seqItems(ctx, f, "faults").map((node, k) => readItem(ctx, node, k, o));
  if (items.length > FAULTS_MAX) ctx.fail(f.key, `faults: ${items.length} items; at most ${FAULTS_MAX}`);
  // Time order, file order among equals: the state each item is checked against.
  items.sort((a, b) => a.t_ns - b.t_ns || a.order - b.order);
  const state = new FaultState(ctx, names, o);
  for (const item of items) state.apply(item);
  return state.plan();
}

function readItem(ctx: Ctx, node: YamlNode, k: number, o: FaultContext): Item {
  const where = `faults[${k}]`;
  if (!isMap(node)) ctx.fail(node, `${where}: expected a mapping with at: and one action (${FAULT_ACTION_FIELDS.join(", ")}), got ${describe(node)}`);
  const fields = readFields(ctx, node as YAMLMap, ITEM_FIELDS, where);
  const actions = [...fields.values()].filter((x) => x.name !== "at" && x.name !== "for");
  if (actions.length !== 1) ctx.fail(actions[1]?.key ?? node, `${where}: expected exactly one action (${FAULT_ACTION_FIELDS.join(", ")}), got ${actions.length}`);
  const at = fields.get("at");
  if (at === undefined) ctx.fail(node, `${where}: missing field "at" (the virtual time it happens, such as 10s)`);
  const t_ns = readTime(ctx, at!, `${where}.at`);
  if (o.until_ns !== null && t_ns >= o.until_ns) ctx.fail(valueOrKey(at!), `${where}.at: ${formatDurationNs(t_ns)} is not before the run ends (until ${formatDurationNs(o.until_ns)})`);
  const action = actions[0]!.name as Action;
  const for_field = fields.get("for");
  if (for_field !== undefined && action !== "pause") ctx.fail(for_field.key, `${where}.for: only with pause:`);
  const for_ns = for_field === undefined ? null : readPositiveDuration(ctx, for_field, `${where}.for`);
  return { t_ns, order: k, action, field: actions[0]!, item: node, for_ns };
}

type NodeState = "up" | "down" | "paused";

/** The network and nodes as the faults so far have left them. */
class FaultState {
  private readonly nodes: NodeFault[] = [];
  private readonly network: NetworkChange[] = [];
  private readonly node_state: NodeState[];
  /** Directed links (to * n + from) cut by the active partition, and those cut by link_down. */
  private partitioned: Set<number> | null = null;
  private readonly cut = new Set<number>();
  private readonly pending_resume: { t_ns: number; node: number; where: YamlNode }[] = [];

  constructor(
    private readonly ctx: Ctx,
    private readonly names: NodeNames,
    private readonly o: FaultContext,
  ) {
    this.node_state = names.names.map(() => "up" as NodeState);
  }

  apply(item: Item): void {
    this.resumeDue(item.t_ns);
    switch (item.action) {
      case "partition":
        return this.partition(item);
      case "heal":
        return this.heal(item);
      case "link_down":
      case "link_up":
        return this.linkUpDown(item, item.action === "link_down");
      case "link":
        return this.linkChange(item);
      default:
        return this.nodeAction(item);
    }
  }

  plan(): FaultPlan {
    this.resumeDue(Number.MAX_SAFE_INTEGER);
    this.nodes.sort((a, b) => a.t_ns - b.t_ns || a.node - b.node);
    return { nodes: this.nodes, network: this.network };
  }

  private partition(item: Item): void {
    if (this.partitioned !== null) this.ctx.fail(item.field.key, `faults: partition at ${formatDurationNs(item.t_ns)} overlaps the partition before it (heal that one first)`);
    const groups = this.readGroups(item.field);
    const n = this.names.names.length;
    const group_of = new Array<number>(n).fill(groups.length); // unlisted: one more group
    groups.forEach((g, k) => g.forEach((node) => (group_of[node] = k)));
    const links: number[] = [];
    for (let to = 0; to < n; to++) for (let from = 0; from < n; from++) if (to !== from && group_of[to] !== group_of[from]) links.push(to * n + from);
    this.partitioned = new Set(links);
    const label = groups.map((g) => g.map((id) => this.names.names[id]).join(",")).join(" | ");
    this.pushNet(item.t_ns, "partition", label, links, { down: true });
  }

  private heal(item: Item): void {
    if (!readBool(this.ctx, item.field, "heal")) this.ctx.fail(valueOrKey(item.field), "faults: heal: true is the only form");
    if (this.partitioned === null) this.ctx.fail(item.field.key, `faults: heal at ${formatDurationNs(item.t_ns)} but no partition is in effect then`);
    const links = [...this.partitioned!].filter((l) => !this.cut.has(l));
    this.partitioned = null;
    this.pushNet(item.t_ns, "heal", "", links, { down: false });
  }

  private linkUpDown(item: Item, down: boolean): void {
    const { links, label } = this.readSelection(item.field, item.action, false);
    for (const l of links) (down ? this.cut.add(l) : this.cut.delete(l));
    // A link a partition cuts stays down until the heal.
    const effective = down ? links : links.filter((l) => !(this.partitioned?.has(l) ?? false));
    this.pushNet(item.t_ns, down ? "link_down" : "link_up", label, effective, { down });
  }

  private linkChange(item: Item): void {
    const { links, label, set } = this.readSelection(item.field, "link", true);
    this.pushNet(item.t_ns, "link_change", label, links, set);
  }

  private nodeAction(item: Item): void {
    const nodes = this.names.resolveList(item.field, `faults.${item.action}`);
    const action = item.action === "crash" ? "poweroff" : (item.action as NodeFault["action"]);
    for (const node of nodes) {
      const state = this.node_state[node]!;
      const name = this.names.names[node];
      const when = formatDurationNs(item.t_ns);
      const need: Record<NodeFault["action"], NodeState> = { poweroff: "up", restart: "down", pause: "up", resume: "paused" };
      if (state !== need[action]) this.ctx.fail(item.field.value ?? item.field.key, `faults: ${item.action} ${name} at ${when}, but ${name} is ${state === "down" ? "powered off" : state} then`);
      if (this.o.inprocess && action === "restart") this.ctx.fail(item.field.key, "faults: restart needs VM nodes (an in-process node cannot boot again)");
      this.node_state[node] = action === "poweroff" ? "down" : action === "pause" ? "paused" : "up";
      this.nodes.push({ t_ns: item.t_ns, node, action });
      if (action === "pause" && item.for_ns !== null) this.scheduleResume(item, node);
    }
  }

  private scheduleResume(item: Item, node: number): void {
    const t_ns = item.t_ns + item.for_ns!;
    if (this.o.until_ns !== null && t_ns >= this.o.until_ns) return; // paused to the end
    this.pending_resume.push({ t_ns, node, where: item.field.key });
  }

  /** Resumes from `pause: for:` are items of their own, in time order. */
  private resumeDue(t_ns: number): void {
    this.pending_resume.sort((a, b) => a.t_ns - b.t_ns || a.node - b.node);
    while (this.pending_resume.length > 0 && this.pending_resume[0]!.t_ns <= t_ns) {
      const r = this.pending_resume.shift()!;
      if (this.node_state[r.node] !== "paused") continue;
      this.node_state[r.node] = "up";
      this.nodes.push({ t_ns: r.t_ns, node: r.node, action: "resume" });
    }
  }

  private readGroups(f: Field): number[][] {
    const groups = seqItems(this.ctx, f, "faults.partition").map((g, k) => this.names.resolveList({ name: `${k}`, key: g, value: g }, `faults.partition[${k}]`));
    const seen = new Set<number>();
    for (const g of groups) for (const node of g) {
      if (seen.has(node)) this.ctx.fail(f.value, `faults.partition: node "${this.names.names[node]}" is in two groups`);
      seen.add(node);
    }
    if (groups.length === 0 || (groups.length === 1 && seen.size === this.names.names.length)) this.ctx.fail(f.value, "faults.partition: needs at least two groups (nodes not listed form one more group)");
    return groups;
  }

  /** Which directed links a link fault names, and (for link:) what it sets. */
  private readSelection(f: Field, action: string, with_params: boolean): { links: number[]; label: string; set: LinkChange } {
    const n = this.names.names.length;
    const where = `faults.${action}`;
    const all = (): number[] => Array.from({ length: n * n }, (_, i) => i).filter((i) => Math.floor(i / n) !== i % n);
    if (isScalar(f.value) && f.value.value === "all" && !with_params) return { links: all(), label: "all", set: {} };
    if (!isMap(f.value)) this.ctx.fail(valueOrKey(f), `${where}: expected a mapping {between: [a, b]} or {from: a, to: b} (or all)${with_params ? " with latency/jitter/bandwidth/loss/queue" : ""}, got ${describe(f.value)}`);
    const fields = readFields(this.ctx, f.value as YAMLMap, with_params ? [...SELECT_FIELDS, ...PARAM_FIELDS] : SELECT_FIELDS, where);
    const { links, label } = this.selectedLinks(fields, where, f, all);
    if (!with_params) return { links, label, set: {} };
    const params = readParams(this.ctx, fields, where);
    const set: LinkChange = { ...params.link };
    if (params.latency !== undefined) set.latency_ns = params.latency.value;
    if (params.jitter !== undefined) set.jitter_ns = params.jitter.value;
    if (Object.keys(set).length === 0) this.ctx.fail(f.value, `${where}: says which links but not what changes (latency, jitter, bandwidth, loss, queue)`);
    const what = Object.entries(set).map(([k, v]) => linkValueText(k, v as number)).join(" ");
    return { links, label: `${label} ${what}`, set };
  }

  private selectedLinks(fields: Map<string, Field>, where: string, f: Field, all: () => number[]): { links: number[]; label: string } {
    const n = this.names.names.length;
    const between = fields.get("between");
    const from = fields.get("from");
    const to = fields.get("to");
    if (fields.has("all")) {
      if (between || from || to) this.ctx.fail(fields.get("all")!.key, `${where}: all: true selects every link; drop between/from/to`);
      if (!readBool(this.ctx, fields.get("all")!, `${where}.all`)) this.ctx.fail(fields.get("all")!.value, `${where}.all: only true`);
      return { links: all(), label: "all" };
    }
    if (between) {
      if (from || to) this.ctx.fail(between.key, `${where}: between: or from:/to:, not both`);
      const pair = this.names.resolveList(between, `${where}.between`);
      if (pair.length !== 2) this.ctx.fail(between.value, `${where}.between: expected two nodes [a, b]`);
      const [a, b] = pair as [number, number];
      return { links: [a * n + b, b * n + a], label: `${this.names.names[a]} <-> ${this.names.names[b]}` };
    }
    if (!from && !to) this.ctx.fail(f.value, `${where}: which links? give between: [a, b], from:/to:, or all: true`);
    const froms = from ? this.names.resolveList(from, `${where}.from`) : this.names.names.map((_, i) => i);
    const tos = to ? this.names.resolveList(to, `${where}.to`) : this.names.names.map((_, i) => i);
    const links = tos.flatMap((t) => froms.filter((s) => s !== t).map((s) => t * n + s));
    if (links.length === 0) this.ctx.fail(f.value, `${where}: selects no link (a node has no link to itself)`);
    const side = (ids: number[], given: boolean) => (given ? ids.map((i) => this.names.names[i]).join(",") : "*");
    return { links, label: `${side(froms, !!from)} -> ${side(tos, !!to)}` };
  }

  private pushNet(t_ns: number, action: NetworkChange["action"], label: string, links: number[], set: LinkChange): void {
    const n = this.names.names.length;
    this.network.push({ t_ns, action, label, links: links.map((l) => ({ to: Math.floor(l / n), from: l % n })), set });
  }
}

/** "latency=40ms", "loss=1%", "bandwidth=10Mbit", "queue=100p": the units a scenario is written in. */
function linkValueText(key: string, v: number): string {
  if (key.endsWith("_ns")) return `${key.slice(0, -3)}=${formatDurationNs(v)}`;
  if (key === "bandwidth_bps") return `bandwidth=${formatBandwidthBps(v)}`;
  if (key === "loss_rate") return `loss=${+(v * 100).toPrecision(6)}%`;
  if (key === "queue_packets_max") return `queue=${v}p`;
  if (key === "queue_bytes_max") return `queue=${v}B`;
  return `${key}=${v}`;
}
