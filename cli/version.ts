import { readFileSync } from "node:fs";

/** From package.json, so traces record the version that wrote them. */
export const TAPSIM_VERSION: string = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;
