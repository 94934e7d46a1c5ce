// Scheduled faults (RunConfig.faults), checked once when the engine is built and compiled
// into what the run loop needs: per node its faults in time order, per directed link the
// values it takes from each change on (a step list the link walks as its sender's clock
// passes them), and a lookahead that stays safe under every one of those values. Checking
// up front means a bad plan fails before the first slice, not at t = 10 min into a VM run.

import type { NodeBackend } from "./backend.js";
import { InputError } from "./errors.js";
import { checkLinkParams, type Link, type Topology } from "./topology.js";
import type { FaultPlan, LinkChange, NetworkChange, NodeFault } from "./trace_records.js";
import { formatVirtualNs } from "./units.js";

export const NODE_FAULT_ACTIONS = ["poweroff", "restart", "pause", "resume"] as const;
export const NETWORK_CHANGE_ACTIONS = ["partition", "heal", "link_down", "link_up", "link_change"] as const;
const LINK_CHANGE_KEYS = ["down", "latency_ns", "jitter_ns", "bandwidth_bps", "loss_rate", "queue_packets_max", "queue_bytes_max"] as const;

/** A link's parameters from t_ns on (until its next step). */
export interface LinkStep {
  readonly t_ns: number;
  readonly link: Link;
  /** Frames sent while down are dropped (link_down). */
  readonly down: boolean;
}

export interface CompiledFaults {
  /** Per node, its faults in time order. */
  readonly node_faults: readonly (readonly NodeFault[])[];
  readonly has_node_faults: boolean;
  readonly network: readonly NetworkChange[];
  /** Per directed link a change touches (index to * node_count + from): its steps in time order. */
  readonly link_steps: ReadonlyMap<number, readonly LinkStep[]>;
  /** The lookahead safe under every value a link takes (null: no link changes, the topology's own). */
  readonly lookahead: { readonly flat_ns: Float64Array; readonly into_min_ns: Float64Array } | null;
}

type NodeRunState = "up" | "down" | "paused";

/** Checks a plan against the topology and the backends; one-line InputErrors say what is wrong. */
export function compileFaults(plan: FaultPlan | undefined, topology: Topology, backends: readonly NodeBackend[]): CompiledFaults {
  if (plan === undefined) return { node_faults: [], has_node_faults: false, network: [], link_steps: new Map(), lookahead: null };
  if (typeof plan !== "object" || plan === null || !Array.isArray(plan.nodes) || !Array.isArray(plan.network)) {
    throw new InputError("faults: expected { nodes: [...], network: [...] }");
  }
  const node_faults = compileNodeFaults(plan.nodes, topology, backends);
  const link_steps = compileNetwork(plan.network, topology);
  return {
    node_faults,
    has_node_faults: plan.nodes.length > 0,
    network: plan.network,
    link_steps,
    lookahead: link_steps.size === 0 ? null : lookaheadUnder(topology, link_steps),
  };
}

function compileNodeFaults(faults: readonly NodeFault[], topology: Topology, backends: readonly NodeBackend[]): NodeFault[][] {
  const n = topology.node_count;
  const per_node: NodeFault[][] = Array.from({ length: n }, () => []);
  const state: NodeRunState[] = new Array<NodeRunState>(n).fill("up");
  faults.forEach((f, i) => {
    const where = `faults: node fault ${i}`;
    if (typeof f !== "object" || f === null) throw new InputError(`${where}: expected { t_ns, node, action }`);
    checkTime(f.t_ns, where);
    if (!(Number.isInteger(f.node) && f.node >= 0 && f.node < n)) throw new InputError(`${where}: node ${f.node} does not exist (nodes 0..${n - 1})`);
    if (!(NODE_FAULT_ACTIONS as readonly string[]).includes(f.action)) {
      throw new InputError(`${where}: unknown action ${JSON.stringify(f.action)} (${NODE_FAULT_ACTIONS.join(", ")})`);
    }
    const what = `${where} (${f.action} node ${f.node} ${topology.spec.node_names[f.node]} at ${formatVirtualNs(f.t_ns)})`;
    const prev = faults[i - 1];
    if (prev !== undefined && (f.t_ns < prev.t_ns || (f.t_ns === prev.t_ns && f.node < prev.node))) {
      throw new InputError(`${what}: node faults must be sorted by (t_ns, node)`);
    }
    const last = per_node[f.node]!.at(-1);
    if (last !== undefined && last.t_ns === f.t_ns) throw new InputError(`${what}: node ${f.node} already has a ${last.action} at that time`);
    state[f.node] = nextState(state[f.node]!, f.action, what);
    checkBackend(backends[f.node]!, f.action, what);
    per_node[f.node]!.push(f);
  });
  return per_node;
}

/** A node's faults follow up -(poweroff)-> down -(restart)-> up and up -(pause)-> paused -(resume)-> up. */
function nextState(state: NodeRunState, action: NodeFault["action"], what: string): NodeRunState {
  if (state === "up" && action === "poweroff") return "down";
  if (state === "up" && action === "pause") return "paused";
  if (state === "down" && action === "restart") return "up";
  if (state === "paused" && action === "resume") return "up";
  const hint =
    action === "restart" ? "restart only follows a poweroff"
    : action === "resume" ? "resume only follows a pause"
    : state === "paused" ? "resume it first"
    : "restart it first";
  throw new InputError(`${what}: the node is ${state === "up" ? "running" : state === "down" ? "powered off" : "paused"} then (${hint})`);
}

