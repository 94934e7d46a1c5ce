// The debugger's command language: one line in, lines of text out (deterministic: no wall
// times), over a DebugSession. The REPL (cli/debug.ts) and the tests share it.

import { InputError } from "../../engine/errors.js";
import { RECORD_KIND_NAMES, RecordKind } from "../../engine/trace_records.js";
import { formatVirtualNs, parseDurationNs, UnitError } from "../../engine/units.js";
import { describeRecord, formatMs, frameSummary, quoteText } from "../describe.js";
import { decodeFrame, hexDump } from "../frame_decode.js";
import { parseOutputPattern } from "./console.js";
import { parseFrameFilter, FILTER_KEYS } from "./filter.js";
import { frameOf, recordKindByName, type Breakpoint, type DebugSession, type Stop } from "./session.js";

export const COMMANDS = ["step", "next", "continue", "back", "break", "delete", "watch", "info", "frame", "goto", "where", "help", "quit"];
export const COMPLETIONS: Record<string, string[]> = {
  break: ["time", "node", "kind", "frame", "output", "fault"],
  info: ["clocks", "queues", "node", "breakpoints"],
  watch: ["node"],
};
const ALIASES: Record<string, string> = { s: "step", n: "next", c: "continue", b: "break", q: "quit", exit: "quit", bt: "where", w: "where" };
const WHERE_RECORDS = 3;

export const HELP = [
  "step [n]            execute the next n records (default 1); breakpoints do not stop a step",
  "next                run to the next record about the current record's node",
  "continue            run to the next breakpoint or watch, or the end",
  "back [n]            go n records back (re-executes the engine from the start to record index-n)",
  "goto TIME           go to the first record at or after TIME (1.5ms, 2s, 250us)",
  "break time T        stop at the first record at or after virtual time T",
  "break node N        stop at records about node N",
  `break kind K        stop at records of kind K (${Object.values(RECORD_KIND_NAMES).join(", ")})`,
  "break frame F...    stop at frame records matching all of src=N dst=N proto=udp|tcp|icmp|arp port=P ip=A mac=M bytes=HEX",
  "break output RE     stop when a node prints a line matching the regular expression RE (the rest of the",
  "                    command, spaces included; /RE/i for flags; a line printed in pieces is joined)",
  "break output node N RE   the same for node N only",
  "break fault [node N]     stop at scheduled faults and network changes (node N's faults only)",
  "delete [id]         delete breakpoint id (all without one)",
  "watch node N        stop when node N's clock changes",
  "info clocks         every node's clock, wake and earliest inbox time",
  "info queues         frames waiting in each inbox; link transmit queues",
  "info node N         one node: clock, inbox, links out of it, the last lines it printed",
  "info breakpoints    list breakpoints and watches",
  "frame [id]          decode a frame seen so far (default: the current record's, management frames included)",
  "where               records around the cursor",
  "help, quit",
  "The state shown (info) is the engine's own after the current record took effect: frames a",
  "slice emitted are routed once its slice_end is written, so they show in inboxes from then on.",
];

export type CommandResult = { lines: string[]; quit: boolean };

export async function runCommand(session: DebugSession, line: string): Promise<CommandResult> {
  const words = line.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return { lines: [], quit: false };
  const cmd = ALIASES[words[0]!] ?? words[0]!;
  const args = words.slice(1);
  switch (cmd) {
    case "step":
      return moved(session, await session.step(count(args[0], "step")));
    case "next":
      return moved(session, await session.next());
    case "continue":
      return moved(session, await session.continue());
    case "back":
      return moved(session, await session.back(count(args[0], "back")));
    case "goto":
      if (args.length !== 1) throw new InputError("goto: give one time, e.g. goto 1.5ms");
      return moved(session, await session.goto(duration(args[0]!, "goto")));
    case "break": {
      const spec = args[0] === "output" ? outputSpec(line) : breakSpec(session, args);
      return done([describeBreakpoint(session.addBreakpoint(spec), "set")]);
    }
    case "watch":
      if (args[0] !== "node" || args.length !== 2) throw new InputError("watch: usage: watch node N");
      return done([describeBreakpoint(session.addBreakpoint({ kind: "watch", node: nodeArg(args[1]!) }), "set")]);
    case "delete": {
      const n = session.deleteBreakpoint(args[0] === undefined ? undefined : nodeArg(args[0]));
      return done([args[0] === undefined ? `deleted ${n} breakpoint(s)` : `deleted breakpoint ${args[0]}`]);
    }
    case "info":
      return done(info(session, args));
    case "frame":
      return done(frameLines(session, args[0]));
    case "where":
      return done(await where(session));
    case "help":
      return done(HELP);
    case "quit":
      return { lines: [], quit: true };
    default:
      throw new InputError(`unknown command ${JSON.stringify(words[0])} (help lists them)`);
  }
}

