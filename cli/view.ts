// `tapsim view TRACE [-o out.html] [--serve [PORT]]`: the trace as a self-contained HTML
// page (space-time diagram, filters, frame decoding), written to a file or served on
// 127.0.0.1 until Ctrl+C.

import { createServer, type Server } from "node:http";
import path from "node:path";
import type { Command } from "commander";
import { InputError, fsErrorText } from "../engine/errors.js";
import { writeOutput } from "../recorder/output_file.js";
import { viewPage } from "../recorder/viewer/page.js";
import { warnIfIncomplete } from "./incomplete.js";
import { integerOption } from "./options.js";

export const SERVE_PORT_DEFAULT = 7357;
const SERVE_HOST = "127.0.0.1";

interface ViewFlags {
  output?: string;
  serve?: boolean | string;
  frameBytes: number;
}

export function registerView(program: Command, setExit: (code: number) => void): void {
  program
    .command("view")
    .description("space-time diagram of a trace as a self-contained HTML page")
    .argument("<trace>", "trace file")
    .option("-o, --output <file>", "HTML file to write (default: TRACE's name with .html, in the current folder)")
    .option("--serve [port]", `serve the page on ${SERVE_HOST} instead (default port ${SERVE_PORT_DEFAULT}; 0 picks a free one)`)
    .option("--frame-bytes <n>", "bytes of each frame embedded for decoding", integerOption("--frame-bytes", 0, 65536), 256)
    .action(async (trace: string, flags: ViewFlags) => {
      const serve = flags.serve !== undefined && flags.serve !== false;
      // Flags are checked before the trace is read: a typo should not cost a long generation.
      const port = serve ? servePort(flags.serve!) : 0;
      if (serve && flags.output !== undefined) throw new InputError("-o and --serve: choose one");
      warnIfIncomplete(trace);
      const html = viewPage(trace, { frame_bytes_cap: flags.frameBytes });
      if (serve) {
        await serveUntilInterrupted(html, port);
      } else {
        const out = flags.output ?? `${path.basename(trace).replace(/\.trace$/, "")}.html`;
        writePage(out, html);
        console.log(`tapsim view: wrote ${out} (${kib(html)} KiB)`);
      }
      setExit(0);
    });
}

/** The page appears whole under `out`, or (disk full) not at all. */
export function writePage(out: string, html: string): void {
  writeOutput(out, (file) => file.write(html));
}

export function kib(html: string): string {
  return (Buffer.byteLength(html) / 1024).toFixed(1);
}

function servePort(value: boolean | string): number {
  return typeof value === "string" ? integerOption("--serve", 0, 65535)(value) : SERVE_PORT_DEFAULT;
}

/** Serves the page at / until SIGINT/SIGTERM, then closes every connection and resolves. */
export async function serveUntilInterrupted(html: string, port: number): Promise<void> {
  const body = Buffer.from(html);
  const server = createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
    } else if (url === "/" || url === "/index.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": body.length, "cache-control": "no-store" });
      res.end(req.method === "HEAD" ? undefined : body);
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    }
  });
  const bound = await listen(server, port);
  console.log(`tapsim view: serving http://${SERVE_HOST}:${bound}/ (${kib(html)} KiB); Ctrl+C stops`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      server.close(() => resolve());
      server.closeAllConnections();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  console.log("tapsim view: stopped");
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      reject(err.code === "EADDRINUSE" ? new InputError(`--serve ${port}: port already in use on ${SERVE_HOST}`) : new InputError(`--serve ${port}: cannot listen: ${fsErrorText(err)}`));
    });
    server.listen(port, SERVE_HOST, () => {
      const addr = server.address();
      resolve(typeof addr === "object" && addr !== null ? addr.port : port);
    });
  });
}
