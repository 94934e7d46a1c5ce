#!/usr/bin/env node
// Entry point: the CLI is compiled TypeScript (scripts/bootstrap.sh builds dist/).
import { main } from "../dist/cli/main.js";
main(process.argv).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err); process.exitCode = 70; },
);
