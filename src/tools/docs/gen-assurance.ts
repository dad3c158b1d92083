/**
 * Writes docs/assurance.md from the test report: each control of src/tools/docs/controls.ts with the
 * tests that exercise it, how many test cases matched and how many failed; the fuzz targets with their
 * corpus, their regression run and the last `npm run fuzz` (fuzz/results.json); the decryption-timing
 * test and the TLS scan of the custody port.
 *
 *   tsx src/tools/docs/gen-assurance.ts                 write docs/assurance.md from .tmp/vitest.json
 *   tsx src/tools/docs/gen-assurance.ts --check         exit 1, printing the diff, when the committed file
 *                                                       differs from what would be written
 *   tsx src/tools/docs/gen-assurance.ts --record        first copy the timing and TLS figures of the report
 *                                                       into docs/assurance-measurements.json, then write
 *   --report FILE (repeatable)                          read these vitest JSON reports instead; a file's
 *                                                       results in a later report replace an earlier one's
 *
 * It exits 1 without writing when a selector of the registry matches no test, when a matched test did
 * not pass (failed, skipped or never ran), when a test file failed outside its tests, when the timing or
 * TLS tests recorded no figures, or when the last fuzz run of a target failed: a control without a
 * passing test is a finding, not a row.
 *
 * The document must be the same for every run of the same commit, or the check in scripts/test.sh
 * would fail on every run. So it holds only what the commit determines: the registry's selectors, the
 * number of cases each matched and their statuses (every one "passed", or nothing is written), the
 * corpus, the committed
 * fuzz/results.json, and the committed docs/assurance-measurements.json. The measured figures (Welch's t,
 * medians, the suites a given OpenSSL negotiates) vary from run to run and machine to machine, so the
 * tests assert their bounds on every run and record the figures in vitest's task.meta, and the document
 * shows those figures as "last recorded", updated only by the explicit `--record`. Fuzzing likewise:
 * the test command runs the corpus in regression mode; the executions are those of the last
 * `npm run fuzz`, committed with their date and commit. The matched cases are counted, not listed:
 * parameterised names carry their data, some of it computed from the clock (an expiry year), which
 * would change the document on 1 January.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { FUZZ_RESULTS, FUZZ_RUNS_GOAL, type FuzzResults, writeCommittedJson } from "../fuzz/results.js";
import { TARGETS } from "../fuzz/targets.js";
import { CONTROLS, type Control, FUZZ_PROPERTIES, type TestSelector } from "./controls.js";
import type { TimingMeasurement, TlsObservation } from "./measurements.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const ASSURANCE_DOC = join(ROOT, "docs/assurance.md");
export const MEASUREMENTS = join(ROOT, "docs/assurance-measurements.json");
const CORPUS = join(ROOT, "fuzz/corpus");
const TIMING_FILE = "src/custody/keystore/decrypt-timing.test.ts";
const TLS_FILE = "src/custody/custody-tls.test.ts";
const FUZZ_REGRESSION_FILE = "src/tools/fuzz/regression.test.ts";
const REGENERATE = "npm run docs:assurance (after a full npm test, which writes .tmp/vitest.json)";

/** The parts of vitest's JSON report read here. */
export interface VitestReport {
  testResults: {
    name: string;
    status: string;
    message?: string;
    assertionResults: {
      ancestorTitles: string[];
      title: string;
      status: string;
      meta?: { timing?: TimingMeasurement; tls?: TlsObservation };
    }[];
  }[];
}

export interface TestCase {
  /** From the repository root. */
  file: string;
  /** "describe > … > it". */
  name: string;
  status: string;
  meta: { timing?: TimingMeasurement; tls?: TlsObservation };
}

export interface Measurements {
  timing?: { date: string; commit: string; tests: Record<string, TimingMeasurement> };
  tls?: {
    date: string;
    commit: string;
    refusedProtocols: string[];
    acceptedSuites: string[];
    withoutClientCertificate: string;
    /** What sslscan found: enabled protocols, "protocol suite" pairs accepted, client CAs requested (absent from figures recorded before the scan existed). */
    sslscan?: { enabledProtocols: string[]; acceptedSuites: string[]; clientCas: string[] };
  };
}

