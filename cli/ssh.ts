// `tapsim ssh N` and `tapsim exec`: commands in the VMs of a running `tapsim run --vms`,
// over the SSH forwards it binds on 127.0.0.1:(port base + node), logged in with the
// user's tapsim key and checked against the run's known_hosts (cli/ssh_target.ts). Output streams as it
// comes; stdin, when it is not a terminal, goes to the command (to every node's, for
// exec), and its end reaches the command as EOF: `tapsim ssh 0 'cat > f' < f` copies f.

import type { Command } from "commander";
import { InputError } from "../engine/errors.js";
import { SshError, sshInteractive, sshStart, type RemoteCommand, type SshTarget } from "../qmp/ssh.js";
import { SSH_PORT_BASE_DEFAULT } from "../qmp/vm_cluster.js";
import { PASSWORD_ENV } from "./guest_password.js";
import { integerListOption, integerOption } from "./options.js";
import { allNodes, nodeTarget, runAccess, type AccessFlags } from "./ssh_target.js";

export interface SshFlags extends AccessFlags {
  timeout: number;
}

interface CommandFlags extends SshFlags {
  /** commander's --no-stdin: false when given. */
  stdin: boolean;
}

interface ExecFlags extends CommandFlags {
  all: boolean;
  node?: number[];
}

/** No run has more VMs. */
export const NODES_PROBED_MAX = 256;
/** Exit status when the command could not be run (connection, timeout) or died by a signal. */
const EXIT_RUNTIME = 1;

/** The options every command that reaches into a run's VMs shares. */
export function sshOptions(cmd: Command): Command {
  return cmd
    .option("--ssh-port-base <port>", "the run's --ssh-port-base", integerOption("--ssh-port-base", 1024, 65535), SSH_PORT_BASE_DEFAULT)
    .option("--user <name>", "guest user (default: the run's, root)")
    .option("--password <p>", `guest password, if the run allows passwords (else $${PASSWORD_ENV}; the key in ~/.tapsim is tried first)`)
    .option("--password-file <file>", "read the guest password from this file");
}

export function registerSsh(program: Command, setExit: (code: number) => void): void {
  sshOptions(
    program
      .command("ssh")
      .description("open a shell (or run CMD) in VM N of a running `tapsim run --vms`; stdin goes to CMD unless it is a terminal")
      .argument("<node>", "node number", integerOption("node", 0, NODES_PROBED_MAX - 1))
      .argument("[cmd...]", "command to run instead of a shell"),
  )
    .option("-n, --no-stdin", "do not send stdin to CMD (it reads EOF)")
    .option("--timeout <ms>", "give up on a command after this long", integerOption("--timeout", 1), 600_000)
    .action(async (node: number, cmd: string[], flags: CommandFlags) => {
      const target = targetFor(flags, node);
      if (cmd.length === 0) setExit(await reportSshErrors(() => sshInteractive(target)));
      else setExit(await reportSshErrors(() => runCommand([node], cmd.join(" "), flags, false)));
    });
  sshOptions(
    program
      .command("exec")
      .description("run CMD in VMs of a running `tapsim run --vms` (--all or --node); stdin goes to every one unless it is a terminal")
      .argument("<cmd...>", "command (put it after --)"),
  )
    .option("-a, --all", "every VM of the run", false)
    .option("--node <ids>", "comma-separated node numbers", integerListOption("--node"))
    .option("-n, --no-stdin", "do not send stdin to CMD (it reads EOF)")
    .option("--timeout <ms>", "give up on a command after this long", integerOption("--timeout", 1), 600_000)
    .action(async (cmd: string[], flags: ExecFlags) => {
      const nodes = await execNodes(flags);
      setExit(await reportSshErrors(() => runCommand(nodes, cmd.join(" "), flags, nodes.length > 1)));
    });
}

