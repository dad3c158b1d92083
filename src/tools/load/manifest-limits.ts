/**
 * The memory limit a service runs under in production, read from its Kubernetes manifest
 * (deploy/kubernetes/<service>.yaml, the Deployment's container of that name): the load test's default
 * ceiling, so that lowering the limit in the manifest tightens the test instead of drifting from it; and
 * the memory settings of the service's environment there, which the load test starts the service with.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const UNITS: Record<string, number> = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };

/** A Kubernetes memory quantity in binary units ("512Mi"), in bytes. */
export function memoryQuantityBytes(quantity: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)$/.exec(quantity);
  if (!m) throw new Error(`memory quantity ${JSON.stringify(quantity)} is not <n>Ki, <n>Mi or <n>Gi`);
  return Number(m[1]) * UNITS[m[2]!]!;
}

interface Container {
  readonly name?: string;
  readonly env?: readonly { readonly name: string; readonly value?: string }[];
  readonly resources?: { readonly limits?: { readonly memory?: string } };
}

function manifestContainer(service: "custody" | "gateway"): { file: string; container?: Container } {
  const file = fileURLToPath(new URL(`../../../deploy/kubernetes/${service}.yaml`, import.meta.url));
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    const value = doc.toJS() as {
      kind?: string;
      spec?: { template?: { spec?: { containers?: Container[] } } };
    };
    if (value?.kind !== "Deployment") continue;
    const container = value.spec?.template?.spec?.containers?.find((c) => c.name === service);
    if (container) return { file, container };
  }
  return { file };
}

export function manifestMemoryLimitBytes(service: "custody" | "gateway"): number {
  const { file, container } = manifestContainer(service);
  const memory = container?.resources?.limits?.memory;
  if (memory) return memoryQuantityBytes(memory);
  throw new Error(`${file}: no Deployment container "${service}" with resources.limits.memory`);
}

/** The variables that bound a Node process's memory (V8's heap, glibc's arenas). */
export const MEMORY_ENV = ["NODE_OPTIONS", "MALLOC_ARENA_MAX"] as const;

/**
 * The service's memory settings as its manifest sets them, so the load test runs the process with the
 * heap bounds it has in production rather than the ones V8 would derive from this machine's memory.
 */
export function manifestMemoryEnv(service: "custody" | "gateway"): Record<string, string> {
  const env = manifestContainer(service).container?.env ?? [];
  return Object.fromEntries(
    env
      .filter((e) => (MEMORY_ENV as readonly string[]).includes(e.name) && e.value !== undefined)
      .map((e) => [e.name, e.value!]),
  );
}
