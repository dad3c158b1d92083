/**
 * The restricted segment, built for real: two network namespaces joined by one veth pair, with a private
 * /30 that exists only inside them. Custody runs in one, whose only route is that link; the gateway (with
 * the partner simulators, which it must reach) runs in the other. A card goes through the whole flow
 * across the link over mTLS; from custody's namespace no connection can be opened anywhere off the link,
 * and the only socket listening there is custody's gRPC port.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { GATEWAY_SPIFFE } from "../dev-pki.js";
import { baseEnv, tempDir, testPki } from "../testing/custody-harness.js";

const REPO = resolve(import.meta.dirname, "../../..");
const ID = `${process.pid}`;
const CUSTODY_NS = `cc-custody-${ID}`;
const GATEWAY_NS = `cc-gateway-${ID}`;
// 10.231.N.0/30: .1 custody, .2 gateway. N from the pid keeps concurrent runs apart.
const NET = `10.231.${process.pid % 250}`;
const CUSTODY_IP = `${NET}.1`;
const GATEWAY_IP = `${NET}.2`;
const GRPC_PORT = 7443;

const ip = (...args: string[]) =>
  execFileSync("ip", args, { encoding: "utf8", timeout: 10_000, stdio: ["ignore", "pipe", "pipe"] });
const inNs = (ns: string, cmd: string, ...args: string[]) =>
  execFileSync("ip", ["netns", "exec", ns, cmd, ...args], { encoding: "utf8", timeout: 15_000 });

let custody: ChildProcess | undefined;
let custodyOutput = "";
const pki = testPki();

function cleanup(): void {
  for (const ns of [CUSTODY_NS, GATEWAY_NS]) {
    try {
      ip("netns", "del", ns);
    } catch {
      // Already gone (or never made): nothing to remove.
    }
  }
}

beforeAll(async () => {
  cleanup();
  ip("netns", "add", CUSTODY_NS);
  ip("netns", "add", GATEWAY_NS);
  ip(
    "link",
    "add",
    `ccc${ID}`,
    "netns",
    CUSTODY_NS,
    "type",
    "veth",
    "peer",
    "name",
    `ccg${ID}`,
    "netns",
    GATEWAY_NS,
  );
  for (const [ns, dev, addr] of [
    [CUSTODY_NS, `ccc${ID}`, CUSTODY_IP],
    [GATEWAY_NS, `ccg${ID}`, GATEWAY_IP],
  ] as const) {
    inNs(ns, "ip", "addr", "add", `${addr}/30`, "dev", dev);
    inNs(ns, "ip", "link", "set", dev, "up");
    inNs(ns, "ip", "link", "set", "lo", "up");
  }

  const env = baseEnv(pki, { CUSTODY_LISTEN: `${CUSTODY_IP}:${GRPC_PORT}`, CUSTODY_LOG_LEVEL: "info" });
  custody = spawn(
    "ip",
    ["netns", "exec", CUSTODY_NS, process.execPath, "--import", "tsx", join(REPO, "src/custody/main.ts")],
    { cwd: REPO, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", NODE_ENV: "production", ...env } },
  );
  custody.stdout!.on("data", (d: Buffer) => {
    custodyOutput += d.toString();
  });
  custody.stderr!.on("data", (d: Buffer) => {
    custodyOutput += d.toString();
  });
  const until = Date.now() + 30_000;
  while (!inNs(CUSTODY_NS, "ss", "-ltnH").includes(`${CUSTODY_IP}:${GRPC_PORT}`)) {
    if (custody.exitCode !== null) throw new Error(`custody exited early:\n${custodyOutput}`);
    if (Date.now() > until) throw new Error(`custody not listening within 30 s:\n${custodyOutput}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}, 60_000);

afterAll(async () => {
  if (custody && custody.exitCode === null) {
    const exited = new Promise((r) => custody!.once("exit", r));
    custody.kill("SIGTERM");
    const timer = setTimeout(() => custody!.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
  cleanup();
  // The namespaces, and the veth pair with them, are gone.
  expect(ip("netns", "list")).not.toMatch(new RegExp(`cc-(custody|gateway)-${ID}\\b`));
}, 20_000);

/** A node process in custody's namespace tries a TCP connection; returns the error code, or "connected". */
function connectFromCustody(host: string, port: number): string {
  const probe = `const s=require("node:net").connect({host:${JSON.stringify(host)},port:${port},timeout:3000});
s.on("connect",()=>{console.log("connected");s.destroy()});
s.on("timeout",()=>{console.log("TIMEOUT");s.destroy()});
s.on("error",(e)=>console.log(e.code))`;
  return inNs(CUSTODY_NS, process.execPath, "-e", probe).trim();
}

