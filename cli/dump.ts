// `tapsim dump TRACE`: records as one line each, optionally from a virtual time (uses the
// trace's index to skip chunks), for one node and for some record kinds. An incomplete trace
// is dumped as far as it reads, with a warning on stderr.

import type { Command } from "commander";
import { InputError } from "../engine/errors.js";
import { RECORD_KIND_NAMES, RecordKind, type TraceRecord } from "../engine/trace_records.js";
import { describeRecord } from "../recorder/describe.js";
import { TraceReader } from "../recorder/reader.js";
import { incompleteText } from "./incomplete.js";
import { durationOption, integerOption } from "./options.js";

interface DumpFlags {
  from: number;
  limit: number;
  node?: number;
  kind?: Set<number>;
}

export function registerDump(program: Command, setExit: (code: number) => void): void {
  program
    .command("dump")
    .description("print a trace's records, one line each")
    .argument("<trace>", "trace file")
    .option("--from <time>", "start at this virtual time (e.g. 1.5s), seeking with the index", durationOption("--from"), 0)
    .option("--limit <n>", "print at most n records", integerOption("--limit", 1), 1000)
    .option("--node <id>", "only records about this node", integerOption("--node", 0))
    .option("--kind <kinds>", `only records of these kinds, comma-separated (${Object.values(RECORD_KIND_NAMES).join(", ")})`, kindListOption("--kind"))
    .action((path: string, flags: DumpFlags) => {
      const reader = TraceReader.open(path);
      const n = reader.header.config.nodes.length;
      if (flags.node !== undefined && flags.node >= n) {
        reader.close();
        throw new InputError(`--node ${flags.node}: node ${flags.node} does not exist (${path} has ${n} nodes: 0..${n - 1})`);
      }
      const incomplete = incompleteText(reader.status());
      if (incomplete !== null) process.stderr.write(`tapsim: warning: ${path}: ${incomplete}\n`);
      let printed = 0;
      for (const r of reader.recordsFrom(flags.from)) {
        if (flags.node !== undefined && !involves(r, flags.node)) continue;
        if (flags.kind !== undefined && !flags.kind.has(r[0])) continue;
        console.log(describeRecord(r));
        if (++printed >= flags.limit) break;
      }
      reader.close();
      setExit(0);
    });
}

function involves(r: TraceRecord, node: number): boolean {
  if (r[0] === RecordKind.RunEnd) return true;
  if (r[0] === RecordKind.Fault && r[1] < 0) return true; // a network change concerns every node
  if (r[0] === RecordKind.FrameDeliver || r[0] === RecordKind.FrameDrop) return r[1] === node || r[4] === node;
  return r[1] === node;
}

/** "guest_output,mgmt_in" -> the set of their kind numbers; an unknown name is an error naming the flag. */
export function kindListOption(flag: string) {
  return (text: string): Set<number> => {
    const by_name = new Map(Object.entries(RECORD_KIND_NAMES).map(([kind, name]) => [name, Number(kind)]));
    const kinds = new Set<number>();
    for (const part of text.split(",")) {
      const kind = by_name.get(part.trim());
      if (kind === undefined) throw new InputError(`${flag} ${JSON.stringify(text)}: unknown record kind ${JSON.stringify(part.trim())} (${[...by_name.keys()].join(", ")})`);
      kinds.add(kind);
    }
    return kinds;
  };
}
