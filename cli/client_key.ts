// The user's tapsim directory (~/.tapsim, 0700) and the SSH client key pair kept in it
// (id_ed25519, 0600, OpenSSH format, + id_ed25519.pub), made on first use. Its public key
// goes into every default guest as root's authorized_keys; `tapsim ssh/exec` log in with it,
// and so can plain OpenSSH (`ssh -i ~/.tapsim/id_ed25519`).

import { chmodSync, linkSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import ssh2 from "ssh2";
import { fsErrorText, InputError } from "../engine/errors.js";

export interface ClientKey {
  readonly private_path: string;
  readonly private_key: Buffer;
  /** "ssh-ed25519 AAAA…" */
  readonly public_line: string;
}

const KEY_FILE = "id_ed25519";

/** TAPSIM_HOME (tests point it at a scratch folder), else ~/.tapsim. */
export function tapsimHome(): string {
  return process.env["TAPSIM_HOME"] ?? path.join(os.homedir(), ".tapsim");
}

/** The folder, created 0700 (and tightened to 0700 if it is ours and looser). */
export function ensurePrivateDir(dir: string): string {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    if (!st.isDirectory()) throw new InputError(`${dir}: not a folder (tapsim keeps its SSH key and run files there)`);
    if ((st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) chmodSync(dir, 0o700);
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`${dir}: ${fsErrorText(err)}`);
  }
  return dir;
}

/** The key pair, made now if there is none. A key others can read is refused, as OpenSSH does. */
export function ensureClientKey(home = tapsimHome()): ClientKey {
  ensurePrivateDir(home);
  const private_path = path.join(home, KEY_FILE);
  if (!exists(private_path)) createKey(private_path);
  const mode = lstatSync(private_path).mode;
  if ((mode & 0o077) !== 0) throw new InputError(`${private_path}: readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
  const private_key = readFileSync(private_path);
  const parsed = ssh2.utils.parseKey(private_key);
  if (parsed instanceof Error || parsed.type !== "ssh-ed25519") throw new InputError(`${private_path}: not an OpenSSH ed25519 private key${parsed instanceof Error ? ` (${parsed.message})` : ""}`);
  const public_line = `ssh-ed25519 ${parsed.getPublicSSH().toString("base64")}`;
  // Always derived from the private key, so the two can never disagree.
  if (!exists(`${private_path}.pub`)) writeFileSync(`${private_path}.pub`, `${public_line} tapsim\n`, { mode: 0o644 });
  return { private_path, private_key, public_line };
}

/** Written aside and linked into place: of two processes making a key at once, one key wins. */
function createKey(private_path: string): void {
  const pair = ssh2.utils.generateKeyPairSync("ed25519", { comment: "tapsim" });
  const tmp = `${private_path}.tmp-${process.pid}`;
  writeFileSync(tmp, pair.private, { mode: 0o600, flag: "wx" });
  try {
    linkSync(tmp, private_path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw new InputError(`${private_path}: ${fsErrorText(err)}`);
  } finally {
    rmSync(tmp, { force: true });
  }
}

function exists(file: string): boolean {
  try {
    lstatSync(file);
    return true;
  } catch {
    return false;
  }
}
