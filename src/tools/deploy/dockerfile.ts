/**
 * A small reader for this repository's Dockerfile and .dockerignore, enough for the tests to check what
 * an image would be made of without a Docker engine: instructions per stage (continuations joined,
 * comments dropped), stage ancestry, and the .dockerignore rules (last matching pattern wins, `!`
 * re-includes), as Docker's builder applies them.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

export const REPO = resolve(import.meta.dirname, "../../..");

export interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

export interface Stage {
  readonly name: string;
  readonly from: string;
  readonly instructions: Instruction[];
}

export interface Dockerfile {
  /** ARG instructions before the first FROM: name -> default value. */
  readonly globalArgs: Map<string, string>;
  readonly stages: Stage[];
}

export function parseDockerfile(text: string): Dockerfile {
  const logical: string[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.trimEnd();
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const whole = (pending + line).trim();
    pending = "";
    if (whole) logical.push(whole);
  }
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of logical) {
    const m = /^(\S+)\s*(.*)$/.exec(line)!;
    const keyword = m[1]!.toUpperCase();
    const args = m[2]!.replace(/\s+/g, " ").trim();
    if (keyword === "FROM") {
      const f = /^(\S+)(?: AS (\S+))?$/i.exec(args);
      if (!f) throw new Error(`unreadable FROM: ${args}`);
      stages.push({ name: f[2] ?? `#${stages.length}`, from: f[1]!, instructions: [] });
    } else if (stages.length === 0) {
      if (keyword !== "ARG") throw new Error(`${keyword} before the first FROM`);
      const [name, value = ""] = args.split(/=(.*)/s);
      globalArgs.set(name!, value);
    } else {
      stages.at(-1)!.instructions.push({ keyword, args });
    }
  }
  return { globalArgs, stages };
}

export function readDockerfile(): Dockerfile {
  return parseDockerfile(readFileSync(join(REPO, "Dockerfile"), "utf8"));
}

export function stage(file: Dockerfile, name: string): Stage {
  const found = file.stages.find((s) => s.name === name);
  if (!found) throw new Error(`no stage ${name}`);
  return found;
}

/** The stage and the stages it is built FROM, nearest first, for each value of the build ARGs given. */
export function ancestry(file: Dockerfile, name: string, args: Record<string, string> = {}): Stage[] {
  const chain: Stage[] = [];
  let current: Stage | undefined = stage(file, name);
  while (current) {
    chain.push(current);
    const from: string = current.from.replace(
      /\$\{(\w+)\}/g,
      (_, v: string) => args[v] ?? file.globalArgs.get(v) ?? "",
    );
    current = file.stages.find((s): boolean => s.name === from);
  }
  return chain;
}

/** An instruction's exec-form (JSON array) arguments; throws on shell form. */
export function execForm(args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === "string")) {
    throw new Error(`not an exec-form array: ${args}`);
  }
  return parsed;
}

function globToRegExp(pattern: string): RegExp {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*" && pattern[i + 1] === "*") {
      out += ".*";
      i++;
      if (pattern[i + 1] === "/") i++;
    } else if (c === "*") out += "[^/]*";
    else if (c === "?") out += "[^/]";
    else out += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  // A pattern naming a directory excludes everything under it.
  return new RegExp(`^${out}(/.*)?$`);
}

/** Whether `.dockerignore` keeps `path` (relative, slash-separated) out of the build context. */
export function dockerignoreExcludes(rules: string, path: string): boolean {
  let excluded = false;
  for (const raw of rules.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const negate = line.startsWith("!");
    const pattern = (negate ? line.slice(1) : line).replace(/^\/+/, "").replace(/\/+$/, "");
    if (globToRegExp(pattern).test(path)) excluded = !negate;
  }
  return excluded;
}
