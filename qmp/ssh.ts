// SSH into guests (host side, over ssh2) through the forward tapsim runs from
// 127.0.0.1:(port base + i) to the guest's :22 on its management network. This is the
// management path, not the simulated network: it runs on wall time, so the timeouts here
// are wall-clock milliseconds. Authentication and host-key checks are set by the target
// (qmp/ssh_auth.ts). Every failure is an SshError with a one-line message.

import { once } from "node:events";
import { statSync } from "node:fs";
import path from "node:path";
import ssh2 from "ssh2";
import type { ClientChannel, ConnectConfig, PseudoTtyOptions } from "ssh2";
import { authConfig, fingerprint, offeredMethods, type Credentials } from "./ssh_auth.js";

const { Client } = ssh2;

export interface SshTarget extends Credentials {
  /** 127.0.0.1 */
  host: string;
  port: number;
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: Buffer;
  stderr: Buffer;
}

export type SshErrorKind = "refused" | "auth" | "hostkey" | "timeout" | "closed" | "aborted" | "other";

export class SshError extends Error {
  constructor(
    readonly kind: SshErrorKind,
    message: string,
  ) {
    super(message);
    this.name = "SshError";
  }
}

const EXEC_TIMEOUT_MS_DEFAULT = 60_000;
const CONNECT_TIMEOUT_MS_DEFAULT = 20_000;
const WAIT_INTERVAL_MS_DEFAULT = 250;
/** One connection try of waitForSsh: long enough for a TCG guest's key exchange. */
const WAIT_ATTEMPT_TIMEOUT_MS = 8_000;

function where(t: SshTarget): string {
  return `ssh ${t.user}@${t.host}:${t.port}`;
}

function checkTarget(t: SshTarget): void {
  if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) throw new Error(`ssh: bad port ${t.port}`);
  if (typeof t.host !== "string" || t.host === "" || typeof t.user !== "string" || t.user === "") throw new Error("ssh: host and user are required");
}

/** ssh2's errors as one line saying what went wrong where. */
function sshError(t: SshTarget, err: Error & { code?: string; level?: string }): SshError {
  if (err instanceof SshError) return err;
  if (err.code === "ECONNREFUSED") return new SshError("refused", `${where(t)}: connection refused on port ${t.port}`);
  if (err.level === "client-authentication") return new SshError("auth", `${where(t)}: authentication failed (${offeredMethods(t)} rejected for ${t.user})`);
  if (err.level === "client-timeout") return new SshError("timeout", `${where(t)}: timed out waiting for the SSH handshake`);
  if (err.code === "ECONNRESET" || /before handshake|Connection lost|Not connected/i.test(err.message)) {
    return new SshError("closed", `${where(t)}: connection closed before the SSH handshake (guest not listening yet?)`);
  }
  return new SshError("other", `${where(t)}: ${err.message.split("\n")[0]}`);
}

type Connection = InstanceType<typeof Client>;