/** Completions for a partial line (readline's completer). */
export function complete(line: string): string[] {
  const words = line.split(/\s+/);
  if (words.length <= 1) return COMMANDS.filter((c) => c.startsWith(words[0] ?? ""));
  const options = COMPLETIONS[ALIASES[words[0]!] ?? words[0]!] ?? [];
  const last = words.at(-1)!;
  const pool = words[0] === "break" && words[1] === "frame" ? FILTER_KEYS : words.length === 2 ? options : [];
  return pool.filter((o) => o.startsWith(last));
}

function done(lines: string[]): CommandResult {
  return { lines, quit: false };
}

function moved(session: DebugSession, stop: Stop): CommandResult {
  const lines = stop.hit.map((b) => `${describeBreakpoint(b, "hit")}`);
  if (stop.at === null) lines.push("at start (no record executed)");
  else lines.push(`#${stop.at.index} ${describeRecord(stop.at.record)}`);
  if (stop.reason === "end" || session.atEnd) lines.push(`end of trace (${session.position} records)`);
  return done(lines);
}

function count(text: string | undefined, what: string): number {
  if (text === undefined) return 1;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new InputError(`${what}: count must be a positive integer, got ${JSON.stringify(text)}`);
  return Number(text);
}

function nodeArg(text: string): number {
  if (!/^\d+$/.test(text)) throw new InputError(`expected a number, got ${JSON.stringify(text)}`);
  return Number(text);
}

function duration(text: string, what: string): number {
  try {
    return parseDurationNs(text);
  } catch (err) {
    if (err instanceof UnitError) throw new InputError(`${what}: ${JSON.stringify(text)}: ${err.message}`);
    throw err;
  }
}

function breakSpec(session: DebugSession, args: string[]) {
  const [what, ...rest] = args;
  if (what === "time" && rest.length === 1) return { kind: "time" as const, t_ns: duration(rest[0]!, "break time") };
  if (what === "node" && rest.length === 1) return { kind: "node" as const, node: nodeArg(rest[0]!) };
  if (what === "kind" && rest.length === 1) {
    const k = recordKindByName(rest[0]!);
    if (k === undefined) throw new InputError(`break kind: unknown kind ${JSON.stringify(rest[0])} (${Object.values(RECORD_KIND_NAMES).join(", ")})`);
    return { kind: "kind" as const, record_kind: k };
  }
  if (what === "fault" && rest.length === 0) return { kind: "fault" as const };
  if (what === "fault" && rest.length === 2 && rest[0] === "node") return { kind: "fault" as const, node: nodeArg(rest[1]!) };
  if (what === "frame") {
    const filter = parseFrameFilter(rest);
    if (filter.src !== undefined) session.checkNode(filter.src);
    if (filter.dst !== undefined) session.checkNode(filter.dst);
    return { kind: "frame" as const, filter, text: rest.join(" ") };
  }
  throw new InputError("break: usage: break time T | node N | kind K | frame key=value... | output [node N] RE | fault [node N]");
}

/** "break output [node N] RE": RE is the rest of the line as typed (it may hold spaces). */
function outputSpec(line: string) {
  const m = /^\s*\S+\s+output(?:\s+node\s+(\d+))?\s+(\S.*?)\s*$/.exec(line);
  // "break output node 1" alone is a forgotten pattern more likely than a search for "node 1" (/node 1/ finds that).
  if (!m || (m[1] === undefined && /^node\s+\d+$/.test(m[2]!))) throw new InputError("break output: usage: break output [node N] RE (a regular expression, e.g. break output node 1 ping|pong)");
  const pattern = parseOutputPattern(m[2]!);
  return m[1] === undefined ? { kind: "output" as const, pattern } : { kind: "output" as const, pattern, node: Number(m[1]) };
}

export function describeBreakpoint(b: Breakpoint, verb: "set" | "hit" | "list"): string {
  const what =
    b.kind === "time" ? `time >= ${formatVirtualNs(b.t_ns)}`
    : b.kind === "node" ? `node ${b.node}`
    : b.kind === "kind" ? `kind ${RECORD_KIND_NAMES[b.record_kind]}`
    : b.kind === "frame" ? `frame ${b.text}`
    : b.kind === "output" ? `output ${String(b.pattern)}${b.node === undefined ? "" : ` on node ${b.node}`}`
    : b.kind === "fault" ? `fault${b.node === undefined ? "" : ` on node ${b.node}`}`
    : `node ${b.node} clock`;
  const noun = b.kind === "watch" ? "watch" : "breakpoint";
  return verb === "list" ? `${b.id}  ${noun}  ${what}` : `${noun} ${b.id} (${what}) ${verb}`;
}

function t(ns: number): string {
  return formatVirtualNs(ns);
}

function info(session: DebugSession, args: string[]): string[] {
  const [what, arg] = args;
  if (what === "clocks") return session.state().nodes.map((_, i) => clockLine(session, i));
  if (what === "queues") return queues(session, null);
  if (what === "node" && arg !== undefined) {
    const node = nodeArg(arg);
    session.checkNode(node);
    return [clockLine(session, node), ...queues(session, node), ...consoleLines(session, node)];
  }
  if (what === "breakpoints") return session.breakpoints.length === 0 ? ["no breakpoints"] : session.breakpoints.map((b) => describeBreakpoint(b, "list"));
  throw new InputError("info: usage: info clocks | queues | node N | breakpoints");
}

