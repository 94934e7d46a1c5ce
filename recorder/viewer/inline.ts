// Turns the compiled client (dist/recorder/viewer/client/main.js and the ES modules it
// imports, frame_decode.js among them) into one classic script for the page: a page opened
// from file:// may not load modules from disk, and the page must fetch nothing anyway.
//
// This is a deliberately small bundler for the shapes tsc emits from our own sources:
// relative `import { a, b as c } from "./x.js";` and `export function|class|const|let NAME`.
// Anything else (export lists, default exports, bare imports) is refused loudly, so a change
// in the client that this cannot handle fails the generation tests rather than the page.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** dist/recorder: the root the module keys are relative to. */
const DIST_RECORDER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const CLIENT_ENTRY = "viewer/client/main.js";
const MODULES_MAX = 32;

const IMPORT_RE = /^import\s*\{([^}]*)\}\s*from\s*"([^"]+)";\s*$/gm;
const SIDE_EFFECT_IMPORT_RE = /^import\s+["'][^"']+["'];?\s*$/m;
const EXPORT_DECL_RE = /^export\s+((?:async\s+)?function\*?|class|const|let|var)\s+([A-Za-z_$][\w$]*)/gm;

interface Module {
  key: string;
  body: string;
  exports: string[];
  deps: string[];
}

/** The script text: every module in dependency order, each in its own function scope. */
export function bundleClient(entry = CLIENT_ENTRY): string {
  const order: Module[] = [];
  visit(entry, new Set(), order);
  const parts = order.map((m) => `__tapsim_modules[${JSON.stringify(m.key)}] = (() => {\n${m.body}\nreturn { ${m.exports.join(", ")} };\n})();`);
  return `"use strict";\nconst __tapsim_modules = {};\n${parts.join("\n")}\n`;
}

function visit(key: string, seen: Set<string>, order: Module[]): void {
  if (seen.has(key)) return;
  if (seen.size >= MODULES_MAX) throw new Error(`viewer bundle: more than ${MODULES_MAX} modules`);
  seen.add(key);
  const m = loadModule(key);
  for (const dep of m.deps) visit(dep, seen, order);
  order.push(m);
}

function loadModule(key: string): Module {
  const file = path.join(DIST_RECORDER, key);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new Error(`viewer bundle: ${file} is missing (run scripts/bootstrap.sh, which builds tsconfig.viewer.json)`);
  }
  text = text.replace(/^\/\/# sourceMappingURL=.*$/m, "").replace(/^export \{\};\s*$/m, "");
  const deps: string[] = [];
  text = text.replace(IMPORT_RE, (_all, names: string, spec: string) => {
    if (!spec.startsWith(".")) throw new Error(`viewer bundle: ${key} imports "${spec}"; only relative imports can be inlined`);
    const dep = path.posix.normalize(path.posix.join(path.posix.dirname(key), spec));
    deps.push(dep);
    const binding = names.split(",").map((n) => n.trim()).filter(Boolean).map((n) => n.replace(/\s+as\s+/, ": "));
    return `const { ${binding.join(", ")} } = __tapsim_modules[${JSON.stringify(dep)}];`;
  });
  const exports: string[] = [];
  text = text.replace(EXPORT_DECL_RE, (_all, what: string, name: string) => {
    exports.push(name);
    return `${what} ${name}`;
  });
  const leftover = /^\s*(import|export)\b.*$/m.exec(text) ?? SIDE_EFFECT_IMPORT_RE.exec(text);
  if (leftover) throw new Error(`viewer bundle: ${key}: cannot inline "${leftover[0].trim().slice(0, 80)}"`);
  return { key, body: text, exports, deps };
}

/** Makes text safe inside <script>…</script>: no "</script" or "<!--" can end or confuse it. */
export function scriptSafe(text: string): string {
  return text.replace(/<\/(script)/gi, "<\\/$1").replace(/<!--/g, "<\\!--");
}
