// Node names in a scenario: resolved to ids with located errors that suggest the name meant.

import { isScalar, isSeq, type YAMLSeq } from "yaml";
import { closest, describe, type Ctx, type Field, type YamlNode } from "../engine/yaml_fields.js";

export class NodeNames {
  names: string[];

  constructor(
    private readonly ctx: Ctx,
    names: readonly string[],
  ) {
    this.names = [...names];
  }

  /** Per-node names from `nodes:` replace the topology's; they must stay distinct. */
  rename(names: string[], where: YamlNode): void {
    const seen = new Map<string, number>();
    names.forEach((name, i) => {
      if (seen.has(name)) this.ctx.fail(where, `nodes: node ${i} and node ${seen.get(name)} are both named "${name}"`);
      seen.set(name, i);
    });
    this.names = names;
  }

  /** A node by name (or by number, 0-based). */
  resolve(node: YamlNode | null, where: string): number {
    if (!isScalar(node) || node.value === null) this.ctx.fail(node, `${where}: expected a node name, got ${describe(node)}`);
    const value = (node as { value: unknown }).value;
    if (typeof value === "number") {
      if (Number.isInteger(value) && value >= 0 && value < this.names.length) return value;
      this.ctx.fail(node, `${where}: node ${value} does not exist (${this.names.length} nodes: 0..${this.names.length - 1})`);
    }
    const name = String(value);
    const id = this.names.indexOf(name);
    if (id >= 0) return id;
    // "n9" for "n0" is no typo: only a guess that differs in more than its digits helps.
    const guess = [closest(name, this.names)].find((g) => g !== undefined && g.replace(/\d+/g, "") !== name.replace(/\d+/g, ""));
    this.ctx.fail(node, `${where}: unknown node "${name}" (${guess ? `did you mean "${guess}"? ` : ""}nodes: ${this.list()})`);
  }

  /** `[a, b]` or `all`. */
  resolveList(f: Field, where: string): number[] {
    const v = f.value;
    if (isScalar(v) && v.value === "all") return this.names.map((_, i) => i);
    if (!isSeq(v)) return [this.resolve(v, where)];
    const ids = (v as YAMLSeq).items.map((item, k) => this.resolve(this.ctx.deref(item), `${where}[${k}]`));
    const dup = ids.find((id, k) => ids.indexOf(id) !== k);
    if (dup !== undefined) this.ctx.fail(v, `${where}: node "${this.names[dup]}" is listed twice`);
    if (ids.length === 0) this.ctx.fail(v, `${where}: an empty list`);
    return ids;
  }

  private list(): string {
    const shown = this.names.slice(0, 8).join(", ");
    return this.names.length > 8 ? `${shown}, ...` : shown;
  }
}