/** An authenticated connection; rejects with an SshError. */
function connect(t: SshTarget, timeout_ms: number, signal?: AbortSignal): Promise<Connection> {
  checkTarget(t);
  return new Promise((resolve, reject) => {
    const conn = new Client();
    const onAbort = () => {
      conn.end();
      reject(new SshError("aborted", `${where(t)}: aborted`));
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    const verdict = { rejected_key: null as string | null };
    const config: ConnectConfig = { host: t.host, port: t.port, readyTimeout: timeout_ms, ...authConfig(t, verdict) };
    conn
      .once("ready", () => {
        signal?.removeEventListener("abort", onAbort);
        resolve(conn);
      })
      // on, not once: ssh2 can emit a second error (e.g. "lost before handshake" after a
      // reset), and an unhandled one would crash the whole run.
      .on("error", (err) => {
        signal?.removeEventListener("abort", onAbort);
        conn.end();
        reject(verdict.rejected_key === null ? sshError(t, err) : hostKeyError(t, verdict.rejected_key));
      })
      .once("close", () => reject(sshError(t, new Error("Connection lost before handshake"))))
      .connect(config);
  });
}

function hostKeyError(t: SshTarget, presented: string): SshError {
  return new SshError("hostkey", `${where(t)}: host key ${fingerprint(presented)} is not the one in ${t.host_keys?.source ?? "known_hosts"} (refusing to connect)`);
}

export interface ExitStatus {
  code: number | null;
  signal: string | null;
}

/** A command started in the guest: its stdin to write to, and its end. */
export interface RemoteCommand {
  /** The command's stdin: write to it (or pipe into it), end() it for EOF. */
  readonly stdin: ClientChannel;
  /** Settles when the command is over and its output has been handed on; the connection is closed then. */
  readonly finished: Promise<ExitStatus>;
  /** Ends the command's channel and connection now. */
  close(): void;
}

export interface StartOptions {
  /** Wall-clock limit from connecting to the command's end. */
  timeout_ms?: number;
  signal?: AbortSignal;
  onStdout: (chunk: Buffer) => void;
  onStderr: (chunk: Buffer) => void;
}

/**
 * Starts one command and streams its output to the callbacks. Resolves once the command
 * runs (its stdin open); `finished` resolves with its exit status (a non-zero exit is not
 * an error) and rejects with an SshError (timeout, abort, connection lost).
 */
export async function sshStart(t: SshTarget, command: string, opts: StartOptions): Promise<RemoteCommand> {
  const timeout_ms = opts.timeout_ms ?? EXEC_TIMEOUT_MS_DEFAULT;
  if (!(timeout_ms > 0)) throw new Error(`sshStart: timeout_ms must be positive, got ${timeout_ms}`);
  const deadline_ms = Date.now() + timeout_ms;
  const conn = await connect(t, timeout_ms, opts.signal);
  let ready!: (channel: ClientChannel) => void;
  const started = new Promise<ClientChannel>((resolve) => (ready = resolve));
  const finished = withDeadline<ExitStatus>(t, conn, deadline_ms, opts.signal, `running ${JSON.stringify(command)}`, (done, fail) => {
    conn.exec(command, (err, channel) => {
      if (err) return fail(sshError(t, err));
      // Listeners now, in this callback: ssh2 may parse the output, exit status and close
      // from the same packet batch, before an awaiting caller would get to attach them.
      let status: ExitStatus = { code: null, signal: null };
      channel.on("data", opts.onStdout);
      channel.stderr.on("data", opts.onStderr);
      channel.on("exit", (code: number | null, signal?: string) => (status = { code: code ?? null, signal: signal ?? null }));
      channel.on("close", () => done(status));
      // A write after the command has gone is not worth a crash; its end is reported by close.
      channel.on("error", () => {});
      ready(channel);
    });
  }).finally(() => conn.end());
  // Rejects only if the command never started; once it has, `finished` carries the outcome.
  const failed_to_start = finished.then(() => new Promise<never>(() => {}));
  failed_to_start.catch(() => {});
  const channel = await Promise.race([started, failed_to_start]);
  return {
    stdin: channel,
    finished,
    close: () => {
      channel.close();
      conn.end();
    },
  };
}

/** Runs one command; resolves with its exit status and output (a non-zero exit is not an error). */
export async function sshExec(t: SshTarget, command: string, opts: { timeout_ms?: number; stdin?: Buffer | string; signal?: AbortSignal } = {}): Promise<ExecResult> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const start: StartOptions = { onStdout: (d) => out.push(d), onStderr: (d) => err.push(d) };
  if (opts.timeout_ms !== undefined) start.timeout_ms = opts.timeout_ms;
  if (opts.signal !== undefined) start.signal = opts.signal;
  const cmd = await sshStart(t, command, start);
  cmd.stdin.end(opts.stdin ?? "");
  const status = await cmd.finished;
  return { ...status, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
}

/** Runs body on an open connection with a wall-clock deadline and abort; the connection dying fails it. */
function withDeadline<T>(
  t: SshTarget,
  conn: Connection,
  deadline_ms: number,
  signal: AbortSignal | undefined,
  what: string,
  body: (done: (v: T) => void, fail: (e: Error) => void) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      fn();
    };
    const timer = setTimeout(() => finish(() => reject(new SshError("timeout", `${where(t)}: timed out ${what}`))), Math.max(1, deadline_ms - Date.now()));
    const onAbort = () => finish(() => reject(new SshError("aborted", `${where(t)}: aborted ${what}`)));
    signal?.addEventListener("abort", onAbort, { once: true });
    conn.on("error", (err) => finish(() => reject(sshError(t, err))));
    conn.on("close", () => finish(() => reject(new SshError("closed", `${where(t)}: connection closed while ${what}`))));
    body(
      (v) => finish(() => resolve(v)),
      (e) => finish(() => reject(e)),
    );
  });
}

