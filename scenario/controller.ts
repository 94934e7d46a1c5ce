// Runs a scenario's commands in VM nodes: wraps each node's backend, and before each of its
// slices hands the guest agent the commands due in it (at their exact virtual times, through
// the gate), after it reads what the agent reported (starts, exits) and the console lines,
// and decides what comes next: commands `after:` an exit, kills at a timeout, the `until:`
// condition, and the collection of files at the end. Every decision depends only on the
// scenario and on the nodes' recorded outputs, so a rerun makes the same decisions.

import type { NodeBackend, NodeControl, SliceOutput, SliceRequest, SliceResult } from "../engine/backend.js";
import type { RunEndReason, ScenarioCommand, ScenarioRunConfig } from "../engine/trace_records.js";
import { LineSplitter } from "./metrics.js";

/** What the controller needs of a VM node (qmp/vm_backend.ts). */
export interface AgentNode extends NodeBackend {
  runCommand(t_ns: number, id: string, command: string): void;
  killCommand(t_ns: number, id: string): void;
  collectFile(t_ns: number, guest_path: string): void;
  takeCollected(): CollectedFile[];
}

export interface CollectedFile {
  node: number;
  guest_path: string;
  bytes: Buffer | null;
  error: string | null;
}

/** The guest's ready line: init prints it once the agent listens (guest/init.sh), so commands may be sent from then on. */
const AGENT_READY_RE = /^tapsim-guest: ready\b/;

type Phase = "running" | "collecting" | "done";

interface CommandState {
  readonly spec: ScenarioCommand;
  /** When it may start (null: waiting for the command it comes after). */
  due_ns: number | null;
  sent_ns: number | null;
  started_ns: number | null;
  exited: boolean;
  killed: boolean;
}

export interface ControllerEvents {
  /** The until condition was met (or collection finished): end the run with this reason. */
  stop(reason: RunEndReason, detail: string): void;
  /** A line for the person watching (command started/exited); optional. */
  log?(line: string): void;
}

export class ScenarioController {
  readonly collected: CollectedFile[] = [];
  phase: Phase = "running";
  /** Why the run is ending (set once the until condition is met). */
  end_detail: string | null = null;
  private readonly commands: CommandState[];
  private readonly by_id = new Map<string, CommandState>();
  private readonly ready: boolean[];
  /** Per node: its console cut into lines the way results.ts cuts it, so `until: output` sees the lines the metrics see. */
  private readonly consoles: LineSplitter[];
  /** Virtual time of the console record being split (the lines it completes are dated by it). */
  private console_t_ns = 0;
  private readonly collect_sent: boolean[];
  /** Powered off (a command not yet sent there waits for a restart, or never runs). */
  private readonly down: boolean[];
  private collect_waiting = 0;
  private readonly patterns: { node: number; re: RegExp; text: string }[];

  constructor(
    private readonly run: ScenarioRunConfig,
    private readonly node_count: number,
    private readonly events: ControllerEvents,
  ) {
    this.commands = run.commands.map((spec) => ({ spec, due_ns: spec.at_ns, sent_ns: null, started_ns: null, exited: false, killed: false }));
    for (const c of this.commands) this.by_id.set(c.spec.id, c);
    this.ready = new Array<boolean>(node_count).fill(false);
    this.consoles = Array.from({ length: node_count }, (_, node) => this.consoleFor(node));
    this.collect_sent = new Array<boolean>(node_count).fill(false);
    this.down = new Array<boolean>(node_count).fill(false);
    this.patterns = run.until.output.map((o) => ({ node: o.node, re: new RegExp(o.pattern), text: o.pattern }));
  }

  /** The node's backend, with the scenario around it. */
  wrap(node: number, inner: AgentNode): NodeBackend {
    if (!(node >= 0 && node < this.node_count)) throw new RangeError(`no node ${node}`);
    return {
      kind: inner.kind,
      runSlice: (request) => this.runSlice(node, inner, request),
      control: (c) => this.control(node, inner, c),
      close: () => inner.close?.(),
    };
  }

  /**
   * The until duration was reached (only the controller sees it when files are still to be
   * collected: the engine then runs without a duration). Ends like any until condition.
   */
  durationReached(): void {
    this.conditionMet("until duration reached");
  }

  private async runSlice(node: number, inner: AgentNode, request: SliceRequest): Promise<SliceResult> {
    const marks: SliceOutput[] = [];
    const until_ns = this.run.until.duration_ns;
    if (until_ns !== null && request.start_ns >= until_ns) this.durationReached();
    if (this.ready[node]) this.sendDue(node, inner, request, marks);
    const pending = inner.runSlice(request);
    const result = pending instanceof Promise ? await pending : pending;
    this.observe(node, result);
    if (this.phase === "collecting") this.takeCollected(inner);
    if (marks.length === 0) return result;
    // Keep the outputs in time order: the marks say when each agent message went in.
    const outputs = [...result.outputs, ...marks].sort((a, b) => a.t_ns - b.t_ns);
    return { ...result, outputs };
  }