function clockLine(session: DebugSession, i: number): string {
  const n = session.state().nodes[i]!;
  const name = session.header.config.nodes[i]!.name;
  const state = n.run_state === "down" ? " powered off" : n.run_state === "paused" ? " paused" : n.alive ? "" : " exited";
  return `node ${i} ${name}: clock=${t(n.clock_ns)} wake=${t(n.wake_ns)} inbox=${t(n.inbox_ns)}${state}`;
}

/** Inbox contents and link transmit queues (all nodes, or one node's inbox and outgoing links). */
function queues(session: DebugSession, only: number | null): string[] {
  const state = session.state();
  const lines: string[] = [];
  state.inbox.forEach((frames, node) => {
    if (only !== null && node !== only) return;
    if (frames.length === 0 && only === null) return;
    lines.push(`inbox of node ${node}: ${frames.length} frame(s) waiting`);
    for (const f of frames) lines.push(`  frame ${f.frame_id} from ${f.from}: sent ${t(f.sent_ns)}, due ${t(f.t_ns)} (latency ${formatMs(f.t_ns - f.sent_ns)}), ${f.length}B`);
  });
  if (only === null && lines.length === 0) lines.push("every inbox is empty");
  for (const l of state.links) {
    if (only !== null && l.from !== only) continue;
    const busy = l.packets > 0 || only !== null;
    if (!busy) continue;
    lines.push(`link ${l.from}->${l.to}${l.down ? " (down)" : ""}: ${l.packets} frame(s) ${l.bytes}B queued at the sender (clock ${t(state.nodes[l.from]!.clock_ns)}), transmitter free at ${t(l.tx_free_ns)}, last delivery ${t(l.last_delivery_ns)}`);
  }
  return lines;
}

/** The node's last console lines (for a VM node, or any node that printed). */
function consoleLines(session: DebugSession, node: number): string[] {
  const c = session.console(node);
  if (c.empty) return session.header.config.nodes[node]!.backend === "vm" ? [`console of node ${node}: nothing printed yet`] : [];
  const lines = c.last();
  return [`console of node ${node} (last ${lines.length} line(s)):`, ...lines.map((l) => `  ${quoteText(l)}`)];
}

function frameLines(session: DebugSession, arg: string | undefined): string[] {
  const r = session.at?.record;
  if (arg === undefined && r !== undefined && (r[0] === RecordKind.MgmtIn || r[0] === RecordKind.MgmtOut)) return mgmtLines(r[0], r[1], r[2], r[3]);
  const id = arg === undefined ? (session.at === null ? null : frameOf(session.at.record)) : nodeArg(arg);
  if (id === null) throw new InputError("frame: the current record is not about a frame; give a frame id");
  const f = session.frame(id);
  if (f === undefined) throw new InputError(`frame ${id}: not seen yet (frames are known from their frame_emit on)`);
  const d = decodeFrame(f.bytes);
  const lines = [`frame ${id}: sent by node ${f.from} at ${t(f.sent_ns)}, ${f.bytes.length} bytes: ${d.summary}`];
  for (const o of f.outcomes) lines.push(`  #${o.index} ${describeRecord(o.record)}`);
  lines.push(...layerLines(f.bytes));
  return lines;
}

/** A management frame: it has no id and never travels a simulated link, so its own record is all there is. */
function mgmtLines(kind: number, node: number, t_ns: number, bytes: Uint8Array): string[] {
  const way = kind === RecordKind.MgmtIn ? `host -> node ${node}` : `node ${node} -> host`;
  return [`management frame (${way}) at ${t(t_ns)}, ${bytes.length} bytes: ${frameSummary(bytes)}`, ...layerLines(bytes)];
}

function layerLines(bytes: Uint8Array): string[] {
  const lines: string[] = [];
  try {
    for (const layer of decodeFrame(bytes).layers) lines.push(`  ${layer.name}: ${layer.fields.map(([k, v]) => `${k}=${v}`).join(" ")}`);
  } catch {
    // frameSummary has said what is wrong; the hex dump still shows the bytes
  }
  lines.push(...hexDump(bytes).split("\n"));
  return lines;
}

async function where(session: DebugSession): Promise<string[]> {
  const { done, ahead } = await session.around(WHERE_RECORDS + 1, WHERE_RECORDS);
  const lines = done.map((e, k) => `${k === done.length - 1 ? "=>" : "  "} #${e.index} ${describeRecord(e.record)}`);
  if (done.length === 0) lines.push("=> (start)");
  for (const a of ahead) lines.push(`   #${a.index} ${describeRecord(a.record)}`);
  return lines;
}

export { RecordKind };
