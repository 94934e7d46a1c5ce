// `tapsim ssh N` and `tapsim exec`: commands in the VMs of a running `tapsim run --vms`,
// over the SSH forwards it binds on 127.0.0.1:(port base + node).

import { connect } from "node:net";
import type { Command } from "commander";
import { InputError } from "../engine/errors.js";
import { sshExec, sshInteractive, type SshTarget } from "../qmp/ssh.js";
import { SSH_PORT_BASE_DEFAULT } from "../qmp/vm_cluster.js";
import { integerListOption, integerOption } from "./options.js";

interface SshFlags {
  sshPortBase: number;
  user: string;
  password: string;
  timeout: number;
}

interface ExecFlags extends SshFlags {
  all: boolean;
  node?: number[];
}

/** Probing stops here: no run has this many VMs. */
const NODES_PROBED_MAX = 256;

export function registerSsh(program: Command, setExit: (code: number) => void): void {
  const common = (cmd: Command) =>
    cmd
      .option("--ssh-port-base <port>", "the run's --ssh-port-base", integerOption("--ssh-port-base", 1024, 65535), SSH_PORT_BASE_DEFAULT)
      .option("--user <name>", "guest user", "root")
      .option("--password <p>", "guest password", "1234");
  common(
    program
      .command("ssh")
      .description("open a shell (or run CMD) in VM N of a running `tapsim run --vms`")
      .argument("<node>", "node number", integerOption("node", 0, NODES_PROBED_MAX - 1))
      .argument("[cmd...]", "command to run instead of a shell"),
  )
    .option("--timeout <ms>", "give up on a command after this long", integerOption("--timeout", 1), 600_000)
    .action(async (node: number, cmd: string[], flags: SshFlags) => {
      const target = targetFor(flags, node);
      if (cmd.length === 0) setExit(await sshInteractive(target));
      else setExit(await runOne(target, `node${node}`, cmd.join(" "), flags.timeout, false));
    });
  common(
    program
      .command("exec")
      .description("run CMD in VMs of a running `tapsim run --vms` (--all or --node)")
      .argument("<cmd...>", "command (put it after --)"),
  )
    .option("-a, --all", "every VM of the run", false)
    .option("--node <ids>", "comma-separated node numbers", integerListOption("--node"))
    .option("--timeout <ms>", "give up on a command after this long", integerOption("--timeout", 1), 600_000)
    .action(async (cmd: string[], flags: ExecFlags) => {
      setExit(await execCommand(cmd.join(" "), flags));
    });
}

async function execCommand(command: string, flags: ExecFlags): Promise<number> {
  if (flags.all === (flags.node !== undefined)) throw new InputError("tapsim exec: give exactly one of --all or --node");
  const nodes = flags.all ? await probeNodes(flags.sshPortBase) : flags.node!;
  if (nodes.length === 0) throw new InputError(`tapsim exec: no VM answers on 127.0.0.1:${flags.sshPortBase} (is \`tapsim run --vms\` running with this --ssh-port-base?)`);
  const prefixed = nodes.length > 1;
  const codes = await Promise.all(nodes.map((node) => runOne(targetFor(flags, node), `node${node}`, command, flags.timeout, prefixed)));
  return Math.max(...codes);
}

async function runOne(target: SshTarget, label: string, command: string, timeout_ms: number, prefixed: boolean): Promise<number> {
  const r = await sshExec(target, command, { timeout_ms });
  const out = (stream: NodeJS.WriteStream, text: string) => {
    if (text.length === 0) return;
    if (!prefixed) return void stream.write(text);
    for (const line of text.replace(/\n$/, "").split("\n")) stream.write(`[${label}] ${line}\n`);
  };
  out(process.stdout, r.stdout.toString());
  out(process.stderr, r.stderr.toString());
  if (r.code === null) {
    process.stderr.write(`tapsim: ${label}: command ended by signal ${r.signal ?? "?"}\n`);
    return 1;
  }
  return r.code;
}

function targetFor(flags: SshFlags, node: number): SshTarget {
  return { host: "127.0.0.1", port: flags.sshPortBase + node, user: flags.user, password: flags.password };
}

/** The run forwards consecutive ports: VMs are the ports that accept, up to the first that does not. */
async function probeNodes(base: number): Promise<number[]> {
  const nodes: number[] = [];
  for (let node = 0; node < NODES_PROBED_MAX && base + node <= 65535; node++) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(base + node, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (!open) break;
    nodes.push(node);
  }
  return nodes;
}