  private async control(node: number, inner: AgentNode, c: NodeControl): Promise<void> {
    if (c.action === "poweroff" || c.action === "restart") {
      // The agent (and every command it ran) is gone with the guest; a restarted guest
      // says when its new agent listens.
      this.ready[node] = false;
      this.consoles[node] = this.consoleFor(node); // a half line of the old guest is no line
      this.down[node] = c.action === "poweroff";
      if (c.action === "poweroff") for (const s of this.commands) if (s.spec.node === node && s.sent_ns !== null && !s.exited) s.exited = true;
      if (c.action === "poweroff" && this.collect_sent[node]) this.abandonCollect(node);
    }
    await inner.control?.(c);
    if (c.action === "poweroff") this.checkAllExited();
  }

  /** Commands, kills and collect requests due before the slice's end, at their times (never before its start). */
  private sendDue(node: number, inner: AgentNode, request: SliceRequest, marks: SliceOutput[]): void {
    for (const s of this.commands) {
      if (s.spec.node !== node) continue;
      if (s.sent_ns === null && s.due_ns !== null && s.due_ns < request.end_ns && this.phase === "running") {
        const t_ns = Math.max(s.due_ns, request.start_ns);
        inner.runCommand(t_ns, s.spec.id, s.spec.run);
        s.sent_ns = t_ns;
        marks.push({ kind: "mark", t_ns, text: `scenario: run ${s.spec.id}` });
      }
      const kill_ns = s.started_ns !== null && s.spec.timeout_ns !== null ? s.started_ns + s.spec.timeout_ns : null;
      if (kill_ns !== null && !s.exited && !s.killed && kill_ns < request.end_ns) {
        const t_ns = Math.max(kill_ns, request.start_ns);
        inner.killCommand(t_ns, s.spec.id);
        s.killed = true;
        marks.push({ kind: "mark", t_ns, text: `scenario: timeout ${s.spec.id}` });
      }
    }
    if (this.phase === "collecting" && !this.collect_sent[node]) {
      this.collect_sent[node] = true;
      for (const c of this.run.collect) {
        if (c.node !== node) continue;
        inner.collectFile(request.start_ns, c.guest_path);
        marks.push({ kind: "mark", t_ns: request.start_ns, text: `scenario: collect ${c.guest_path}` });
      }
    }
  }

  private observe(node: number, result: SliceResult): void {
    for (const out of result.outputs) {
      if (out.kind === "command") this.commandEvent(node, out.event, out.id, out.t_ns, out.detail);
      else if (out.kind === "guest_output") {
        this.console_t_ns = result.end_ns;
        this.consoles[node]!.push(out.text);
      }
    }
    if (this.phase === "running") this.checkAllExited();
  }

  private commandEvent(node: number, event: "start" | "exit", id: string, t_ns: number, detail: string): void {
    const s = this.by_id.get(id);
    if (s === undefined || s.spec.node !== node) return; // not ours (a guest may print anything)
    if (event === "start") {
      s.started_ns ??= t_ns;
      this.events.log?.(`${id}: started at t=${t_ns}`);
      return;
    }
    if (s.exited) return;
    s.exited = true;
    this.events.log?.(`${id}: exited (${detail}) at t=${t_ns}`);
    for (const d of this.commands) {
      if (d.spec.after === id && d.due_ns === null) d.due_ns = t_ns + d.spec.delay_ns;
    }
  }

  private consoleFor(node: number): LineSplitter {
    return new LineSplitter((line) => this.consoleLine(node, line));
  }

  private consoleLine(node: number, line: string): void {
    if (AGENT_READY_RE.test(line)) this.ready[node] = true;
    if (this.phase !== "running") return;
    const hit = this.patterns.find((p) => p.node === node && p.re.test(line));
    if (hit) this.conditionMet(`node ${node} printed a line matching /${hit.text}/ at t=${this.console_t_ns}`);
  }

  private checkAllExited(): void {
    if (this.phase !== "running" || !this.run.until.all_exited) return;
    // A command whose node is powered off and never got it counts as over (it may never run).
    if (this.commands.every((s) => s.exited || (s.sent_ns === null && this.down[s.spec.node]))) this.conditionMet("all commands exited");
  }

  /** The run ends as "condition" (replay then ends where the trace says, like an interrupted run). */
  private conditionMet(detail: string): void {
    if (this.phase !== "running") return;
    this.end_detail = detail;
    if (this.run.collect.length === 0) {
      this.phase = "done";
      this.events.stop("condition", detail);
      return;
    }
    this.phase = "collecting";
    this.collect_waiting = this.run.collect.length;
    this.events.log?.(`${detail}: collecting ${this.collect_waiting} file(s)`);
  }

  private takeCollected(inner: AgentNode): void {
    for (const file of inner.takeCollected()) {
      this.collected.push(file);
      this.collect_waiting -= 1;
    }
    this.finishCollecting();
  }

  /** A node powered off while collecting answers nothing more: its files are missing. */
  private abandonCollect(node: number): void {
    for (const c of this.run.collect) {
      if (c.node !== node || this.collected.some((f) => f.node === node && f.guest_path === c.guest_path)) continue;
      this.collected.push({ node, guest_path: c.guest_path, bytes: null, error: "node powered off" });
      this.collect_waiting -= 1;
    }
    this.finishCollecting();
  }

  private finishCollecting(): void {
    if (this.phase !== "collecting" || this.collect_waiting > 0) return;
    this.phase = "done";
    this.events.stop("condition", `${this.end_detail}; collected ${this.collected.length} file(s)`);
  }
}
