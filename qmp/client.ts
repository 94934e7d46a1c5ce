// A QMP client over a unix socket: greeting, capability negotiation, commands with ids and
// timeouts, asynchronous events, and typed errors. QMP is newline-delimited JSON; replies
// carry the id of their command, events carry none.

import { EventEmitter } from "node:events";
import { connect, type Socket } from "node:net";
import { withTimeout } from "./timeout.js";

export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

/** QEMU answered a command with an error object. */
export class QmpCommandError extends Error {
  constructor(
    readonly command: string,
    readonly error_class: string,
    readonly desc: string,
  ) {
    super(`QMP ${command}: ${error_class}: ${desc}`);
  }
}
export class QmpTimeoutError extends Error {}
export class QmpClosedError extends Error {}

interface Waiter {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const LINE_BYTES_MAX = 16 * 1024 * 1024;
const COMMANDS_OUTSTANDING_MAX = 1024;
export const QMP_TIMEOUT_MS_DEFAULT = 10_000;

export class QmpClient extends EventEmitter {
  greeting: QmpGreeting | null = null;
  private text = "";
  private next_id = 1;
  private readonly waiters = new Map<string, Waiter>();
  private greeting_waiter: ((g: QmpGreeting) => void) | null = null;
  private closed: QmpClosedError | null = null;

  private constructor(
    private readonly socket: Socket,
    readonly path: string,
  ) {
    super();
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.onData(chunk));
    socket.on("error", () => {});
    socket.on("close", () => this.onClose());
  }

  /** Connects, reads the greeting and enters command mode (qmp_capabilities). */
  static async connect(path: string, timeout_ms = QMP_TIMEOUT_MS_DEFAULT): Promise<QmpClient> {
    const socket = await connectSocket(path, timeout_ms);
    const client = new QmpClient(socket, path);
    const greeting = await withTimeout(client.readGreeting(), timeout_ms, `QMP ${path}: no greeting within ${timeout_ms} ms`, (m) => new QmpTimeoutError(m));
    client.greeting = greeting;
    await client.execute("qmp_capabilities", undefined, timeout_ms);
    return client;
  }

  /** Runs a command; resolves with its `return` value. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeout_ms = QMP_TIMEOUT_MS_DEFAULT): Promise<T> {
    if (this.closed) return Promise.reject(this.closed);
    if (this.waiters.size >= COMMANDS_OUTSTANDING_MAX) return Promise.reject(new Error(`QMP ${this.path}: too many outstanding commands`));
    const id = `c${this.next_id++}`;
    const message = JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id });
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new QmpTimeoutError(`QMP ${command}: no reply within ${timeout_ms} ms`));
      }, timeout_ms);
      this.waiters.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(message + "\n");
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private readGreeting(): Promise<QmpGreeting> {
    if (this.greeting) return Promise.resolve(this.greeting);
    return new Promise((resolve) => (this.greeting_waiter = resolve));
  }

  private onData(chunk: string): void {
    this.text += chunk;
    if (this.text.length > LINE_BYTES_MAX) {
      this.socket.destroy(new Error("QMP line too long"));
      return;
    }
    let newline = this.text.indexOf("\n");
    while (newline >= 0) {
      const line = this.text.slice(0, newline).trim();
      this.text = this.text.slice(newline + 1);
      if (line.length > 0) this.onMessage(line);
      newline = this.text.indexOf("\n");
    }
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // QEMU only writes JSON; a torn line would be a QEMU bug, not ours to crash on
    }
    if ("QMP" in msg) {
      this.greeting = msg.QMP as QmpGreeting;
      this.greeting_waiter?.(this.greeting);
      this.greeting_waiter = null;
    } else if ("event" in msg) {
      this.emit("event", msg as unknown as QmpEvent);
    } else if (typeof msg.id === "string") {
      this.settle(msg.id, msg);
    }
  }

  private settle(id: string, msg: Record<string, unknown>): void {
    const waiter = this.waiters.get(id);
    if (!waiter) return; // timed out already
    this.waiters.delete(id);
    clearTimeout(waiter.timer);
    if ("error" in msg) {
      const error = msg.error as { class?: string; desc?: string };
      waiter.reject(new QmpCommandError(waiter.command, error.class ?? "GenericError", error.desc ?? "(no description)"));
    } else {
      waiter.resolve(msg.return);
    }
  }

  private onClose(): void {
    this.closed = new QmpClosedError(`QMP ${this.path}: connection closed`);
    for (const waiter of this.waiters.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(this.closed);
    }
    this.waiters.clear();
    this.emit("close");
  }
}

/** QEMU creates the socket shortly after it starts: retry until it accepts or time runs out. */
async function connectSocket(path: string, timeout_ms: number): Promise<Socket> {
  const deadline_ms = Date.now() + timeout_ms;
  for (let attempt = 0; ; attempt++) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const socket = connect(path);
        socket.once("connect", () => resolve(socket));
        socket.once("error", reject);
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== "ENOENT" && code !== "ECONNREFUSED") || Date.now() > deadline_ms) {
        throw new QmpClosedError(`QMP ${path}: cannot connect (${code ?? String(err)})`);
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, 5 * (attempt + 1))));
    }
  }
}
