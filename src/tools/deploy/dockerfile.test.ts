/**
 * The Dockerfile's security properties, read from the file itself so that none can silently regress:
 * a base pinned by digest, two targets, a build that drops dev dependencies, runtime images with no
 * package manager or shell, a numeric non-root user, declared volumes for every write, health checks
 * and SIGTERM, SoftHSM2 only on request; and a build context that cannot carry keys, tests or data.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  ancestry,
  type Dockerfile,
  dockerignoreExcludes,
  execForm,
  parseDockerfile,
  REPO,
  readDockerfile,
  stage,
} from "./dockerfile.js";

const file = readDockerfile();
const ignore = readFileSync(join(REPO, ".dockerignore"), "utf8");
const TARGETS = ["custody", "gateway"] as const;

const all = (f: Dockerfile, target: string, keyword: string, args: Record<string, string> = {}) =>
  ancestry(f, target, args)
    .reverse()
    .flatMap((s) => s.instructions.filter((i) => i.keyword === keyword));
/** Stages whose base is neither the digest-pinned Node 24 image nor a stage of the file. */
function unpinnedStages(f: Dockerfile): string[] {
  const pinned = /^node:24\.\d+\.\d+-[a-z]+-slim@sha256:[0-9a-f]{64}$/.test(
    f.globalArgs.get("NODE_IMAGE") ?? "",
  );
  const names = new Set(f.stages.map((s) => s.name));
  return f.stages
    .filter((s) => {
      if (names.has(s.from) || /^[\w-]*\$\{WITH_SOFTHSM\}$/.test(s.from)) return false;
      return !(pinned && s.from === "$" + "{NODE_IMAGE}");
    })
    .map((s) => s.name);
}

/** The value in force in the image: the last such instruction along the stage's ancestry. */
const last = (f: Dockerfile, target: string, keyword: string) => all(f, target, keyword).at(-1);

