/**
 * The generator of docs/assurance.md (src/tools/docs/gen-assurance.ts) on made-up reports: it refuses to
 * write a control whose selector matches no test or whose tests did not all pass, and its output does
 * not depend on what varies between runs of one commit (durations, order of files, measured figures).
 * That the committed file is what the whole suite's report gives is checked after the suite, by
 * scripts/test.sh (`--check`), since no test can see the report of the run it is part of.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { TARGETS } from "../fuzz/targets.js";
import { CONTROLS, type Control } from "./controls.js";
import {
  ASSURANCE_DOC,
  AssuranceFindings,
  type Inputs,
  readReports,
  recordMeasurements,
  renderAssurance,
  type VitestReport,
} from "./gen-assurance.js";
import type { TimingMeasurement } from "./measurements.js";

const ROOT = new URL("../../../", import.meta.url).pathname;
const TIMING = "src/custody/keystore/decrypt-timing.test.ts";
const TLS = "src/custody/custody-tls.test.ts";

type Assertion = VitestReport["testResults"][number]["assertionResults"][number];

function file(
  path: string,
  tests: Partial<Assertion>[],
  status = "passed",
): VitestReport["testResults"][number] {
  return {
    name: join(ROOT, path),
    status,
    message: "",
    assertionResults: tests.map((t) => ({
      ancestorTitles: ["suite"],
      title: "a test",
      status: "passed",
      ...t,
    })),
  };
}

const timing = (t: number): TimingMeasurement => ({
  bound: 4.5,
  rounds: 1200,
  maxAbsT: { "oaep/tag": t },
  medianMicros: { oaep: 1000 + t },
});

function report(t: number, order: "forward" | "reverse" = "forward"): VitestReport {
  const files = [
    file("src/a.test.ts", [{ title: "refuses x" }, { title: "refuses y" }, { title: "accepts z" }]),
    file("src/b.test.ts", [{ title: "case 1" }, { title: "case 2" }]),
    file(TIMING, [{ title: "file store", meta: { timing: timing(t) } }]),
    file(TLS, [
      { title: "refuses -tls1_2", meta: { tls: { refusedProtocol: "-tls1_2" } } },
      { title: "suites", meta: { tls: { acceptedSuites: ["TLS_AES_256_GCM_SHA384"] } } },
      { title: "no cert", meta: { tls: { withoutClientCertificate: "alert certificate required" } } },
      { title: "sslscan protocols", meta: { tls: { sslscanEnabledProtocols: ["TLSv1.3"] } } },
      {
        title: "sslscan suites",
        meta: { tls: { sslscanAcceptedSuites: ["TLSv1.3 TLS_AES_256_GCM_SHA384"] } },
      },
      { title: "sslscan client CAs", meta: { tls: { sslscanClientCas: ["/CN=test CA"] } } },
    ]),
  ];
  return { testResults: order === "forward" ? files : files.reverse() };
}

const controls: Control[] = [
  {
    id: "refusals",
    statement: "refuses",
    serves: "a threat",
    tests: [{ file: "src/a.test.ts", name: "refuses" }, { file: "src/b.test.ts" }],
  },
];

function inputs(r: VitestReport, overrides: Partial<Inputs> = {}): Inputs {
  return {
    ...readReports([r]),
    fuzz: { goal: 1_000_000, targets: {} },
    corpus: {},
    measurements: {},
    ...overrides,
  };
}

describe("docs/assurance.md generator", () => {
  it("counts the cases each selector and each control matched, with zero failures", () => {
    const doc = renderAssurance(inputs(report(1)), controls);
    expect(doc).toContain('`src/a.test.ts` › "refuses": 2<br>`src/b.test.ts` (all): 2 | 4 | 0 |');
    expect(doc).toContain("1 controls, 4 distinct test cases, 0 failures.");
  });

  it("writes the same document whatever the measured figures and the order of the report", () => {
    expect(renderAssurance(inputs(report(3.9, "reverse")), controls)).toBe(
      renderAssurance(inputs(report(0.2)), controls),
    );
  });

  it("refuses a control whose selector matches no test, naming it", () => {
    const stale: Control[] = [{ ...controls[0]!, tests: [{ file: "src/a.test.ts", name: "renamed test" }] }];
    expect(() => renderAssurance(inputs(report(1)), stale)).toThrow(AssuranceFindings);
    expect(() => renderAssurance(inputs(report(1)), stale)).toThrow(
      /refusals: no test matches .*renamed test/,
    );
  });

  it("refuses to write while a matched test failed or was skipped, or its file failed outside its tests", () => {
    for (const status of ["failed", "skipped", "pending"]) {
      const r = report(1);
      r.testResults[0]!.assertionResults[0]!.status = status;
      expect(() => renderAssurance(inputs(r), controls)).toThrow(new RegExp(`refuses x ${status}`));
    }
    const r = report(1);
    r.testResults[1] = { ...r.testResults[1]!, status: "failed", message: "afterAll hook timed out" };
    expect(() => renderAssurance(inputs(r), controls)).toThrow(/b\.test\.ts failed outside its tests/);
  });

  it("refuses a timing test that recorded no figures, and a fuzz target whose last run failed", () => {
    const r = report(1);
    delete r.testResults[2]!.assertionResults[0]!.meta;
    expect(() => renderAssurance(inputs(r), controls)).toThrow(/recorded no timing figures/);
    const crashed = {
      goal: 1_000_000,
      targets: {
        "jwe-parse": { executions: 5, seconds: 1, verdict: "failed" as const, date: "d", commit: "c" },
      },
    };
    expect(() => renderAssurance(inputs(report(1), { fuzz: crashed }), controls)).toThrow(/jwe-parse/);
  });

  it("takes a file's results from the last report that ran it", () => {
    const rerun: VitestReport = { testResults: [file("src/b.test.ts", [{ title: "case 1" }])] };
    const { cases } = readReports([report(1), rerun]);
    expect(cases.filter((c) => c.file === "src/b.test.ts").map((c) => c.name)).toEqual(["suite > case 1"]);
  });

  it("--record keeps the figures with their date and commit, and shows them only from the recorded file", () => {
    const { cases } = readReports([report(2.5)]);
    const recorded = recordMeasurements(cases, "2026-01-02", "0123456789abcdef");
    expect(recorded.timing?.tests["suite > file store"]?.maxAbsT).toEqual({ "oaep/tag": 2.5 });
    expect(recorded.tls).toMatchObject({
      refusedProtocols: ["-tls1_2"],
      withoutClientCertificate: "alert certificate required",
      sslscan: {
        enabledProtocols: ["TLSv1.3"],
        acceptedSuites: ["TLSv1.3 TLS_AES_256_GCM_SHA384"],
        clientCas: ["/CN=test CA"],
      },
    });
    const doc = renderAssurance(inputs(report(0.1), { measurements: recorded }), controls);
    expect(doc).toContain("oaep/tag 2.50");
    expect(doc).not.toContain("oaep/tag 0.10");
    expect(doc).toContain("Last recorded on 2026-01-02 at 0123456789ab");
    expect(doc).toContain("sslscan: protocols enabled `TLSv1.3`");
    expect(() => recordMeasurements(readReports([{ testResults: [] }]).cases, "d", "c")).toThrow(/--record/);
  });

  it("the committed document has a row for every control of the registry and every fuzz target", () => {
    const doc = readFileSync(ASSURANCE_DOC, "utf8");
    for (const control of CONTROLS) expect(doc).toContain(`| **${control.id}**: `);
    for (const target of Object.keys(TARGETS)) expect(doc).toContain(`| \`${target}\` |`);
  });
});
