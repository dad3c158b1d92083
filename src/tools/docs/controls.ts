/**
 * The control registry behind docs/assurance.md (src/tools/docs/gen-assurance.ts): each control the
 * threat model (docs/threat-model.md) and the design invariants (docs/design.md) name, with the tests
 * that exercise it.
 *
 * Adding a row: append `{ id, statement, serves, tests: [t(file, words)] }` below, where `file` is the
 * test file's path from the repository root and `words` a piece of the test's name as the report shows
 * it ("describe > it", the words of the `it(...)`, as docs/threat-model.md quotes them), or a RegExp;
 * leave `words` out to take every test in the file. Then run the suite (`npm test`) and
 * `npm run docs:assurance`, and commit docs/assurance.md with the row. Every selector must match at
 * least one test and every matched test must pass, or the generator fails: a control whose tests were
 * renamed or removed is a finding, never a row that claims coverage it lacks. A control with no test
 * belongs in docs/threat-model.md's gaps, not here.
 *
 * A new fuzz target needs its property in FUZZ_PROPERTIES (the type check fails without it).
 */
import type { TargetName } from "../fuzz/targets.js";

export interface TestSelector {
  /** Test file, from the repository root. */
  file: string;
  /** Part of "describe > … > it" (a string is matched literally), or undefined for the whole file. */
  name?: string | RegExp;
}

export interface Control {
  /** Stable id, cited from elsewhere: never reused for another control. */
  id: string;
  /** The control, in one line. */
  statement: string;
  /** The design invariant or threat it serves. */
  serves: string;
  tests: readonly TestSelector[];
}

const t = (file: string, name?: string | RegExp): TestSelector =>
  name === undefined ? { file } : { file, name };