describe("Dockerfile", () => {
  it("starts every stage from the Node 24 base pinned by digest, or from one of its own stages", () => {
    expect(unpinnedStages(file)).toEqual([]);
    const image = file.globalArgs.get("NODE_IMAGE")!;
    // The runtime on the image is the one the tests run on.
    const wanted = /NODE_VERSION_WANTED=(\S+)/.exec(
      readFileSync(join(REPO, "scripts/node-runtime.sh"), "utf8"),
    )![1];
    expect(image.startsWith(`node:${wanted}-`)).toBe(true);
  });

  it("has the targets custody and gateway", () => {
    for (const t of TARGETS) expect(stage(file, t).name).toBe(t);
  });

  it("builds with npm ci, then prunes dev dependencies before anything is copied out", () => {
    const runs = stage(file, "build")
      .instructions.filter((i) => i.keyword === "RUN")
      .map((i) => i.args);
    const ci = runs.findIndex((r) => /\bnpm ci\b/.test(r));
    const build = runs.findIndex((r) => /\bnpm run build\b/.test(r));
    expect(ci).toBeGreaterThanOrEqual(0);
    expect(build).toBeGreaterThanOrEqual(ci);
    expect(runs[build]).toMatch(/npm run build && npm prune --omit=dev/);
    for (const t of TARGETS) {
      const copies = all(file, t, "COPY").filter((c) => c.args.includes("--from="));
      expect(copies.length).toBeGreaterThan(0);
      for (const c of copies) expect(c.args).toMatch(/^--from=build /);
    }
  });

  it("leaves Node's package managers and the shell out of both runtime images", () => {
    const runtime = stage(file, "runtime").instructions.find((i) => i.keyword === "RUN")!.args;
    for (const path of [
      "/usr/local/lib/node_modules",
      "/usr/local/bin/npm",
      "/usr/local/bin/npx",
      "/usr/local/bin/corepack",
      "/usr/local/bin/yarn",
      "/usr/local/bin/docker-entrypoint.sh",
    ]) {
      expect(runtime.split(" ")).toContain(path);
    }
    for (const t of TARGETS) {
      const strip = stage(file, t)
        .instructions.filter((i) => i.keyword === "RUN")
        .at(-1)!;
      const argv = execForm(strip.args);
      expect(argv.slice(0, 2)).toEqual(["/usr/bin/rm", "-f"]);
      for (const gone of [
        "/usr/bin/sh",
        "/usr/bin/bash",
        "/usr/bin/dash",
        "/usr/bin/apt-get",
        "/usr/bin/dpkg",
      ]) {
        expect(argv).toContain(gone);
      }
      // Nothing after the strip may need a shell: every later RUN, CMD, ENTRYPOINT, HEALTHCHECK is exec form.
      const after = stage(file, t).instructions.slice(stage(file, t).instructions.indexOf(strip) + 1);
      for (const i of after.filter((x) => ["RUN", "CMD", "ENTRYPOINT"].includes(x.keyword))) execForm(i.args);
    }
  });

  it("runs node directly: no npm, no shell wrapper, the compiled entry point", () => {
    for (const t of TARGETS) {
      const entrypoint = execForm(last(file, t, "ENTRYPOINT")!.args);
      const cmd = execForm(last(file, t, "CMD")!.args);
      expect(entrypoint).toEqual(["/usr/local/bin/node"]);
      expect(cmd).toEqual([`dist/${t}/main.js`]);
      for (const word of [...entrypoint, ...cmd]) expect(word).not.toMatch(/\b(npm|npx|sh|bash|tsx)\b/);
    }
  });

  it("runs as a numeric non-root user, stops on SIGTERM, and has a health check that needs no shell", () => {
    for (const t of TARGETS) {
      const user = last(file, t, "USER")!.args;
      expect(user).toMatch(/^[1-9]\d*:[1-9]\d*$/);
      expect(last(file, t, "STOPSIGNAL")!.args).toBe("SIGTERM");
      const hc = /^(?:--\S+ )*CMD (\[.*\])$/.exec(last(file, t, "HEALTHCHECK")!.args);
      expect(hc).not.toBeNull();
      expect(execForm(hc![1]!)).toEqual(["/usr/local/bin/node", "/app/healthcheck.mjs", t]);
    }
  });

  it("declares a volume for everything the services read or write at run time", () => {
    const volumes = (t: string, args: Record<string, string> = {}) =>
      all(file, t, "VOLUME", args).flatMap((v) => execForm(v.args));
    expect(volumes("custody")).toEqual(["/run/secrets/custody", "/var/lib/custody-audit"]);
    expect(volumes("custody", { WITH_SOFTHSM: "1" }).sort()).toEqual([
      "/run/secrets/custody",
      "/var/lib/custody-audit",
      "/var/lib/softhsm/tokens",
    ]);
    expect(volumes("gateway").sort()).toEqual(["/run/secrets/gateway", "/var/lib/card-gateway"]);
    // Every path the environment points at lies under a declared volume.
    for (const [t, prefix] of [
      ["custody", "CUSTODY_"],
      ["gateway", "GATEWAY_"],
    ] as const) {
      const env = all(file, t, "ENV")
        .map((e) => e.args)
        .join(" ");
      const paths = [...env.matchAll(new RegExp(`${prefix}\\w+=(/\\S+)`, "g"))].map((m) => m[1]!);
      expect(paths.length).toBeGreaterThan(0);
      for (const p of paths)
        expect(
          volumes(t).some((v) => p.startsWith(`${v}/`)),
          p,
        ).toBe(true);
    }
  });

  it("adds SoftHSM2 to the custody image only with --build-arg WITH_SOFTHSM=1", () => {
    expect(file.globalArgs.get("WITH_SOFTHSM")).toBe("0");
    const installs = (t: string, args: Record<string, string> = {}) =>
      all(file, t, "RUN", args).some((r) => /apt-get install .*\bsofthsm2\b/.test(r.args));
    expect(installs("custody")).toBe(false);
    expect(installs("custody", { WITH_SOFTHSM: "1" })).toBe(true);
    expect(installs("gateway", { WITH_SOFTHSM: "1" })).toBe(false);
  });

  it("the checks above fail on a Dockerfile that runs npm as root from an unpinned base", () => {
    const bad = parseDockerfile(
      ["FROM node:24-bookworm-slim AS gateway", "USER node", "CMD npm start"].join("\n"),
    );
    expect(unpinnedStages(bad)).toEqual(["gateway"]);
    expect(last(bad, "gateway", "USER")!.args).not.toMatch(/^[1-9]\d*:[1-9]\d*$/);
    expect(() => execForm(last(bad, "gateway", "CMD")!.args)).toThrow();
  });
});

describe(".dockerignore", () => {
  it("keeps keys, tests, local data, .tmp, node_modules and .git out of the build context", () => {
    for (const path of [
      "keys/dev/server.key",
      "keys/dev/dotva-keys/manifest.json",
      "src/tools/testing/custody-harness.ts",
      "testdata/fixtures/partners/x.json",
      "tests/other.ts",
      ".tmp/node24/bin/node",
      "node_modules/jose/package.json",
      ".git/config",
      "data/gateway.sqlite",
      "dist/custody/main.js",
      "docs/design.md",
      "src/tools/bench/core.ts",
      ".env",
      "src/custody/stray.pem",
      "src/gateway/local.sqlite",
      "deploy/k8s/custody.yaml",
    ]) {
      expect(dockerignoreExcludes(ignore, path), path).toBe(true);
    }
  });

  it("lets in every file the Dockerfile copies from the context", () => {
    const sources = file.stages
      .flatMap((s) => s.instructions)
      .filter((i) => i.keyword === "COPY" && !i.args.startsWith("--from="))
      .flatMap((i) => i.args.split(" ").slice(0, -1));
    expect(sources).toEqual(
      expect.arrayContaining(["package.json", "package-lock.json", "src", "proto", "deploy/healthcheck.mjs"]),
    );
    for (const source of sources) {
      const probe = ["src", "proto"].includes(source) ? `${source}/custody/x.ts` : source;
      expect(dockerignoreExcludes(ignore, probe), source).toBe(false);
    }
  });
});
