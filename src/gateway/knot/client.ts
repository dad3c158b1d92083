/**
 * Knot's API as the send-card job uses it (Knot "Send Card (JWE)"): GET /jwe/key (cached for a TTL,
 * refreshable when Knot answers INVALID_JWE or custody refuses the cached key) and POST /card
 * `{task_id, jwe}`. Basic auth with the client id and secret, `Knot-Version: 2.0`.
 *
 * Strict writer: `task_id` goes out as a JSON number written from its decimal string, so a task id
 * beyond 2^53 is sent with every digit (JSON.stringify of a double would round it).
 *
 * Redirects are handled by hand (Knot: "Clients should follow the redirect or adjust the request"):
 * - 307/308 keep method and body by definition, so they are followed, only to an allow-listed Knot
 *   origin: the credentials ride on every request and must never reach another host;
 * - 301/302/303 turn a POST into a GET for most clients: a card is never re-sent as a GET, so for POST
 *   they end the job, recorded with the Location; for GET /jwe/key they are followed like 307;
 * - a 3xx without Location, or a fourth hop, ends the job.
 */
import { SendCardError } from "../errors.js";

export interface KnotClientOptions {
  readonly baseUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly jwkTtlMs: number;
  /** Origins a redirect may lead to (with our credentials); the base URL's origin is always one. */
  readonly allowedOrigins?: readonly string[];
  readonly now?: () => number;
  readonly fetch?: typeof fetch;
}

export interface KnotResponse {
  readonly status: number;
  /** Knot's `error_code` when the body carries one (e.g. INVALID_JWE). */
  readonly errorCode?: string;
  /** Retry-After in milliseconds, when present and well-formed. */
  readonly retryAfterMs?: number;
}

const MAX_REDIRECTS = 3;

/** Retry-After as delta-seconds or an HTTP-date (RFC 9110 section 10.2.3). */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d{1,9}$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The JSON text of POST /card, task_id a number literal with the digits Knot sent us. */
export function sendCardBody(taskId: string, jwe: string): string {
  if (!/^(0|[1-9]\d*)$/.test(taskId)) {
    throw new SendCardError(
      "TASK_ID_INVALID",
      "task_id is not a decimal integer; Knot wants a number",
      false,
    );
  }
  return `{"task_id":${taskId},"jwe":${JSON.stringify(jwe)}}`;
}

export class KnotClient {
  private readonly auth: string;
  private cached?: { readonly text: string; readonly fetchedAt: number };
  private inflight?: Promise<string>;
  private readonly now: () => number;
  private readonly fetch: typeof fetch;
  private readonly allowed: ReadonlySet<string>;

  constructor(private readonly opts: KnotClientOptions) {
    this.auth = `Basic ${Buffer.from(`${opts.clientId}:${opts.clientSecret}`).toString("base64")}`;
    this.now = opts.now ?? Date.now;
    this.fetch = opts.fetch ?? fetch;
    this.allowed = new Set([new URL(opts.baseUrl).origin, ...(opts.allowedOrigins ?? [])]);
  }

