// Trace throughput: records/s to write a trace (TraceWriter), read it back
// (TraceReader.records()), replay it (replayTrace: re-derive and check every record) and diff
// it against a copy of itself (diffTraces). The records come from a real in-process Bracha run
// (9 nodes, AWS-like regions), collected in memory first. Baselines, measured in the same
// process: plain msgpackr pack / unpack of the same records in arrays of 4096 (no chunk
// headers, checksums, validation or file I/O), so write/pack and read/unpack show what the
// format costs on top of msgpack; replay and diff are shown against the trace read.

import { copyFileSync, statSync } from "node:fs";
import { Packr, Unpackr } from "msgpackr";
import { traceHeader } from "../cli/version.js";
import { brachaConfig } from "../nodes/inprocess/workloads.js";
import { makeRunConfig } from "../engine/run.js";
import { createInProcessRun } from "../nodes/inprocess/run.js";
import type { TraceHeader, TraceRecord } from "../engine/trace_records.js";
import { diffTraces } from "../recorder/diff.js";
import { TraceReader } from "../recorder/reader.js";
import { replayTrace } from "../recorder/replay.js";
import { TraceWriter } from "../recorder/writer.js";
import { awsLikeTopology, collectGarbage, fmtM, fmtRatio, median, note, printTable, progress, QUICK, REPEATS, tempDir, timeIt } from "./common.js";

const NODES = 9;
const MESSAGES = QUICK ? 65 : 650; // ~0.2M / ~2M records
const BATCH = 4096;

async function collectRecords(): Promise<{ header: TraceHeader; records: TraceRecord[] }> {
  const config = makeRunConfig({
    topology: awsLikeTopology(NODES),
    workload: brachaConfig({ messages_per_node: MESSAGES }),
    seed: 1,
    until_ns: null,
  });
  const records: TraceRecord[] = [];
  const { engine } = createInProcessRun(config, { write: (r) => void records.push(r) });
  await engine.run();
  const header = traceHeader(config);
  return { header, records };
}

function writeTrace(file: string, header: TraceHeader, records: readonly TraceRecord[]): void {
  const writer = TraceWriter.create(file, header);
  for (let i = 0; i < records.length; i++) writer.write(records[i]!);
  writer.close();
}

function readTrace(file: string): number {
  const reader = TraceReader.open(file);
  let n = 0;
  for (const r of reader.records()) n += r[0] > 0 ? 1 : 0;
  reader.close();
  return n;
}

// Same msgpack options as the trace format's payloads.
const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

function packAll(records: readonly TraceRecord[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < records.length; i += BATCH) out.push(packr.pack(records.slice(i, i + BATCH)));
  return out;
}

function unpackAll(buffers: readonly Uint8Array[]): number {
  let n = 0;
  for (const b of buffers) {
    const records = unpackr.unpack(b) as TraceRecord[];
    for (const r of records) n += r[0] > 0 ? 1 : 0;
  }
  return n;
}

async function main(): Promise<void> {
  const { value: collected, s: collect_s } = await timeIt(collectRecords);
  const { header, records } = collected;
  const count = records.length;
  note(`trace_bench (${QUICK ? "quick" : "full"}): ${count} records from Bracha ${NODES} nodes x ${MESSAGES} messages (collected in ${collect_s.toFixed(1)} s), median of ${REPEATS}; Mrec/s = million records per second`);
  const tmp = tempDir("tapsim-trace-bench-");
  const file = tmp.file("a.trace");
  const copy = tmp.file("b.trace");
  const rate: Record<string, number[]> = { pack: [], write: [], unpack: [], read: [], replay: [], diff: [] };
  let packed_bytes = 0;
  try {
    for (let rep = 0; rep < REPEATS; rep++) {
      collectGarbage();
      const pack = await timeIt(() => packAll(records));
      rate["pack"]!.push(count / pack.s);
      packed_bytes = pack.value.reduce((s, b) => s + b.length, 0);
      collectGarbage();
      const write = await timeIt(() => writeTrace(file, header, records));
      rate["write"]!.push(count / write.s);
      collectGarbage();
      const unpack = await timeIt(() => unpackAll(pack.value));
      if (unpack.value !== count) throw new Error(`unpacked ${unpack.value} of ${count} records`);
      rate["unpack"]!.push(count / unpack.s);
      collectGarbage();
      const read = await timeIt(() => readTrace(file));
      if (read.value !== count) throw new Error(`read ${read.value} of ${count} records`);
      rate["read"]!.push(count / read.s);
      collectGarbage();
      const replay = await timeIt(() => replayTrace(file));
      if (!replay.value.identical || replay.value.records_checked !== count) {
        throw new Error(`replay: identical ${replay.value.identical}, ${replay.value.records_checked} of ${count} records checked`);
      }
      rate["replay"]!.push(count / replay.s);
      if (rep === 0) copyFileSync(file, copy);
      collectGarbage();
      const diff = await timeIt(() => diffTraces(file, copy, 5));
      if (!diff.value.equivalent || diff.value.records_a !== count) throw new Error("diff of a trace against its copy found a difference");
      rate["diff"]!.push(count / diff.s);
      progress(`rep ${rep + 1}: ${Object.entries(rate).map(([k, v]) => `${k} ${fmtM(v.at(-1)!)}`).join(", ")} Mrec/s`);
    }
    const trace_bytes = statSync(file).size;
    const m = (k: string) => median(rate[k]!);
    const row = (op: string, what: string, base: string, base_what: string): string[] => [op, what, base_what, fmtM(m(op)), fmtM(m(base)), fmtRatio(m(op) / m(base))];
    printTable(
      ["op", "what", "baseline", "Mrec/s", "base Mrec/s", "op/base"],
      [
        row("write", "TraceWriter -> file, closed", "pack", "msgpackr pack x4096"),
        row("read", "TraceReader.records()", "unpack", "msgpackr unpack x4096"),
        row("replay", "replayTrace (re-derive+check)", "read", "trace read"),
        row("diff", "diffTraces vs copy (per trace)", "read", "trace read"),
      ],
      3,
    );
    note(`trace ${(trace_bytes / 2 ** 20).toFixed(1)} MiB (${(trace_bytes / count).toFixed(1)} B/record); plain msgpack ${(packed_bytes / 2 ** 20).toFixed(1)} MiB (format adds ${((trace_bytes / packed_bytes - 1) * 100).toFixed(2)}%)`);
  } finally {
    tmp.remove();
  }
}

await main();