export const CONTROLS: readonly Control[] = [
  // A compromised or malicious gateway
  {
    id: "recipient-policy",
    statement:
      "Custody re-encrypts only to a pinned RFC 7638 thumbprint or an x5c leaf bound to a configured root and Knot's name, validated as an encryption leaf",
    serves: "invariant 3; a gateway using custody as a decryption oracle by naming its own key",
    tests: [
      t("src/custody/recipient-x5c.test.ts", "refuses"),
      t("src/custody/policy.test.ts", "refuses a Knot key"),
      t("src/custody/service.test.ts", "refuses a recipient key that is not pinned"),
    ],
  },
  {
    id: "plaintext-stays-in-custody",
    statement:
      "Card data only inside custody (a worker thread, or the main thread with CUSTODY_WORKERS=0); errors name fields, never values; buffers zeroed on every path; no card data in any log line",
    serves: "invariant 1; reading plaintext from a response, error or log",
    tests: [
      t("src/core/reencrypt.test.ts", "overwrites"),
      t("src/custody/service.test.ts", "never lets the card's PAN, CVV or expiry"),
      t("src/core/card/dotva-secrets.test.ts", "withholds member names that could be card data"),
      t("src/gateway/flow.test.ts", "never contain secrets_jwe"),
      t("src/gateway/e2e.test.ts", "nothing secret in either process's output"),
    ],
  },
  {
    id: "uniform-decrypt-failure",
    statement:
      "Every failure after the private key is involved is one status and message; a failed unwrap carries on with a random key through the same AES-GCM work and the same token calls",
    serves: "invariant 2; a Bleichenbacher/Manger-style padding oracle",
    tests: [
      t(
        "src/core/crypto/jwe-decrypt.test.ts",
        "one indistinguishable failure once the private key is involved",
      ),
      t("src/core/crypto/oaep-decode.test.ts"),
      t("src/core/crypto/wycheproof-primitives.test.ts", "Wycheproof RSA-OAEP-256"),
      t("src/custody/service.test.ts", "answers every decryption failure identically"),
      t("src/custody/wycheproof-service.test.ts"),
      t("src/custody/keystore/pkcs11/oaep-mechanism.test.ts"),
    ],
  },
  {
    id: "decrypt-timing",
    statement:
      "OAEP, content-key length and GCM tag failures take the same time on both key stores (Welch's t below the bound)",
    serves: "invariant 2; a timing oracle on which decryption step failed",
    tests: [t("src/custody/keystore/decrypt-timing.test.ts")],
  },
  {
    id: "caller-policy",
    statement:
      "Two-sided per-caller authorization: source keys and recipients granted per SPIFFE ID, refused without naming values, a missing key refused alike, a malformed reload keeps the previous grants",
    serves: "a second internal caller decrypting with another caller's key or sending to its recipient",
    tests: [
      t("src/custody/caller-policy.test.ts", "refuses key B to a caller granted only key A"),
      t(
        "src/custody/caller-policy.test.ts",
        "answers a key that does not exist as SOURCE_KEY_NOT_ALLOWED too",
      ),
      t("src/custody/caller-policy.test.ts", "refuses a caller whose recipient set lacks Knot's key"),
      t("src/custody/caller-policy.test.ts", "keeps the previous grants when the new file is malformed"),
    ],
  },
  {
    id: "metrics-nothing-secret",
    statement:
      "Custody metrics off by default, on their own listener, labels only from fixed sets or vouched-for values",
    serves: "reading card data or growing series without bound through metrics",
    tests: [t("src/custody/metrics.test.ts")],
  },
  {
    id: "custody-overload",
    statement:
      "Per-caller rate and concurrency limits, a bounded queue answering RESOURCE_EXHAUSTED, the caller's deadline honoured",
    serves: "exhausting custody",
    tests: [
      t("src/custody/caller-identity.test.ts", "per-caller limits"),
      t("src/custody/reencryptor.test.ts", "answers OVERLOADED (RESOURCE_EXHAUSTED)"),
      t("src/custody/policy.test.ts", "overload is RESOURCE_EXHAUSTED"),
      t("src/custody/service.test.ts", "honours the caller's deadline"),
    ],
  },
  // A malicious caller on custody's network
  {
    id: "mtls-required",
    statement: "No client certificate, one from another CA or an expired one never reaches a handler",
    serves: "invariant 4; calling custody without a valid certificate",
    tests: [
      t("src/custody/service.test.ts", "at the TLS handshake"),
      t("src/custody/service.test.ts", "refuses an authenticated caller not on the allowlist"),
    ],
  },
  {
    id: "tls-posture",
    statement:
      "openssl s_client and sslscan against the custody port: SSLv2 to TLS 1.2 refused, TLS 1.3 with AEAD suites only, a client certificate from the custody CA requested, a handshake without one ends in the certificate-required alert",
    serves: "invariant 4; downgrade, weak suites, an anonymous client",
    tests: [t("src/custody/custody-tls.test.ts")],
  },
  {
    id: "spiffe-identity",
    statement:
      "In production a caller is exactly one SPIFFE URI SAN; cn: entries refused; the matched allow-list entry audited",
    serves: "invariant 4; passing as the gateway with CN=card-gateway or a second URI SAN",
    tests: [
      t("src/custody/caller-trust.test.ts", "does not let cn:card-gateway admit"),
      t("src/custody/caller-trust.test.ts", "smuggled in as a second URI SAN"),
      t("src/custody/caller-trust.test.ts", "audits which allowlist entry admitted the caller"),
      t("src/custody/caller-identity.test.ts", "caller identity"),
    ],
  },
  {
    id: "certificate-rotation",
    statement:
      "Custody and the gateway's client reload certificate, key, CA and CRLs as a consistent set, with no restart and no failed call",
    serves: "keeping a stolen certificate useful for long",
    tests: [t("src/custody/tls-rotation.test.ts")],
  },
  {
    id: "revocation-and-expiry",
    statement:
      "CRL checked at every handshake and reloaded; a maximum connection age forces re-handshakes; expiry re-checked on every call",
    serves: "invariant 4; using a revoked or expired certificate",
    tests: [
      t("src/custody/caller-trust.test.ts", "refuses a client certificate the CRL revokes"),
      t("src/custody/caller-trust.test.ts", "closes connections older than"),
      t("src/custody/caller-trust.test.ts", "once the client certificate has expired"),
    ],
  },
  {
    id: "dev-switches-fenced",
    statement:
      "The dev plaintext and allow-any-recipient switches need development mode, which needs loopback and refuses NODE_ENV=production",
    serves: "invariant 4; an unauthenticated oracle through development switches left on",
    tests: [
      t("src/custody/process.test.ts", "refuses to start with the review's attack settings"),
      t("src/custody/process.test.ts", "rejects dev plaintext outside development mode"),
      t("src/custody/process.test.ts", "rejects allow-any-recipient outside development mode"),
      t("src/custody/process.test.ts", "rejects development mode on a non-loopback address"),
      t("src/custody/process.test.ts", "rejects development mode under NODE_ENV=production"),
    ],
  },
  {
    id: "strict-jwe-parsing",
    statement:
      "Compact serialization only, alg/enc allow-listed, no zip, no unknown crit, canonical base64url, size caps, all before any private-key use",
    serves: "invariant 8; hostile JWEs fed to the parser",
    tests: [
      t("src/core/crypto/jwe-decrypt.test.ts", "checks made before any private-key operation"),
      t("src/core/crypto/wycheproof-jwe.test.ts"),
      t("src/core/crypto/interop.test.ts"),
    ],
  },
  {
    id: "hostile-catalogue",
    statement:
      "Every row of the hostile-input catalogue answers its expected status and code, and nothing is stored or logged that should not be",
    serves: "invariants 1, 8 and 10; input nobody meant to send",
    tests: [t("src/tools/hostile/custody.test.ts"), t("src/tools/hostile/gateway.test.ts")],
  },
  {
    id: "fuzz-regression",
    statement:
      "Each fuzz target's property holds on its whole saved corpus (seeds and past crashes) and on a burst of mutations, in every test run",
    serves: "invariants 1, 8 and 10; parsers facing arbitrary bytes",
    tests: [t("src/tools/fuzz/regression.test.ts")],
  },
  // A replayed or forged partner webhook
  {
    id: "knot-signature",
    statement:
      "Knot-Signature verified as Knot documents it, constant-time; the source-IP allow-list required in production",
    serves: "a forged Knot webhook",
    tests: [
      t("src/gateway/units.test.ts", "Knot signature"),
      t("src/gateway/flow.test.ts", "refuses missing or wrong signatures"),
      t("src/gateway/units.test.ts", "requires KNOT_IP_ALLOWLIST"),
      t("src/tools/simulators/knot-simulator.test.ts", "matches openssl over the documented string"),
    ],
  },
  {
    id: "knot-replay",
    statement:
      "One accepted body per (event, session_id), another refused 409 and alerted; a timestamp window",
    serves: "replaying a signed AUTHENTICATED on an edited body of the same length",
    tests: [
      t("src/gateway/flow.test.ts", "the review's probe: the victim's AUTHENTICATED signature"),
      t("src/gateway/flow.test.ts", "the timestamp window admits Knot's retries"),
      t("src/gateway/storage.test.ts", "accepts one body per Knot (event, session_id)"),
    ],
  },
  {
    id: "card-binding",
    statement:
      "A card is sent only when bound to the task's external_user_id, looked up by (workspace_id, card_id); CARD_NOT_OWNED / CARD_AMBIGUOUS final and alerted",
    serves: "a forged AUTHENTICATED winning the race against Knot's own, naming another user's card",
    tests: [
      t("src/gateway/flow.test.ts", "a replay that arrives before Knot's own body"),
      t("src/gateway/storage.test.ts", "finds a task's card only through its user's binding"),
      t("src/gateway/send-job.test.ts", "a card not bound to the task's external_user_id"),
      t("src/gateway/send-job.test.ts", "two deliveries for the bound (workspace_id, card_id)"),
    ],
  },
  {
    id: "card-mismatch",
    statement: "Custody's last four digits and BIN compared with the stored card's before POST /card",
    serves: "a substituted secrets_jwe under a stored card",
    tests: [
      t("src/gateway/send-job.test.ts", "custody's last four digits differ from the stored card's"),
      t("src/gateway/send-job.test.ts", "custody's BIN differs from the stored card's"),
    ],
  },
  {
    id: "dotva-sender",
    statement:
      "Dotva's deliveries authenticated by the source-IP allow-list, optionally our shared secret or HMAC",
    serves: "a non-Dotva sender posting card deliveries",
    tests: [
      t("src/gateway/contract.test.ts", "the IP allow-list alone authenticates Dotva"),
      t("src/gateway/flow.test.ts", "verifies the shared secret and the HMAC of the raw body"),
    ],
  },
  {
    id: "first-delivery-authoritative",
    statement: "The first Dotva delivery is kept; replaced only after custody refused it",
    serves: "invariant 5; a redelivery that replaces a good stored card",
    tests: [
      t("src/gateway/storage.test.ts", "a redelivery replaces secrets custody refused, and only those"),
      t(
        "src/gateway/contract.test.ts",
        "a redelivery with re-encrypted secrets_jwe is acknowledged 200 and the first kept",
      ),
      t("src/gateway/flow.test.ts", "a duplicate changes nothing"),
    ],
  },
  {
    id: "durable-intake",
    statement: "A Dotva webhook is answered 200 only after the record is durably committed",
    serves: "invariant 5; a delivery acknowledged and lost in a crash",
    tests: [t("src/gateway/e2e.test.ts", "every Dotva delivery answered 200 before the kill is in storage")],
  },
  {
    id: "send-within-window",
    statement:
      "POST /card within Knot's window, across a restart, with full-jitter retries only where they help, once per task between instances",
    serves: "invariant 6; a card lost or sent twice",
    tests: [
      t("src/gateway/flow.test.ts", "send-card jobs"),
      t("src/gateway/e2e.test.ts", "completes after restart within its deadline"),
      t("src/gateway/e2e.test.ts", "two gateways on one PostgreSQL"),
      t("src/gateway/units.test.ts", "full-jitter backoff"),
    ],
  },
  {
    id: "exact-ids",
    statement: "Ids beyond 2^53 kept as exact decimal strings and written back as exact JSON numbers",
    serves: "invariant 11; a card mapped to the wrong task",
    tests: [
      t("src/gateway/contract.test.ts", "keeps ids beyond 2^53"),
      t("src/gateway/knot-send-card.test.ts", "writes task_id as a JSON number with every digit"),
    ],
  },
  {
    id: "slow-body-cutoff",
    statement: "GATEWAY_REQUEST_TIMEOUT_MS for headers and body: 408 and the connection closed",
    serves: "holding the gateway's connections open with a slowloris body",
    tests: [t("src/tools/hostile/gateway.test.ts", "trickles its body (slowloris)")],
  },
  // A rogue recipient or a hostile network path to Knot
  {
    id: "redirect-allow-list",
    statement:
      "307/308 followed only within the Knot origin allow-list; 301/302/303 on a POST never followed",
    serves: "a redirect leading the card and Knot credentials elsewhere",
    tests: [
      t(
        "src/gateway/knot-send-card.test.ts",
        "never sends credentials or the card to an origin outside the allow-list",
      ),
      t("src/gateway/knot-send-card.test.ts", "to a POST is a final failure recorded with the Location"),
    ],
  },
  {
    id: "knot-key-pinned",
    statement:
      "Custody's pin stays the authority: one refetch, then KNOT_KEY_NOT_PINNED with an alert metric",
    serves: "Knot's key swapped for an attacker's",
    tests: [t("src/gateway/send-job.test.ts", "custody refusing the fresh key too")],
  },
  {
    id: "https-to-knot",
    statement: "KNOT_BASE_URL and KNOT_REDIRECT_ORIGINS must be https outside development",
    serves: "credentials or Knot's key read on the wire",
    tests: [t("src/gateway/units.test.ts", "refuses http for KNOT_BASE_URL and KNOT_REDIRECT_ORIGINS")],
  },
  // A stolen gateway database or backup
  {
    id: "secrets-purged",
    statement:
      "Only ciphertext stored, purged after the first send or a TTL; no raw partner bodies; secure_delete and a truncating WAL checkpoint",
    serves: "reading cards from a stolen database",
    tests: [
      t("src/gateway/data-at-rest.test.ts"),
      t("src/gateway/storage.test.ts", "purges secrets_jwe after the TTL"),
    ],
  },
  {
    id: "database-file-modes",
    statement: "SQLite file, WAL and shm 0600 in a 0700 directory",
    serves: "reading the database file on the host",
    tests: [t("src/gateway/storage.test.ts", "SQLite files at rest")],
  },
  {
    id: "postgres-tls",
    statement: "PostgreSQL sslmode=verify-full required in production",
    serves: "reading database traffic",
    tests: [t("src/gateway/units.test.ts", "requires sslmode=verify-full for PostgreSQL")],
  },
  {
    id: "old-variable-names-refused",
    statement:
      "The gateway's old CUSTODY_* names refused at start-up, naming the GATEWAY_CUSTODY_* replacement",
    serves: "using the old custody variable names by mistake",
    tests: [
      t("src/gateway/units.test.ts", "refuses the gateway's old custody variable names"),
      t("src/gateway/e2e.test.ts", "a gateway given an old custody variable name stops"),
    ],
  },
  // Keys, errors, partners
  {
    id: "keys-stay-in-store",
    statement:
      "The key store offers public metadata and one unwrap, never the key; token keys sensitive and non-extractable; loose key files refused; keys found by fingerprint",
    serves: "invariant 7; private keys leaving their store",
    tests: [
      t("src/custody/keystore/file/file-key-store.test.ts"),
      t("src/custody/keystore/pkcs11/pkcs11-key-store.test.ts"),
      t("src/custody/keytool/pkcs11-keytool.test.ts"),
      t("src/core/crypto/fingerprint.test.ts"),
    ],
  },
  {
    id: "rotation-loses-no-call",
    statement:
      "A call finishes on the key set current when it started; a reload that fails validation keeps the previous set",
    serves: "invariant 9; calls lost in a key rotation or a failed reload",
    tests: [
      t("src/custody/rotation.test.ts"),
      t("src/custody/process.test.ts", "reloads keys on SIGHUP and drains in-flight calls on SIGTERM"),
    ],
  },
  {
    id: "stable-error-codes",
    statement:
      "Every failure has a stable code (gRPC status and reason, HTTP status and error code) and a message without the input; a configuration error names the variable",
    serves: "invariant 10; callers unable to act on a failure, or input echoed back",
    tests: [
      t("src/custody/service.test.ts", "to its status and reason"),
      t("src/custody/service.test.ts", "puts the reason in google.rpc.Status/ErrorInfo"),
      t("src/core/card/dotva-secrets.test.ts", "errors never echo the value"),
      t("src/custody/process.test.ts", "exits with code 2 and the variable's name"),
    ],
  },
  {
    id: "partner-examples-accepted",
    statement: "The partners' example bodies are accepted as they are; the Dotva plaintext read tolerantly",
    serves: "invariant 11; refusing what the partners actually send",
    tests: [
      t("src/gateway/contract.test.ts"),
      t("src/core/card/dotva-secrets.test.ts", "every documented-tolerated shape"),
    ],
  },
  // Supply chain and platform
  {
    id: "core-dumps-off",
    statement: "Custody in production refuses to start unless RLIMIT_CORE is 0",
    serves: "card data and private keys written to a core file",
    tests: [
      t("src/custody/core-dumps.test.ts", "refuses to start in production while core dumps are enabled"),
      t("src/custody/core-dumps.test.ts", "starts in production with core dumps off"),
    ],
  },
  // Someone covering their tracks on the custody host
  {
    id: "audit-written-before-answer",
    statement:
      "Every ReencryptForKnot is a line in custody's own append-only audit file, written synchronously before the answer; a call whose line cannot be written is answered AUDIT_UNAVAILABLE",
    serves: "invariant 12; a re-encryption answered but never recorded",
    tests: [
      t("src/custody/audit/audit.test.ts", "leaves the answered call's line in the file"),
      t("src/custody/audit/audit.test.ts", "answers AUDIT_UNAVAILABLE, not the card"),
      t("src/custody/audit/audit.test.ts", "holds one verifiable line per call"),
    ],
  },
  {
    id: "audit-hash-chain",
    statement:
      "Audit lines are hash-chained across restarts; custody-keys audit verify names the first edited, removed, swapped, inserted or torn line; the head is anchored in the operator log",
    serves: "invariant 12; a line edited, removed, reordered or inserted; a torn end built upon",
    tests: [
      t("src/custody/audit/audit.test.ts", "custody-keys audit verify"),
      t("src/custody/audit/audit.test.ts", "the chain across restarts"),
    ],
  },
  {
    id: "audit-covers-changes",
    statement:
      "Failed handshakes, key, caller-policy and TLS reloads, and every custody-keys action are audit lines; no card data or passphrase in any",
    serves: "a key, policy or certificate swapped in without a trace; probing unseen",
    tests: [
      t("src/custody/audit/audit.test.ts", "records a"),
      t("src/custody/audit/audit.test.ts", "never holds the card or a JWE"),
      t("src/custody/audit/audit.test.ts", "custody-keys actions"),
    ],
  },
  // Someone reading custody's memory, environment or token
  {
    id: "pem-wiped",
    statement: "Private PEM parsed from a Buffer that is zeroed on every path, never turned into a string",
    serves: "a private key left in the heap as an immutable string",
    tests: [t("src/custody/keystore/file/file-key-store.test.ts", "parses every PEM from the Buffer")],
  },
  {
    id: "worker-copies-dropped",
    statement:
      "Every key-set reload makes each worker drop its file-store key copies of older generations at once; calls in flight on the older set still finish",
    serves: "invariants 7 and 9; a key removed by a reload left in worker memory until the next call",
    tests: [
      t("src/custody/reencryptor.test.ts", "a key-set reload makes every worker drop its copies"),
      t("src/custody/reencryptor.test.ts", "calls in flight across a reload finish on the older set"),
      t("src/custody/reencryptor.test.ts", "a worker that replaces a dead one after a reload"),
    ],
  },
  {
    id: "pin-from-file",
    statement:
      "PKCS#11 PIN from a 0600 file only in production, its Buffer zeroed after C_Login; env: refused",
    serves: "the token PIN read from the environment or a readable file",
    tests: [t("src/custody/keystore/pkcs11/pin.test.ts")],
  },
  {
    id: "token-keys-protected",
    statement:
      "Token keys must be CKA_SENSITIVE, not CKA_EXTRACTABLE and CKA_DECRYPT; a URI selecting no object is refused",
    serves: "a token key that can be exported; a key URI that silently selects nothing",
    tests: [t("src/custody/keystore/pkcs11/key-protection.test.ts")],
  },
  {
    id: "token-busy-is-overload",
    statement:
      "A PKCS#11 session wait that times out is OVERLOADED, never a token failure or a re-initialisation",
    serves: "a burst on the PKCS#11 store turning into a token outage",
    tests: [t("src/custody/keystore/pkcs11/session-overload.test.ts")],
  },
  {
    id: "inline-mode-same-guarantees",
    statement:
      "Inline mode (CUSTODY_WORKERS=0) keeps the same core, uniform failure and zeroization, and yields the event loop between batches",
    serves: "invariant 1; card data or starvation on custody's main thread",
    tests: [
      t("src/custody/reencryptor.test.ts", "overwrites the content key a token unwrapped"),
      t("src/custody/reencryptor.test.ts", "runs other main-thread callbacks between batches"),
    ],
  },
  // Limits
  {
    id: "custody-connection-limits",
    statement:
      "Custody caps open connections and handshakes in progress and closes handshakes that do not finish in time",
    serves: "exhausting custody's sockets and handshake work without a certificate",
    tests: [t("src/custody/limits.test.ts", "connection and handshake limits")],
  },
  {
    id: "custody-deadline-cap",
    statement:
      "A call with no deadline or a far one is answered DEADLINE_EXCEEDED at CUSTODY_MAX_CALL_DEADLINE_MS",
    serves: "holding custody's resources with calls that never expire",
    tests: [t("src/custody/limits.test.ts", "call deadline cap")],
  },
  {
    id: "health-not-open",
    statement:
      "grpc.health.v1 answers only the ReencryptForKnot callers unless CUSTODY_ALLOW_HEALTH=* is written out",
    serves: "invariant 4; learning whether custody serves from any certificate the CA issued",
    tests: [
      t("src/custody/limits.test.ts", "health"),
      t("src/custody/service.test.ts", "refuses an authenticated caller not on the allowlist"),
    ],
  },
  {
    id: "proxy-trust-by-cidr",
    statement:
      "X-Forwarded-For is believed only from peers in GATEWAY_TRUSTED_PROXIES; the hop count is refused",
    serves: "passing a source allow-list with a forged X-Forwarded-For",
    tests: [t("src/gateway/http/proxy-trust.test.ts")],
  },
  {
    id: "gateway-http-limits",
    statement: "Header size, body size and request time are capped on the gateway's listener",
    serves: "oversized or endless requests",
    tests: [
      t("src/gateway/http/header-limit.test.ts"),
      t("src/tools/hostile/gateway.test.ts", "BODY_TOO_LARGE"),
    ],
  },
  {
    id: "gateway-sheds-load",
    statement:
      "Past its in-flight cap or event-loop delay limit the gateway answers webhooks 503 OVERLOADED with Retry-After before storing anything; health stays up; redeliveries are taken once",
    serves: "invariants 5 and 6; a flood making every delivery wait past the sender's timeout",
    tests: [t("src/gateway/overload.test.ts")],
  },
  // Faults
  {
    id: "storage-failure-not-acknowledged",
    statement:
      "A delivery is answered 200 only after its commit; a full or failing disk gives 503 and nothing is lost",
    serves: "invariant 5; a delivery acknowledged and then lost",
    tests: [t("src/gateway/storage-faults.test.ts")],
  },
  {
    id: "crash-window-narrowed",
    statement:
      "post_started_at is durable before every POST /card; a resumed job waits for Knot's word before posting again",
    serves: "invariant 6; a card reaching Knot twice after a crash",
    tests: [t("src/gateway/crash-window.test.ts")],
  },
  {
    id: "custody-restart-survived",
    statement:
      "Custody killed and restarted under load: every job completes in its window, none lost, none sent twice",
    serves: "invariant 6; cards missing Knot's window because custody restarted",
    tests: [t("src/gateway/custody-restart.test.ts")],
  },
  {
    id: "hung-knot-bounded",
    statement:
      "A Knot that never answers costs each attempt its timeout, the job its deadline, the event loop nothing",
    serves: "the gateway stalled by a hung partner",
    tests: [t("src/gateway/knot-hang.test.ts")],
  },
  {
    id: "send-card-concurrency",
    statement: "SEND_CARD_CONCURRENCY bounds POST /card on every path: webhook jobs, poll claims, retries",
    serves: "a flood or a restart backlog sending more cards at once than configured",
    tests: [t("src/gateway/send-card-concurrency.test.ts")],
  },
  {
    id: "memory-bounded",
    statement:
      "Both services stay under their container limit with no growth trend under load and recover after an overload burst; custody's heaps are sized to fit its limit",
    serves: "memory growing under sustained load until the container is killed",
    tests: [t("src/tools/load/load.test.ts"), t("src/tools/deploy/memory-bounds.test.ts")],
  },
  {
    id: "pinned-base-image",
    statement: "The Dockerfile starts every stage from the Node 24 image pinned by digest",
    serves: "a moved base-image tag",
    tests: [t("src/tools/deploy/dockerfile.test.ts", "pinned by digest")],
  },
  {
    id: "independent-simulators",
    statement: "Partner simulators share no code with the services; signatures cross-checked with openssl",
    serves: "tests proving only that the gateway agrees with itself",
    tests: [
      t("src/tools/simulators/knot-simulator.test.ts", "the simulators are partners, not copies of us"),
      t("src/tools/simulators/knot-simulator.test.ts", "matches openssl over the documented string"),
    ],
  },
];

