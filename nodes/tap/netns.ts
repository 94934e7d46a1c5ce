// Network namespaces joined to the simulated network: each gets a TAP device (moved in from
// the host), the node's MAC and IPv4 address, IPv6 off (it would chatter), and loopback up.
//
// A namespace is a bind mount under /run/netns: unlike our TAP devices (not persistent, gone
// with our fds) it outlives a SIGKILLed tapsim, and so do the commands running in it. Two
// guards: a watchdog process that removes a run's namespaces the moment the run dies, however
// it dies (it waits for EOF on a pipe the kernel closes for us), and a sweep at the next start
// of namespaces whose owner (the pid in their name) is gone, for when the watchdog died too.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { InputError } from "../../engine/errors.js";
import { processAlive } from "../../engine/host_process.js";

export function ip(...args: string[]): string {
  try {
    return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const why = String((err as { stderr?: string }).stderr ?? err).trim().split("\n")[0];
    throw new InputError(`ip ${args.join(" ")}: ${why}`);
  }
}

/** Moves `tap` into a new namespace `ns`, with `mac` (optional) and `cidr` there. */
export function joinNamespace(ns: string, tap: string, cidr: string, mac?: string): void {
  ip("netns", "add", ns);
  ip("link", "set", tap, "netns", ns);
  execFileSync("ip", ["netns", "exec", ns, "sysctl", "-q", "-w", `net.ipv6.conf.${tap}.disable_ipv6=1`], { stdio: "ignore" });
  if (mac !== undefined) ip("-n", ns, "link", "set", "dev", tap, "address", mac);
  ip("-n", ns, "addr", "add", cidr, "dev", tap);
  ip("-n", ns, "link", "set", tap, "up");
  ip("-n", ns, "link", "set", "lo", "up");
}

/** Deletes `ns` (and the TAP inside it, if our fd is gone) after killing what still runs in it; no error if it is already gone. */
export function deleteNamespace(ns: string): void {
  // A process left inside would keep the namespace (and its address) alive, unnamed.
  killProcessesIn(ns);
  try {
    execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
  } catch {
    // already gone
  }
}

/** Our namespaces are named `tapsim-PID-NODE`, PID the owning tapsim's process id. */
export function namespaceName(owner_pid: number, node: number): string {
  return `tapsim-${owner_pid}-${node}`;
}

const OWNED_NAME = /^tapsim-(\d+)-\d+$/;

/** Kills whatever still runs in each namespace, then deletes it; "done" on stdin first cancels. */
const WATCHDOG_SCRIPT = `
read -r word || word=
[ "$word" = done ] && exit 0
for ns in "$@"; do
  pids=$(ip netns pids "$ns" 2>/dev/null)
  [ -n "$pids" ] && kill -9 $pids 2>/dev/null
  ip netns del "$ns" 2>/dev/null
done
exit 0
`;

export class NamespaceWatchdog {
  private constructor(private readonly child: ChildProcess) {}

  /** Starts guarding `namespaces` (they need not exist yet). */
  static start(namespaces: readonly string[]): NamespaceWatchdog {
    const child = spawn("sh", ["-c", WATCHDOG_SCRIPT, "tapsim-netns-watchdog", ...namespaces], {
      // Own session: Ctrl+C in the terminal must not end the watchdog before tapsim's own cleanup.
      detached: true,
      stdio: ["pipe", "ignore", "ignore"],
    });
    child.on("error", () => {}); // no sh: the sweep at the next start still covers us
    child.stdin!.on("error", () => {});
    // Neither the process nor its pipe may keep tapsim running.
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    return new NamespaceWatchdog(child);
  }

  /** tapsim removed its namespaces itself: the watchdog exits without touching anything. */
  release(): void {
    this.child.stdin!.end("done\n");
  }
}

/** Deletes namespaces left by tapsim runs that no longer exist (killed along with their watchdog); returns their names. */
export function sweepStaleNamespaces(): string[] {
  let listing: string;
  try {
    listing = execFileSync("ip", ["netns", "list"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch {
    return [];
  }
  const stale: string[] = [];
  for (const line of listing.split("\n")) {
    const ns = line.split(" ")[0] ?? "";
    const m = OWNED_NAME.exec(ns);
    // Our own pid in a name we have not created yet: a dead process had this pid before.
    if (m && (Number(m[1]) === process.pid || !processAlive(Number(m[1])))) stale.push(ns);
  }
  for (const ns of stale) {
    killProcessesIn(ns);
    deleteNamespace(ns);
  }
  return stale;
}

function killProcessesIn(ns: string): void {
  let pids: string;
  try {
    pids = execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch {
    return;
  }
  for (const pid of pids.split(/\s+/).filter((p) => /^\d+$/.test(p))) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // already gone
    }
  }
}