  /** Knot's public JWK as JSON text, exactly as served (custody validates it). */
  async jwk(timeoutMs: number): Promise<string> {
    if (this.cached && this.now() - this.cached.fetchedAt < this.opts.jwkTtlMs) return this.cached.text;
    // Concurrent jobs share one fetch instead of stampeding Knot after expiry.
    this.inflight ??= this.fetchJwk(timeoutMs).finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /** Drops the cached key unless it was replaced since `text` was read (another job refreshed it). */
  invalidateJwk(text?: string): void {
    if (text === undefined || this.cached?.text === text) this.cached = undefined;
  }

  private async fetchJwk(timeoutMs: number): Promise<string> {
    const res = await this.request("GET", "/jwe/key", undefined, timeoutMs);
    if (res.status !== 200) {
      const retryable = res.status >= 500 || res.status === 429;
      throw new SendCardError(
        "KNOT_KEY_UNAVAILABLE",
        `GET /jwe/key answered ${res.status}`,
        retryable,
        res.status,
        res.retryAfterMs,
      );
    }
    this.cached = { text: res.text, fetchedAt: this.now() };
    return res.text;
  }

  async postCard(taskId: string, jwe: string, timeoutMs: number): Promise<KnotResponse> {
    const res = await this.request("POST", "/card", sendCardBody(taskId, jwe), timeoutMs);
    return {
      status: res.status,
      ...errorCodeOf(res.text),
      ...(res.retryAfterMs !== undefined ? { retryAfterMs: res.retryAfterMs } : {}),
    };
  }

  private async request(
    method: "GET" | "POST",
    path: string,
    body: string | undefined,
    timeoutMs: number,
  ): Promise<{ status: number; text: string; retryAfterMs?: number }> {
    let url = new URL(`${this.opts.baseUrl}${path}`);
    const signal = AbortSignal.timeout(Math.max(1, timeoutMs));
    const what = `${method} ${path}`;
    for (let hop = 0; ; hop++) {
      let res: Response;
      try {
        res = await this.fetch(url, {
          method,
          redirect: "manual",
          signal,
          headers: {
            authorization: this.auth,
            "knot-version": "2.0",
            accept: "application/json",
            ...(body !== undefined ? { "content-type": "application/json" } : {}),
          },
          ...(body !== undefined ? { body } : {}),
        });
      } catch (error) {
        const timedOut = (error as Error).name === "TimeoutError";
        throw new SendCardError(
          timedOut ? "KNOT_TIMEOUT" : "KNOT_UNREACHABLE",
          `${what}: ${timedOut ? "no answer in time" : "network error"}`,
          true,
        );
      }
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel();
        url = this.redirectTarget(what, method, res, url, hop);
        continue;
      }
      const retryAfterMs = parseRetryAfter(res.headers.get("retry-after"), this.now());
      return {
        status: res.status,
        text: await res.text(),
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      };
    }
  }

  /** Where to go next, or the final failure this redirect is. */
  private redirectTarget(what: string, method: string, res: Response, from: URL, hop: number): URL {
    const location = res.headers.get("location");
    const fail = (code: string, why: string) => new SendCardError(code, `${what}: ${why}`, false, res.status);
    if (!location) throw fail("KNOT_REDIRECT_WITHOUT_LOCATION", `answered ${res.status} without a Location`);
    // The Location is Knot's own URL; recorded (bounded) so an operator can see where Knot pointed.
    const shown = location.slice(0, 300);
    let next: URL;
    try {
      next = new URL(location, from);
    } catch {
      throw fail("KNOT_REDIRECT_REFUSED", `answered ${res.status} with an unusable Location ${shown}`);
    }
    const keepsMethod = res.status === 307 || res.status === 308;
    const getRedirect = method === "GET" && [301, 302, 303].includes(res.status);
    if (!keepsMethod && !getRedirect) {
      throw fail(
        "KNOT_REDIRECT_NOT_FOLLOWED",
        `answered ${res.status} to Location ${shown}; a ${res.status} would turn the POST into a GET, so the card is not re-sent`,
      );
    }
    if (!this.allowed.has(next.origin)) {
      throw fail(
        "KNOT_REDIRECT_REFUSED",
        `answered ${res.status} to Location ${shown}, outside the allowed Knot origins; credentials not sent there`,
      );
    }
    if (hop >= MAX_REDIRECTS) throw fail("KNOT_REDIRECT_LOOP", `more than ${MAX_REDIRECTS} redirects`);
    return next;
  }
}

function errorCodeOf(text: string): { errorCode?: string } {
  try {
    const parsed = JSON.parse(text) as { error_code?: unknown };
    return typeof parsed.error_code === "string" && /^[A-Z0-9_]{1,64}$/.test(parsed.error_code)
      ? { errorCode: parsed.error_code }
      : {};
  } catch {
    return {};
  }
}