/** SSH failures (refused, timeout, lost connection) are runtime errors: one line, exit 1. */
export async function reportSshErrors(work: () => Promise<number>): Promise<number> {
  try {
    return await work();
  } catch (err) {
    if (!(err instanceof SshError)) throw err;
    process.stderr.write(`tapsim: ${err.message}\n`);
    return EXIT_RUNTIME;
  }
}

async function execNodes(flags: ExecFlags): Promise<number[]> {
  if (flags.all === (flags.node !== undefined)) throw new InputError("tapsim exec: give exactly one of --all or --node");
  const nodes = flags.all ? await probeNodes(flags) : flags.node!;
  if (nodes.length === 0) throw new InputError(`tapsim exec: no VM answers on 127.0.0.1:${flags.sshPortBase} (is \`tapsim run --vms\` running with this --ssh-port-base?)`);
  return nodes;
}

/**
 * Runs the command in every node at once. Every command is started before stdin is read,
 * so each gets all of it; a command that ends early stops taking it, and the others go on.
 */
async function runCommand(nodes: number[], command: string, flags: CommandFlags, prefixed: boolean): Promise<number> {
  const sinks = nodes.map((node) => ({ out: new LineSink(process.stdout, prefixed ? `[node${node}] ` : ""), err: new LineSink(process.stderr, prefixed ? `[node${node}] ` : "") }));
  const started = await Promise.allSettled(
    nodes.map((node, i) => sshStart(targetFor(flags, node), command, { timeout_ms: flags.timeout, onStdout: (b) => sinks[i]!.out.write(b), onStderr: (b) => sinks[i]!.err.write(b) })),
  );
  const failed = started.find((s): s is PromiseRejectedResult => s.status === "rejected");
  const cmds = started.filter((s): s is PromiseFulfilledResult<RemoteCommand> => s.status === "fulfilled").map((s) => s.value);
  if (failed) {
    for (const c of cmds) c.close();
    throw failed.reason;
  }
  const stdin = process.stdin;
  const forward = flags.stdin && stdin.isTTY !== true;
  for (const c of cmds) {
    if (forward) stdin.pipe(c.stdin);
    else c.stdin.end();
  }
  try {
    const codes = await Promise.all(
      cmds.map(async (c, i) => {
        try {
          const status = await c.finished;
          return exitCode(status, `node${nodes[i]}`);
        } finally {
          if (forward) stdin.unpipe(c.stdin);
          sinks[i]!.out.flush();
          sinks[i]!.err.flush();
        }
      }),
    );
    return Math.max(...codes);
  } finally {
    for (const c of cmds) c.close();
    // Unread input must not keep the process alive once every command is over.
    if (forward) stdin.destroy();
  }
}

function exitCode(status: { code: number | null; signal: string | null }, label: string): number {
  if (status.code !== null) return status.code;
  process.stderr.write(`tapsim: ${label}: command ended by signal ${status.signal ?? "?"}\n`);
  return EXIT_RUNTIME;
}

/** Passes output on as it comes; with a prefix, whole lines only (the last one at flush). */
class LineSink {
  private partial = "";

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly prefix: string,
  ) {}

  write(chunk: Buffer): void {
    if (this.prefix === "") return void this.stream.write(chunk);
    const text = this.partial + chunk.toString();
    const end = text.lastIndexOf("\n");
    this.partial = text.slice(end + 1);
    if (end < 0) return;
    this.stream.write(
      text
        .slice(0, end)
        .split("\n")
        .map((line) => `${this.prefix}${line}\n`)
        .join(""),
    );
  }

  flush(): void {
    if (this.partial !== "") this.stream.write(`${this.prefix}${this.partial}\n`);
    this.partial = "";
  }
}

export function targetFor(flags: AccessFlags, node: number): SshTarget {
  return nodeTarget(runAccess(flags), node);
}

/** Every VM of the run on this --ssh-port-base (its run-state file says how many). */
export async function probeNodes(flags: AccessFlags): Promise<number[]> {
  return allNodes(runAccess(flags));
}