/**
 * Retries `true` until it succeeds. A rejected key or password, or a wrong host key, fails
 * at once (retrying cannot fix it); refused, reset and slow handshakes are what a booting guest looks like, so they
 * are retried until timeout_ms.
 */
export async function waitForSsh(t: SshTarget, opts: { timeout_ms: number; signal?: AbortSignal; interval_ms?: number }): Promise<void> {
  if (!(opts.timeout_ms > 0)) throw new Error(`waitForSsh: timeout_ms must be positive, got ${opts.timeout_ms}`);
  const interval_ms = opts.interval_ms ?? WAIT_INTERVAL_MS_DEFAULT;
  const deadline_ms = Date.now() + opts.timeout_ms;
  let last: SshError | null = null;
  // Bounded: each try ends by the deadline, and the loop stops at it.
  while (Date.now() < deadline_ms) {
    const left_ms = deadline_ms - Date.now();
    try {
      const r = await sshExec(t, "true", { timeout_ms: Math.min(left_ms, WAIT_ATTEMPT_TIMEOUT_MS), signal: opts.signal });
      if (r.code === 0) return;
      last = new SshError("other", `${where(t)}: \`true\` exited with ${r.code ?? r.signal}`);
    } catch (err) {
      if (!(err instanceof SshError)) throw err;
      if (err.kind === "auth" || err.kind === "hostkey" || err.kind === "aborted") throw err;
      last = err;
    }
    await sleep(Math.min(interval_ms, Math.max(0, deadline_ms - Date.now())), opts.signal);
  }
  throw new SshError("timeout", `${where(t)}: no SSH within ${(opts.timeout_ms / 1000).toFixed(1)} s on port ${t.port}${last ? ` (last: ${last.message.replace(`${where(t)}: `, "")})` : ""}`);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * An interactive session on this process's stdin/stdout: a pty shell (or command) when
 * stdin is a terminal (raw mode, window size followed), plain pipes otherwise. Resolves
 * with the remote exit code (255 when there is none, e.g. the command died by a signal).
 */
export async function sshInteractive(t: SshTarget, opts: { command?: string } = {}): Promise<number> {
  const conn = await connect(t, CONNECT_TIMEOUT_MS_DEFAULT);
  const stdin = process.stdin;
  const tty = stdin.isTTY === true && process.stdout.isTTY === true;
  const pty: PseudoTtyOptions = { term: process.env.TERM ?? "xterm", rows: process.stdout.rows ?? 24, cols: process.stdout.columns ?? 80 };
  try {
    const stream = await new Promise<ClientChannel>((resolve, reject) => {
      const cb = (err: Error | undefined, s: ClientChannel) => (err ? reject(sshError(t, err)) : resolve(s));
      if (opts.command !== undefined) conn.exec(opts.command, tty ? { pty } : {}, cb);
      else if (tty) conn.shell(pty, cb);
      else conn.shell(false, cb);
    });
    return await pump(stream, tty);
  } finally {
    conn.end();
  }
}

async function pump(stream: ClientChannel, tty: boolean): Promise<number> {
  const stdin = process.stdin;
  const onResize = () => stream.setWindow(process.stdout.rows ?? 24, process.stdout.columns ?? 80, 0, 0);
  let code: number | null = null;
  stream.on("exit", (c: number | null) => {
    code = c;
  });
  if (tty) {
    stdin.setRawMode(true);
    process.stdout.on("resize", onResize);
  }
  stdin.pipe(stream);
  stream.pipe(process.stdout, { end: false });
  stream.stderr.pipe(process.stderr, { end: false });
  try {
    await once(stream, "close");
  } finally {
    stdin.unpipe(stream);
    stdin.pause();
    if (tty) {
      stdin.setRawMode(false);
      process.stdout.off("resize", onResize);
    }
  }
  return code ?? 255;
}

export interface CopyOptions {
  /** Wall-clock limit for the whole copy (default 5 min). */
  timeout_ms?: number;
  /** Called as bytes go across: bytes so far, bytes in all. */
  onProgress?: (done_bytes: number, total_bytes: number) => void;
}

const COPY_TIMEOUT_MS_DEFAULT = EXEC_TIMEOUT_MS_DEFAULT * 5;

type Sftp = Parameters<Parameters<Connection["sftp"]>[0]>[1];

/** Runs body with an SFTP session on a new connection (dropbear runs the image's sftp-server). */
async function withSftp<T>(t: SshTarget, opts: CopyOptions, what: string, body: (sftp: Sftp) => Promise<T>): Promise<T> {
  const timeout_ms = opts.timeout_ms ?? COPY_TIMEOUT_MS_DEFAULT;
  const conn = await connect(t, Math.min(timeout_ms, CONNECT_TIMEOUT_MS_DEFAULT));
  try {
    return await withDeadline<T>(t, conn, Date.now() + timeout_ms, undefined, what, (done, fail) => {
      conn.sftp((err, sftp) => {
        if (err) return fail(new SshError("other", `${where(t)}: no SFTP (${err.message})`));
        body(sftp).then(done, (e: Error) => fail(e instanceof SshError ? e : new SshError("other", `${where(t)}: ${what}: ${e.message}`)));
      });
    });
  } finally {
    conn.end();
  }
}

function sftpStat(sftp: Sftp, remote_path: string): Promise<{ mode: number; size: number; isDirectory(): boolean } | null> {
  return new Promise((resolve) => sftp.stat(remote_path, (err, st) => resolve(err ? null : st)));
}

/**
 * Copies a local file to the guest over SFTP, with the local file's permission bits.
 * A remote path naming a folder gets the file under its local name. Resolves with the
 * remote path written.
 */
export async function sshCopy(t: SshTarget, local_path: string, remote_path: string, opts: CopyOptions = {}): Promise<string> {
  const mode = statSync(local_path).mode & 0o777;
  return await withSftp(t, opts, `copying ${local_path} to ${remote_path}`, async (sftp) => {
    const st = await sftpStat(sftp, remote_path);
    const target = st?.isDirectory() ? path.posix.join(remote_path, path.basename(local_path)) : remote_path;
    await new Promise<void>((resolve, reject) => {
      const step = opts.onProgress ? (done_bytes: number, _chunk: number, total: number) => opts.onProgress!(done_bytes, total) : undefined;
      sftp.fastPut(local_path, target, { mode, ...(step ? { step } : {}) }, (e?: Error | null) => (e ? reject(e) : resolve()));
    });
    // fastPut's mode applies only to a file it creates; an existing one keeps its own.
    await new Promise<void>((resolve, reject) => sftp.chmod(target, mode, (e?: Error | null) => (e ? reject(e) : resolve())));
    return target;
  });
}

/**
 * Copies a guest file to the host over SFTP (mode bits from the guest's file, less the
 * umask, as for any new file). A local path naming a folder gets the file under its
 * remote name. Resolves with the local path written.
 */
export async function sshFetch(t: SshTarget, remote_path: string, local_path: string, opts: CopyOptions = {}): Promise<string> {
  const local_is_dir = statSync(local_path, { throwIfNoEntry: false })?.isDirectory() === true;
  const target = local_is_dir ? path.join(local_path, path.posix.basename(remote_path)) : local_path;
  return await withSftp(t, opts, `copying ${remote_path} to ${target}`, async (sftp) => {
    const st = await sftpStat(sftp, remote_path);
    if (st === null) throw new SshError("other", `${where(t)}: ${remote_path}: no such file in the guest`);
    if (st.isDirectory()) throw new SshError("other", `${where(t)}: ${remote_path}: is a directory (copy files one at a time)`);
    await new Promise<void>((resolve, reject) => {
      const step = opts.onProgress ? (done_bytes: number, _chunk: number, total: number) => opts.onProgress!(done_bytes, total) : undefined;
      sftp.fastGet(remote_path, target, { mode: st.mode & 0o777, ...(step ? { step } : {}) }, (e?: Error | null) => (e ? reject(e) : resolve()));
    });
    return target;
  });
}