export interface Inputs {
  cases: readonly TestCase[];
  /** Test files that failed outside their tests (a hook, an import), with vitest's message. */
  failedFiles: ReadonlyMap<string, string>;
  fuzz: FuzzResults;
  corpus: Record<string, number>;
  measurements: Measurements;
}

/** Merges reports in order: a file present in a later report replaces that file's earlier results. */
export function readReports(reports: readonly VitestReport[]): Pick<Inputs, "cases" | "failedFiles"> {
  const files = new Map<string, VitestReport["testResults"][number]>();
  for (const report of reports) {
    for (const file of report.testResults) files.set(relative(ROOT, file.name), file);
  }
  const cases: TestCase[] = [];
  const failedFiles = new Map<string, string>();
  for (const [file, result] of files) {
    const allPassed = result.assertionResults.every((a) => a.status === "passed");
    if (result.status !== "passed" && allPassed) failedFiles.set(file, result.message ?? result.status);
    for (const a of result.assertionResults) {
      cases.push({
        file,
        name: [...a.ancestorTitles, a.title].join(" > "),
        status: a.status,
        meta: a.meta ?? {},
      });
    }
  }
  return { cases, failedFiles };
}

const matches = (selector: TestSelector, c: TestCase) =>
  c.file === selector.file &&
  (selector.name === undefined ||
    (typeof selector.name === "string" ? c.name.includes(selector.name) : selector.name.test(c.name)));

const byName = (a: TestCase, b: TestCase) =>
  a.file === b.file ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.file < b.file ? -1 : 1;

function selectorText(s: TestSelector): string {
  return s.name === undefined
    ? `\`${s.file}\` (all)`
    : `\`${s.file}\` › ${cell(typeof s.name === "string" ? `"${s.name}"` : String(s.name))}`;
}

function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ").replaceAll("<", "&lt;");
}

export class AssuranceFindings extends Error {
  constructor(readonly findings: readonly string[]) {
    super(`docs/assurance.md not generated:\n${findings.map((f) => `  - ${f}`).join("\n")}`);
  }
}

interface ControlResult {
  control: Control;
  perSelector: { selector: TestSelector; cases: TestCase[] }[];
  cases: TestCase[];
}

function evaluate(
  inputs: Inputs,
  controls: readonly Control[],
): { results: ControlResult[]; findings: string[] } {
  const findings: string[] = [];
  const ids = new Set<string>();
  const results = controls.map((control) => {
    if (ids.has(control.id)) findings.push(`control ${control.id} is listed twice`);
    ids.add(control.id);
    if (control.tests.length === 0) findings.push(`control ${control.id} names no test`);
    const perSelector = control.tests.map((selector) => {
      const cases = inputs.cases.filter((c) => matches(selector, c)).sort(byName);
      if (cases.length === 0)
        findings.push(`control ${control.id}: no test matches ${selectorText(selector)}`);
      return { selector, cases };
    });
    const cases = [...new Set(perSelector.flatMap((p) => p.cases))].sort(byName);
    for (const c of cases) {
      if (c.status !== "passed") findings.push(`control ${control.id}: ${c.file} › ${c.name} ${c.status}`);
    }
    for (const file of new Set(cases.map((c) => c.file))) {
      const failure = inputs.failedFiles.get(file);
      if (failure !== undefined)
        findings.push(`control ${control.id}: ${file} failed outside its tests: ${failure}`);
    }
    return { control, perSelector, cases };
  });
  for (const c of inputs.cases.filter((c) => c.file === TIMING_FILE)) {
    if (c.meta.timing === undefined) findings.push(`${TIMING_FILE} › ${c.name} recorded no timing figures`);
  }
  for (const [target, result] of Object.entries(inputs.fuzz.targets)) {
    if (result.verdict === "failed")
      findings.push(`fuzz target ${target}: the last npm run fuzz failed (fuzz/crashes/)`);
  }
  return { results, findings };
}

