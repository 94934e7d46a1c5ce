// Network namespaces joined to the simulated network: each gets a TAP device (moved in from
// the host), the node's MAC and IPv4 address, IPv6 off (it would chatter), and loopback up.

import { execFileSync } from "node:child_process";
import { InputError } from "../errors.js";

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

/** Deletes `ns` (and the TAP inside it, if our fd is gone); no error if it is already gone. */
export function deleteNamespace(ns: string): void {
  try {
    execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
  } catch {
    // already gone
  }
}