function checkBackend(backend: NodeBackend, action: NodeFault["action"], what: string): void {
  const kind = backend.kind === "inprocess" ? "in-process" : backend.kind;
  if (backend.control === undefined) throw new InputError(`${what}: ${kind} nodes take no node faults`);
  if (backend.control_actions !== undefined && !backend.control_actions.includes(action)) {
    throw new InputError(`${kind} nodes cannot ${action}: ${what.replace(/^faults: /, "")} (they can ${backend.control_actions.join(", ")})`);
  }
}

function compileNetwork(changes: readonly NetworkChange[], topology: Topology): Map<number, LinkStep[]> {
  const n = topology.node_count;
  const steps = new Map<number, LinkStep[]>();
  changes.forEach((c, i) => {
    const where = `faults: network change ${i}`;
    if (typeof c !== "object" || c === null) throw new InputError(`${where}: expected { t_ns, action, label, links, set }`);
    checkTime(c.t_ns, where);
    const what = `${where} (${c.action} at ${formatVirtualNs(c.t_ns)})`;
    if (!(NETWORK_CHANGE_ACTIONS as readonly string[]).includes(c.action)) {
      throw new InputError(`${where}: unknown action ${JSON.stringify(c.action)} (${NETWORK_CHANGE_ACTIONS.join(", ")})`);
    }
    const prev = changes[i - 1];
    if (prev !== undefined && c.t_ns < prev.t_ns) throw new InputError(`${what}: network changes must be sorted by t_ns`);
    if (typeof c.label !== "string") throw new InputError(`${what}: label must be a string`);
    checkLinkChange(c.set, what);
    if (!Array.isArray(c.links)) throw new InputError(`${what}: links must be a list of { to, from }`);
    for (const l of c.links) {
      const ok = typeof l === "object" && l !== null && Number.isInteger(l.to) && Number.isInteger(l.from) && l.to >= 0 && l.to < n && l.from >= 0 && l.from < n && l.to !== l.from;
      if (!ok) throw new InputError(`${what}: link ${JSON.stringify(l)} names no link between two distinct nodes of 0..${n - 1}`);
      const index = l.to * n + l.from;
      let list = steps.get(index);
      if (list === undefined) {
        list = [];
        steps.set(index, list);
      }
      const before = list.at(-1) ?? { t_ns: 0, link: topology.link(l.to as Link["to"], l.from as Link["from"]), down: false };
      list.push(stepAfter(before, c, what));
    }
  });
  return steps;
}

function checkLinkChange(set: LinkChange, what: string): void {
  if (typeof set !== "object" || set === null) throw new InputError(`${what}: set must be an object`);
  for (const key of Object.keys(set)) {
    if (!(LINK_CHANGE_KEYS as readonly string[]).includes(key)) throw new InputError(`${what}: set.${key} is no link parameter (${LINK_CHANGE_KEYS.join(", ")})`);
  }
  if (set.down !== undefined && typeof set.down !== "boolean") throw new InputError(`${what}: set.down must be true or false`);
  if (set.latency_ns !== undefined && !(Number.isSafeInteger(set.latency_ns) && set.latency_ns >= 0)) {
    throw new InputError(`${what}: set.latency_ns must be a non-negative integer, got ${set.latency_ns}`);
  }
}

function stepAfter(before: LinkStep, c: NetworkChange, what: string): LinkStep {
  const l = before.link;
  const s = c.set;
  const latency_ns = s.latency_ns ?? l.latency_ns;
  const jitter_ns = s.jitter_ns ?? l.jitter_ns;
  // The same literal shape as Topology.link(): the per-frame link model reads it.
  const link: Link = {
    to: l.to,
    from: l.from,
    latency_ns: latency_ns as Link["latency_ns"],
    lookahead_ns: (latency_ns - jitter_ns) as Link["lookahead_ns"],
    jitter_ns,
    bandwidth_bps: s.bandwidth_bps ?? l.bandwidth_bps,
    loss_rate: s.loss_rate ?? l.loss_rate,
    queue_packets_max: s.queue_packets_max ?? l.queue_packets_max,
    queue_bytes_max: s.queue_bytes_max ?? l.queue_bytes_max,
  };
  const on = `${what}: link to ${l.to} from ${l.from}`;
  checkLinkParams(on, link);
  if (!(link.lookahead_ns > 0)) {
    throw new InputError(`${on}: latency ${latency_ns} ns minus jitter ${jitter_ns} ns must be > 0 (conservative scheduling needs a positive lookahead)`);
  }
  return { t_ns: c.t_ns, link, down: s.down ?? before.down };
}

/**
 * Each changed link's lookahead is the smallest latency - jitter it ever has: the scheduler
 * then never lets a receiver run past a frame that a later, faster link value could bring.
 */
function lookaheadUnder(topology: Topology, link_steps: ReadonlyMap<number, readonly LinkStep[]>): { flat_ns: Float64Array; into_min_ns: Float64Array } {
  const n = topology.node_count;
  const flat_ns = topology.lookahead_ns_flat.slice();
  const into_min_ns = topology.lookahead_into_min_ns.slice();
  for (const [index, steps] of link_steps) {
    for (const step of steps) flat_ns[index] = Math.min(flat_ns[index]!, step.link.lookahead_ns);
    const to = Math.floor(index / n);
    into_min_ns[to] = Math.min(into_min_ns[to]!, flat_ns[index]!);
  }
  return { flat_ns, into_min_ns };
}

function checkTime(t_ns: number, where: string): void {
  if (!(Number.isSafeInteger(t_ns) && t_ns >= 0)) throw new InputError(`${where}: t_ns must be a non-negative integer, got ${t_ns}`);
}
