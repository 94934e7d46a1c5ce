// How a connection to a guest authenticates (key first, then a password if the run allows
// passwords) and which host keys it accepts: the ssh2 settings for qmp/ssh.ts. Kept apart
// from the session code so the policy reads in one place.

import { createHash } from "node:crypto";
import type { ConnectConfig } from "ssh2";

/** Host keys a target may present, and where they came from (for the mismatch message). */
export interface KnownHostKeys {
  /** "ssh-ed25519 AAAA…" lines (a trailing comment is ignored). */
  readonly accepted: readonly string[];
  /** The file or image the keys were read from. */
  readonly source: string;
}

export interface Credentials {
  readonly user: string;
  readonly password?: string;
  /** OpenSSH-format private key (~/.tapsim/id_ed25519). */
  readonly private_key?: Buffer | string;
  /** Absent: any host key is accepted (a user's image before tapsim has seen its key). */
  readonly host_keys?: KnownHostKeys;
  /** Told each key a host presents: how a run learns a user image's key at its first login. */
  readonly on_host_key?: (public_line: string) => void;
}

/** "type base64" of an SSH public key blob (the wire format: string type, then the key). */
export function publicLine(blob: Buffer): string {
  const type_len = blob.length >= 4 ? blob.readUInt32BE(0) : 0;
  const type = blob.subarray(4, 4 + type_len).toString("latin1");
  return `${type} ${blob.toString("base64")}`;
}

/** "ssh-ed25519 AAAA… comment" as "ssh-ed25519 AAAA…". */
export function withoutComment(line: string): string {
  return line.trim().split(/\s+/).slice(0, 2).join(" ");
}

/** OpenSSH's SHA256:… fingerprint of a "type base64" line. */
export function fingerprint(line: string): string {
  const blob = Buffer.from(withoutComment(line).split(" ")[1] ?? "", "base64");
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** What was offered, for "authentication failed (… rejected for root)". */
export function offeredMethods(c: Credentials): string {
  const methods = [c.private_key !== undefined ? "key" : null, c.password !== undefined ? "password" : null].filter((m) => m !== null);
  return methods.length === 0 ? "no key or password" : methods.join(" and ");
}

/**
 * The ssh2 settings: credentials in the order key, password, and a host verifier that
 * records a rejected key in `verdict` so the caller can say why the handshake failed.
 */
export function authConfig(c: Credentials, verdict: { rejected_key: string | null }): Partial<ConnectConfig> {
  const accepted = c.host_keys?.accepted.map(withoutComment);
  const methods = [c.private_key !== undefined ? "publickey" : null, c.password !== undefined ? "password" : null].filter((m): m is "publickey" | "password" => m !== null);
  return {
    username: c.user,
    ...(c.private_key === undefined ? {} : { privateKey: c.private_key }),
    ...(c.password === undefined ? {} : { password: c.password }),
    authHandler: methods.length > 0 ? methods : ["none"],
    tryKeyboard: false,
    hostVerifier: (key: Buffer) => {
      const line = publicLine(key);
      c.on_host_key?.(line);
      if (accepted === undefined || accepted.includes(line)) return true;
      verdict.rejected_key = line;
      return false;
    },
  };
}