/** What each fuzz target checks of every input, for docs/assurance.md's fuzzing table. */
export const FUZZ_PROPERTIES: Record<TargetName, string> = {
  "jwe-parse":
    "a refusal is JWE_MALFORMED / JWE_TOO_LARGE / JWE_HEADER_UNSUPPORTED without input in the message; an acceptance has five canonical parts, RSA-OAEP-256/A256GCM, sizes in range, no zip or crit",
  "json-members":
    "differential against JSON.parse: the same members and values, refusals only where the scanner is meant to be stricter (duplicates, depth, non-objects)",
  "dotva-secrets":
    "typed card errors only, no input digits in a message; an accepted PAN is 12-19 Luhn-valid digits, CVV 3-4 digits, expiry in range, PAN and CVV views into the plaintext buffer",
  "knot-jwk":
    "KNOT_JWK_INVALID only, without input in the message; an accepted key is RSA public, e = 65537, 2048-8192 bits, no private member",
  fingerprint:
    "KEY_FINGERPRINT_INVALID only; an accepted form normalizes to sha256:<hex> or base64url, idempotently",
  "san-uris": "reads back exactly the URI SANs of any rendering Node's subjectaltname can produce, in order",
  "dotva-webhook":
    "schema issues never repeat input; an accepted body has a compact secrets_jwe and a SHA-256 content digest",
  "knot-webhook": "schema issues never repeat input; an accepted body names an event",
  "knot-signature":
    "never throws; accepts its own signature and exactly the values that decode to the HMAC-SHA256 over Knot's documented string",
  "oaep-decode":
    "never throws; equals a plain RFC 8017 decode (itself checked against node:crypto) on valid blocks and leaves the random substitute otherwise, leading zeros stripped or not",
};
