#!/usr/bin/env -S node --max-semi-space-size=32
// Entry point: the CLI is compiled TypeScript (scripts/bootstrap.sh builds dist/).
// A larger young generation: the engine allocates many short-lived frames and records,
// and the default semi-space made scavenges ~20% of an in-process run's time.
import { main } from "../dist/cli/main.js";
main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 70;
  },
);