/** The same for a UDP datagram (a DNS query would be one): the send's error code, or "sent". */
function sendFromCustody(host: string, port: number): string {
  const family = host.includes(":") ? "udp6" : "udp4";
  const probe = `const s=require("node:dgram").createSocket("${family}");
s.send(Buffer.from("probe"),${port},${JSON.stringify(host)},(e)=>{console.log(e?e.code:"sent");s.close()})`;
  return inNs(CUSTODY_NS, process.execPath, "-e", probe).trim();
}

describe("custody alone in its network namespace, the gateway in another, one veth between them", () => {
  it("passes a card from Dotva to Knot through the gateway and custody over mTLS across the link", async () => {
    const out = execFileSync(
      "ip",
      [
        "netns",
        "exec",
        GATEWAY_NS,
        process.execPath,
        "--import",
        "tsx",
        "src/tools/deploy/netns-gateway-side.ts",
      ],
      {
        cwd: REPO,
        encoding: "utf8",
        timeout: 50_000,
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: process.env.HOME ?? "/tmp",
          NETNS_CUSTODY_ADDRESS: `${CUSTODY_IP}:${GRPC_PORT}`,
          NETNS_PKI_DIR: pki.dir,
          NETNS_WORK: tempDir("netns-gateway"),
        },
      },
    );
    const result = JSON.parse(out.trim().split("\n").at(-1)!) as Record<string, unknown>;
    expect(result.error).toBeUndefined();
    expect(result.readyz).toEqual({ status: "ready", checks: { storage: true, custody: true } });
    expect(result.job).toBe("sent");
    expect(result.knotReceivedIntact).toBe(true);
    // Custody audited it as the gateway's identity (its log is buffered: wait, bounded, for the line).
    await vi.waitFor(
      () => {
        const audits = custodyOutput
          .split("\n")
          .filter((l) => l.includes('"audit":"ReencryptForKnot"'))
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        expect(audits).toContainEqual(expect.objectContaining({ caller: GATEWAY_SPIFFE, outcome: "OK" }));
      },
      { timeout: 5_000, interval: 100 },
    );
  }, 60_000);

  it("has no route but the link, and can neither connect nor send a datagram anywhere off it", () => {
    const routes = inNs(CUSTODY_NS, "ip", "-4", "route", "show").trim().split("\n");
    expect(routes).toEqual([
      expect.stringMatching(new RegExp(`^${NET.replaceAll(".", "\\.")}\\.0/30 dev ccc${ID} `)),
    ]);
    expect(inNs(CUSTODY_NS, "ip", "-6", "route", "show").trim()).not.toMatch(/default/);
    // No route: the kernel refuses before any packet is sent. Another address in the same private
    // /16, a documentation address (RFC 5737) and the IPv6 documentation prefix (RFC 3849).
    for (const host of [`${NET}.9`, "10.231.255.1", "192.0.2.1", "2001:db8::1"]) {
      expect(connectFromCustody(host, 443), host).toBe("ENETUNREACH");
      expect(sendFromCustody(host, 53), host).toBe("ENETUNREACH");
    }
    // Control: the same probe does reach custody's own port, so a refusal above is not the probe failing.
    expect(connectFromCustody(CUSTODY_IP, GRPC_PORT)).toBe("connected");
    expect(sendFromCustody(CUSTODY_IP, 9)).toBe("sent");
  });

  it("listens on nothing but custody's gRPC port", () => {
    const tcp = inNs(CUSTODY_NS, "ss", "-ltnH").trim().split("\n");
    expect(tcp).toHaveLength(1);
    expect(tcp[0]!.split(/\s+/)[3]).toBe(`${CUSTODY_IP}:${GRPC_PORT}`);
    expect(inNs(CUSTODY_NS, "ss", "-lunH").trim()).toBe("");
  });
});
