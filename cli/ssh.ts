// `tapsim ssh N` and `tapsim exec`: commands in the VMs of a running `tapsim run --vms`,
// over the SSH forwards it binds on 127.0.0.1:(port base + node), logged in with the
// user's tapsim key and checked against the run's known_hosts (cli/ssh_target.ts).

import type { Command } from "commander";
import { InputError } from "../engine/errors.js";
import { sshExec, sshInteractive, type SshTarget } from "../qmp/ssh.js";
import { SSH_PORT_BASE_DEFAULT } from "../qmp/vm_cluster.js";
import { PASSWORD_ENV } from "./guest_password.js";
import { integerListOption, integerOption } from "./options.js";
import { allNodes, nodeTarget, runAccess, type AccessFlags } from "./ssh_target.js";

interface SshFlags extends AccessFlags {
  timeout: number;
}

interface ExecFlags extends SshFlags {
  all: boolean;
  node?: number[];
}

/** No run has more VMs. */
const NODES_MAX = 256;

export function registerSsh(program: Command, setExit: (code: number) => void): void {
  const common = (cmd: Command) =>
    cmd
      .option("--ssh-port-base <port>", "the run's --ssh-port-base", integerOption("--ssh-port-base", 1024, 65535), SSH_PORT_BASE_DEFAULT)
      .option("--user <name>", "guest user (default: the run's, root)")
      .option("--password <p>", `guest password, if the run allows passwords (else $${PASSWORD_ENV}; the key in ~/.tapsim is tried first)`)
      .option("--password-file <file>", "read the guest password from this file");
  common(
    program
      .command("ssh")
      .description("open a shell (or run CMD) in VM N of a running `tapsim run --vms`")
      .argument("<node>", "node number", integerOption("node", 0, NODES_MAX - 1))
      .argument("[cmd...]", "command to run instead of a shell"),
  )
    .option("--timeout <ms>", "give up on a command after this long", integerOption("--timeout", 1), 600_000)
    .action(async (node: number, cmd: string[], flags: SshFlags) => {
      const target = nodeTarget(runAccess(flags), node);
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
  const access = runAccess(flags);
  const nodes = flags.all ? allNodes(access) : flags.node!;
  const targets = nodes.map((node) => nodeTarget(access, node));
  const prefixed = nodes.length > 1;
  const codes = await Promise.all(targets.map((target, i) => runOne(target, `node${nodes[i]}`, command, flags.timeout, prefixed)));
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
