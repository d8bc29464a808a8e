import { AgentNetError, parseRetryAfter, refusal } from "./errors.js";
import { type RetryPolicy, retryAllows, retryDelayMs } from "./retry.js";

export type Query = Record<string, string | number | boolean | null | undefined>;

export interface CallOptions {
  query?: Query;
  body?: unknown;
  headers?: Record<string, string>;
  /** added to the request timeout (a long poll's wait) */
  extraTimeMs?: number;
  /** a request a retry could repeat (it carries no Idempotency-Key): never retried */
  once?: boolean;
}

/**
 * One listener of one node, with one bearer token. `call` sends a request and returns the parsed
 * JSON answer, or throws `AgentNetError`. A request is retried (with the same headers, so the
 * same Idempotency-Key) only when a retry can help: a broken connection or a timeout, a 5xx, a
 * 429 with a Retry-After short enough to wait out; at most `retry.attempts` times in all.
 */
export class Transport {
  readonly baseUrl: string;
  readonly retry: RetryPolicy;
  readonly timeoutMs: number;
  private readonly authorization: string;
  private readonly actAs: Record<string, string>;

  constructor(baseUrl: string, token: string, retry: RetryPolicy, timeoutMs: number, actAs?: string) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    try {
      const url = new URL(this.baseUrl);
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        throw new TypeError(url.protocol);
      }
    } catch {
      throw new AgentNetError(0, "invalid_url", `${baseUrl} is not a valid http(s) URL`);
    }
    this.authorization = `Bearer ${token}`;
    this.actAs = actAs === undefined ? {} : { "Act-As": actAs };
    this.retry = retry;
    this.timeoutMs = timeoutMs;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { Authorization: this.authorization, Accept: "application/json", ...this.actAs, ...extra };
  }

  url(path: string, query: Query = {}): string {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null) {
        params.set(name, String(value));
      }
    }
    const search = params.toString();
    return this.baseUrl + path + (search ? `?${search}` : "");
  }

  async call<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
    const attempts = options.once ? 1 : Math.max(1, this.retry.attempts);
    let last: AgentNetError | null = null;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (last !== null) {
        await sleep(last.retryAfter !== null ? last.retryAfter * 1000 : retryDelayMs(this.retry, attempt));
      }
      let answer: { status: number; data: unknown; retryAfter: number | null };
      try {
        answer = await this.send(method, path, options);
      } catch (e) {
        if (!(e instanceof AgentNetError) || e.code !== "connection_failed") {
          throw e;
        }
        last = e;
        continue;
      }
      if (answer.status < 400) {
        return answer.data as T;
      }
      last = refusal(answer.status, answer.data, answer.retryAfter);
      if (!retryAllows(this.retry, last)) {
        throw last;
      }
    }
    throw last!;
  }

  private async send(method: string, path: string,
                     options: CallOptions): Promise<{ status: number; data: unknown; retryAfter: number | null }> {
    const headers = this.headers(options.headers);
    let payload: string | undefined;
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(options.body);
    }
    let status: number;
    let text: string;
    let retryAfter: number | null;
    try {
      const response = await fetch(this.url(path, options.query), {
        method, headers, body: payload,
        signal: AbortSignal.timeout(this.timeoutMs + (options.extraTimeMs ?? 0)),
      });
      status = response.status;
      retryAfter = parseRetryAfter(response.headers.get("Retry-After"));
      text = await response.text();
    } catch (e) {
      throw connectionFailed(`${method} ${path}`, e);
    }
    let data: unknown = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        if (status < 400) {
          throw new AgentNetError(0, "bad_response", `${method} ${path}: the answer is not JSON`);
        }
        data = text;
      }
    }
    return { status, data, retryAfter };
  }
}

/** A broken connection, a refused one, or a timeout: status 0, code `connection_failed`. */
export function connectionFailed(what: string, error: unknown): AgentNetError {
  const name = error instanceof Error ? error.name : typeof error;
  let detail = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error ? (error as { cause?: unknown }).cause : undefined;
  if (cause instanceof Error && cause.message) {
    detail += ` (${cause.message})`;
  }
  return new AgentNetError(0, "connection_failed", `${what}: ${name}: ${detail}`);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
