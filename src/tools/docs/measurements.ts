/**
 * What the timing test and the TLS scan record about a run, beyond pass or fail, in vitest's
 * `task.meta` (carried by the JSON reporter into .tmp/vitest.json). src/tools/docs/gen-assurance.ts
 * copies these into docs/assurance-measurements.json only when asked (`--record`): the figures vary from
 * run to run and machine to machine, the generated docs/assurance.md must not.
 */
export interface TimingMeasurement {
  /** The bound the test asserts every |t| stays below. */
  bound: number;
  /** Measured rounds per kind of failure. */
  rounds: number;
  /** Largest |t| of each pair of failure kinds over the crops (rounded to 0.01). */
  maxAbsT: Record<string, number>;
  /** Median duration per failure kind, in µs. */
  medianMicros: Record<string, number>;
}

/** One s_client probe or the sslscan scan of the custody port; each test fills in what it asserted. */
export interface TlsObservation {
  /** A protocol version custody refused (the probe succeeded against a permissive control server). */
  refusedProtocol?: string;
  /** TLS 1.3 suites custody accepted, of those offered one at a time. */
  acceptedSuites?: string[];
  /** The alert a handshake without a client certificate ended with. */
  withoutClientCertificate?: string;
  /** Protocols sslscan found enabled on the custody port. */
  sslscanEnabledProtocols?: string[];
  /** "protocol suite" pairs sslscan found accepted. */
  sslscanAcceptedSuites?: string[];
  /** The client CAs custody's CertificateRequest named, as sslscan printed them. */
  sslscanClientCas?: string[];
}

declare module "@vitest/runner" {
  interface TaskMeta {
    timing?: TimingMeasurement;
    tls?: TlsObservation;
  }
}
