// How `tapsim ssh/exec/cp` reach node N of a running `tapsim run --vms`: the run's state
// file (found by --ssh-port-base) gives the port and known_hosts; the client key from
// ~/.tapsim logs in, and a password only when one is given (or the run is a user image's).

import { InputError } from "../engine/errors.js";
import { DEFAULT_PASSWORD } from "../guest/image.js";
import type { SshTarget } from "../qmp/ssh.js";
import { ensureClientKey, type ClientKey } from "./client_key.js";
import { guestPassword, type PasswordFlags } from "./guest_password.js";
import { knownHostKeys, readRunState, statePaths, type RunState } from "./run_state.js";

export interface AccessFlags extends PasswordFlags {
  sshPortBase: number;
  user?: string;
}

export interface RunAccess {
  readonly state: RunState;
  readonly key: ClientKey;
  readonly password: string | undefined;
  readonly user: string;
}

export function runAccess(flags: AccessFlags): RunAccess {
  const state = readRunState(flags.sshPortBase);
  if (state === null) {
    throw new InputError(`no running \`tapsim run --vms\` with --ssh-port-base ${flags.sshPortBase} (${statePaths(flags.sshPortBase).state} is missing or its run has ended)`);
  }
  // A user's image keeps its own accounts: its password is the old default unless given.
  const password = guestPassword(flags) ?? (state.image_kind === "qcow2" ? DEFAULT_PASSWORD : undefined);
  return { state, key: ensureClientKey(), password, user: flags.user ?? state.user };
}

export function nodeTarget(access: RunAccess, node: number): SshTarget {
  const port = access.state.ports[node];
  if (port === undefined) throw new InputError(`node ${node}: the run on --ssh-port-base ${access.state.port_base} has ${access.state.ports.length} VMs`);
  return {
    host: "127.0.0.1",
    port,
    user: access.user,
    private_key: access.key.private_key,
    ...(access.password === undefined ? {} : { password: access.password }),
    host_keys: { accepted: knownHostKeys(access.state.known_hosts, port), source: access.state.known_hosts },
  };
}

/** Every node of the run, in order. */
export function allNodes(access: RunAccess): number[] {
  return access.state.ports.map((_, i) => i);
}
