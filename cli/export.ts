// `tapsim export TRACE --pcap out.pcapng [--perfetto out.json]`: one pass over the trace
// (constant memory: records are read chunk by chunk) feeding every requested exporter.

import type { Command } from "commander";
import { InputError } from "../engine/errors.js";
import { OutputFile } from "../recorder/export_common.js";
import { PcapngExporter } from "../recorder/export_pcapng.js";
import { PerfettoExporter } from "../recorder/export_perfetto.js";
import { TraceReader } from "../recorder/reader.js";

interface ExportFlags {
  pcap?: string;
  perfetto?: string;
}

export function registerExport(program: Command, setExit: (code: number) => void): void {
  program
    .command("export")
    .description("write a trace as pcapng (Wireshark/tshark) and/or Chrome trace-event JSON (Perfetto)")
    .argument("<trace>", "trace file")
    .option("--pcap <file>", "pcapng: one interface per node; each frame outbound at send on the sender, inbound at delivery on the receiver")
    .option("--perfetto <file>", "trace-event JSON: a thread per node, slices, frame flows, drops and marks")
    .action((path: string, flags: ExportFlags) => {
      if (flags.pcap === undefined && flags.perfetto === undefined) throw new InputError("export: give --pcap FILE and/or --perfetto FILE");
      const lines = exportTrace(path, flags);
      for (const line of lines) console.log(line);
      setExit(0);
    });
}

/** Runs the export; returns the summary lines. */
export function exportTrace(path: string, flags: ExportFlags): string[] {
  const reader = TraceReader.open(path);
  const files: OutputFile[] = [];
  try {
    const pcap_file = flags.pcap === undefined ? null : new OutputFile(flags.pcap);
    if (pcap_file) files.push(pcap_file);
    const perfetto_file = flags.perfetto === undefined ? null : new OutputFile(flags.perfetto);
    if (perfetto_file) files.push(perfetto_file);
    const pcap = pcap_file && new PcapngExporter(pcap_file, reader.header);
    const perfetto = perfetto_file && new PerfettoExporter(perfetto_file, reader.header);
    for (const r of reader.records()) {
      pcap?.onRecord(r);
      perfetto?.onRecord(r);
    }
    perfetto?.close();
    for (const f of files.splice(0)) f.close();
    const lines: string[] = [];
    if (pcap) lines.push(`export: ${flags.pcap}: ${pcap.counts.outbound} frames outbound + ${pcap.counts.inbound} inbound on ${reader.header.config.nodes.length} interfaces`);
    if (perfetto) {
      const c = perfetto.counts;
      lines.push(`export: ${flags.perfetto}: ${c.slices} slices, ${c.flows} frame flows, ${c.drops} drops, ${c.marks} marks`);
    }
    if (!reader.status().complete) lines.push("export: the trace ends without a clean end (run was killed?); exported up to its last complete chunk");
    return lines;
  } finally {
    for (const f of files) f.close();
    reader.close();
  }
}