const count = (n: number) => n.toLocaleString("en-US");
const short = (commit: string) => commit.slice(0, 12);

function controlsSection(results: readonly ControlResult[]): string[] {
  const lines = [
    "## Controls",
    "",
    "| control | serves | tests (file › words of the test's name: cases) | cases | failures |",
    "|---|---|---|---|---|",
  ];
  for (const { control, perSelector, cases } of results) {
    const tests = perSelector.map((p) => `${selectorText(p.selector)}: ${p.cases.length}`).join("<br>");
    const failures = cases.filter((c) => c.status !== "passed").length;
    lines.push(
      `| **${control.id}**: ${cell(control.statement)} | ${cell(control.serves)} | ${tests} | ${cases.length} | ${failures} |`,
    );
  }
  const total = new Set(results.flatMap((r) => r.cases)).size;
  lines.push("", `${results.length} controls, ${total} distinct test cases, 0 failures.`, "");
  return lines;
}

function fuzzSection(inputs: Inputs): string[] {
  const lines = [
    "## Fuzzing",
    "",
    `Each target runs under Jazzer.js in \`npm run fuzz\` (goal: ${count(FUZZ_RUNS_GOAL)} executions per target,`,
    "libFuzzer's `-runs`, capped in time) and over its saved corpus plus a short burst of mutations in the test",
    `command (\`${FUZZ_REGRESSION_FILE}\`). Executions, seconds and verdict are those of the last \`npm run fuzz\``,
    "of each target, committed in `fuzz/results.json` with the day and commit it ran on.",
    "",
    "| target | property | corpus inputs | regression run | executions | seconds | verdict | last fuzzed |",
    "|---|---|---:|---|---:|---:|---|---|",
  ];
  for (const name of Object.keys(TARGETS).sort() as (keyof typeof TARGETS)[]) {
    const regression = inputs.cases.filter(
      (c) => c.file === FUZZ_REGRESSION_FILE && c.name.includes(`${name}:`),
    );
    const regressionStatus =
      regression.length === 0
        ? "not run"
        : regression.every((c) => c.status === "passed")
          ? "passed"
          : "failed";
    const r = inputs.fuzz.targets[name];
    lines.push(
      `| \`${name}\` | ${cell(FUZZ_PROPERTIES[name])} | ${inputs.corpus[name] ?? 0} | ${regressionStatus} | ${
        r ? count(r.executions) : "—"
      } | ${r ? r.seconds : "—"} | ${r ? r.verdict : "not run yet (npm run fuzz)"} | ${r ? `${r.date}, ${short(r.commit)}` : "—"} |`,
    );
  }
  lines.push("");
  return lines;
}

function timingSection(inputs: Inputs): string[] {
  const cases = inputs.cases.filter((c) => c.file === TIMING_FILE).sort(byName);
  const recorded = inputs.measurements.timing;
  const lines = [
    "## Decryption timing",
    "",
    `\`${TIMING_FILE}\` times OAEP, content-key length and GCM tag failures, interleaved, on each key store, and`,
    "asserts that Welch's t of every pair (the largest over several percentile crops) stays below the bound.",
    "",
    "| test | asserted | this run | last recorded: largest \\|t\\| per pair | median µs per failure kind | rounds |",
    "|---|---|---|---|---|---:|",
  ];
  for (const c of cases) {
    const bound = c.meta.timing?.bound;
    const last = recorded?.tests[c.name];
    lines.push(
      `| ${cell(c.name)} | \\|t\\| < ${bound ?? "?"} | ${c.status} | ${
        last
          ? Object.entries(last.maxAbsT)
              .map(([pair, v]) => `${pair} ${v.toFixed(2)}`)
              .join(", ")
          : "not recorded"
      } | ${
        last
          ? Object.entries(last.medianMicros)
              .map(([kind, v]) => `${kind} ${v}`)
              .join(", ")
          : "—"
      } | ${last?.rounds ?? "—"} |`,
    );
  }
  lines.push(
    "",
    recorded
      ? `Figures last recorded on ${recorded.date} at ${short(recorded.commit)}.`
      : "No figures recorded yet.",
    "",
  );
  return lines;
}

