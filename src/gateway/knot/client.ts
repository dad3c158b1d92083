/**
 * Knot's API as the send-card job uses it: GET /jwe/key (cached for a TTL, refreshable after
 * INVALID_JWE) and POST /card. Basic auth with the client id and secret, `Knot-Version: 2.0`.
 *
 * Redirects are followed by hand, re-sending the same POST, and only within Knot's origin: fetch's own
 * handling would turn a 301/302 POST into a GET, and following elsewhere would hand our Basic
 * credentials to another host.
 */
import { SendCardError } from "../errors.js";

export interface KnotClientOptions {
  readonly baseUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly jwkTtlMs: number;
  readonly now?: () => number;
}

export interface KnotResponse {
  readonly status: number;
  /** Knot's `error_code` when the body carries one (e.g. INVALID_JWE). */
  readonly errorCode?: string;
}

const MAX_REDIRECTS = 3;

export class KnotClient {
  private readonly auth: string;
  private cached?: { readonly text: string; readonly fetchedAt: number };
  private inflight?: Promise<string>;
  private readonly now: () => number;

  constructor(private readonly opts: KnotClientOptions) {
    this.auth = `Basic ${Buffer.from(`${opts.clientId}:${opts.clientSecret}`).toString("base64")}`;
    this.now = opts.now ?? Date.now;
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

  invalidateJwk(): void {
    this.cached = undefined;
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
      );
    }
    this.cached = { text: res.text, fetchedAt: this.now() };
    return res.text;
  }

  async postCard(taskId: string, jwe: string, timeoutMs: number): Promise<KnotResponse> {
    // The AUTHENTICATED webhook carries task_id as a number; send it back the same way.
    const task = /^\d{1,15}$/.test(taskId) ? Number(taskId) : taskId;
    const res = await this.request("POST", "/card", JSON.stringify({ task_id: task, jwe }), timeoutMs);
    return { status: res.status, ...errorCodeOf(res.text) };
  }

  private async request(
    method: "GET" | "POST",
    path: string,
    body: string | undefined,
    timeoutMs: number,
  ): Promise<{ status: number; text: string }> {
    const origin = new URL(this.opts.baseUrl).origin;
    let url = new URL(`${this.opts.baseUrl}${path}`);
    const signal = AbortSignal.timeout(Math.max(1, timeoutMs));
    for (let hop = 0; ; hop++) {
      let res: Response;
      try {
        res = await fetch(url, {
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
          `${method} ${path}: ${timedOut ? "no answer in time" : "network error"}`,
          true,
        );
      }
      const location = res.headers.get("location");
      if (res.status >= 300 && res.status < 400 && location) {
        await res.body?.cancel();
        const next = new URL(location, url);
        if (next.origin !== origin || hop >= MAX_REDIRECTS) {
          throw new SendCardError(
            "KNOT_REDIRECT_REFUSED",
            `${method} ${path}: redirect ${hop >= MAX_REDIRECTS ? "loop" : "off Knot's origin"} not followed`,
            false,
            res.status,
          );
        }
        url = next;
        continue;
      }
      return { status: res.status, text: await res.text() };
    }
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