function tlsSection(inputs: Inputs): string[] {
  const cases = inputs.cases.filter((c) => c.file === TLS_FILE).sort(byName);
  const recorded = inputs.measurements.tls;
  const lines = [
    "## TLS scan of the custody port",
    "",
    `\`${TLS_FILE}\` probes a running custody with \`openssl s_client\` and scans it with \`sslscan\` (each refusal`,
    "checked against a permissive control server, so it is custody's refusal and not the probe's).",
    "",
    "| test | this run |",
    "|---|---|",
    ...cases.map((c) => `| ${cell(c.name)} | ${c.status} |`),
    "",
  ];
  if (recorded) {
    lines.push(
      `Last recorded on ${recorded.date} at ${short(recorded.commit)}: protocols refused ${recorded.refusedProtocols.map((p) => `\`${p}\``).join(", ")};`,
      `TLS 1.3 suites accepted ${recorded.acceptedSuites.map((s) => `\`${s}\``).join(", ")} (all AEAD); without a client`,
      `certificate: \`${recorded.withoutClientCertificate}\`.`,
      ...(recorded.sslscan
        ? [
            `sslscan: protocols enabled ${recorded.sslscan.enabledProtocols.map((p) => `\`${p}\``).join(", ")}; suites accepted`,
            `${recorded.sslscan.acceptedSuites.map((s) => `\`${s}\``).join(", ")}; client certificate requested from`,
            `${recorded.sslscan.clientCas.map((c) => `\`${c}\``).join(", ")}.`,
          ]
        : []),
      "",
    );
  } else {
    lines.push("No scan recorded yet.", "");
  }
  return lines;
}

/** The document, or AssuranceFindings when a control lacks a passing test. */
export function renderAssurance(inputs: Inputs, controls: readonly Control[] = CONTROLS): string {
  const { results, findings } = evaluate(inputs, controls);
  if (findings.length > 0) throw new AssuranceFindings(findings);
  return [
    "# Assurance",
    "",
    "<!-- Generated by src/tools/docs/gen-assurance.ts from the test report; do not edit. Regenerate: npm run docs:assurance -->",
    "",
    "What the tests show, control by control: each control of [the threat model](threat-model.md) and the",
    "[design invariants](design.md#invariants), the tests that exercise it (selected by file and by the words of",
    "their name in `src/tools/docs/controls.ts`; a row's cases are the tests of that file whose name holds those",
    "words), how many test cases matched, and how many failed. The file is generated from the whole suite's",
    "report; after a whole-suite run `npm test` fails when this file differs from what that run's report gives,",
    "and the generator refuses to write it while any matched test fails or any control matches none.",
    "",
    "It holds only what the commit determines, so that every run of the suite on the same commit gives the",
    "same file: selectors and case counts, the committed fuzzing results, and measured figures as last recorded.",
    "The timing bound and the TLS properties are asserted on every run; their figures (Welch's t, medians,",
    "suites negotiated) vary with the machine and are recorded only on request:",
    "`npm run docs:assurance -- --record` after a run of the suite.",
    "",
    ...controlsSection(results),
    ...fuzzSection(inputs),
    ...timingSection(inputs),
    ...tlsSection(inputs),
  ].join("\n");
}

/** Figures from this report's timing and TLS tests, for docs/assurance-measurements.json. */
export function recordMeasurements(cases: readonly TestCase[], date: string, commit: string): Measurements {
  const timing = Object.fromEntries(
    cases
      .filter((c) => c.file === TIMING_FILE && c.meta.timing !== undefined)
      .sort(byName)
      .map((c) => [c.name, c.meta.timing!]),
  );
  const tls = cases.filter((c) => c.file === TLS_FILE).map((c) => c.meta.tls ?? {});
  const refusedProtocols = tls.flatMap((o) => (o.refusedProtocol ? [o.refusedProtocol] : [])).sort();
  const acceptedSuites = tls.flatMap((o) => o.acceptedSuites ?? []);
  const withoutClientCertificate = tls.find((o) => o.withoutClientCertificate)?.withoutClientCertificate;
  const enabledProtocols = tls.find((o) => o.sslscanEnabledProtocols)?.sslscanEnabledProtocols;
  const scannedSuites = tls.find((o) => o.sslscanAcceptedSuites)?.sslscanAcceptedSuites;
  const clientCas = tls.find((o) => o.sslscanClientCas)?.sslscanClientCas;
  if (
    Object.keys(timing).length === 0 ||
    refusedProtocols.length === 0 ||
    acceptedSuites.length === 0 ||
    !withoutClientCertificate ||
    !enabledProtocols ||
    !scannedSuites ||
    !clientCas
  ) {
    throw new Error(
      `--record: the report lacks the figures of ${TIMING_FILE} or ${TLS_FILE}; run them first (npx vitest run ${TIMING_FILE} ${TLS_FILE} --reporter=json --outputFile.json=.tmp/measure.json, then --report .tmp/vitest.json --report .tmp/measure.json)`,
    );
  }
  return {
    timing: { date, commit, tests: timing },
    tls: {
      date,
      commit,
      refusedProtocols,
      acceptedSuites,
      withoutClientCertificate,
      sslscan: { enabledProtocols, acceptedSuites: scannedSuites, clientCas },
    },
  };
}

function corpusCounts(): Record<string, number> {
  return Object.fromEntries(
    Object.keys(TARGETS).map((name) => {
      const dir = join(CORPUS, name);
      return [name, existsSync(dir) ? readdirSync(dir).length : 0];
    }),
  );
}

function readJson<T>(path: string, fallback: T): T {
  return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as T) : fallback;
}

function main(argv: readonly string[]): number {
  const reports = argv.flatMap((a, i) => (argv[i - 1] === "--report" ? [a] : []));
  const reportFiles = reports.length > 0 ? reports : [join(ROOT, ".tmp/vitest.json")];
  for (const f of reportFiles) {
    if (!existsSync(f)) {
      console.error(`${f} not found: run the whole suite first (npm test)`);
      return 1;
    }
  }
  const { cases, failedFiles } = readReports(
    reportFiles.map((f) => readJson<VitestReport>(f, { testResults: [] })),
  );
  let measurements = readJson<Measurements>(MEASUREMENTS, {});
  if (argv.includes("--record")) {
    const commit = spawnSync("git", ["rev-parse", "HEAD"], { cwd: ROOT, encoding: "utf8" }).stdout.trim();
    measurements = recordMeasurements(cases, new Date().toISOString().slice(0, 10), commit);
    writeCommittedJson(MEASUREMENTS, measurements);
    console.log(`recorded the timing and TLS figures in ${relative(ROOT, MEASUREMENTS)}`);
  }
  let next: string;
  try {
    next = `${renderAssurance({
      cases,
      failedFiles,
      fuzz: readJson<FuzzResults>(FUZZ_RESULTS, { goal: 0, targets: {} }),
      corpus: corpusCounts(),
      measurements,
    })}\n`;
  } catch (err) {
    if (!(err instanceof AssuranceFindings)) throw err;
    console.error(err.message);
    return 1;
  }
  const current = existsSync(ASSURANCE_DOC) ? readFileSync(ASSURANCE_DOC, "utf8") : "";
  if (argv.includes("--check")) {
    if (next === current) return 0;
    const expected = join(ROOT, ".tmp/assurance.expected.md");
    mkdirSync(join(ROOT, ".tmp"), { recursive: true });
    writeFileSync(expected, next);
    spawnSync(
      "diff",
      [
        "-u",
        "--label",
        "docs/assurance.md (committed)",
        "--label",
        "generated from this run",
        ASSURANCE_DOC,
        expected,
      ],
      {
        stdio: "inherit",
      },
    );
    console.error(
      `docs/assurance.md differs from what this run's report gives: run ${REGENERATE} and commit it`,
    );
    return 1;
  }
  if (next !== current) writeFileSync(ASSURANCE_DOC, next);
  console.log(`${relative(ROOT, ASSURANCE_DOC)} ${next === current ? "unchanged" : "written"}`);
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
