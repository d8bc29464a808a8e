import type { AgentNetError } from "./errors.js";

/**
 * How hard to try. `attempts` bounds each request (1: no retries); a stream reconnects without
 * bound, waiting `baseDelayMs` doubling up to `maxDelayMs`. A Retry-After longer than
 * `maxRetryAfterS` is raised instead of waited out.
 */
export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  maxRetryAfterS: number;
}

export const DEFAULT_RETRY: Readonly<RetryPolicy> = Object.freeze({
  attempts: 4, baseDelayMs: 250, maxDelayMs: 15_000, maxRetryAfterS: 30,
});

/** One try, and the answer as it is. */
export const NO_RETRIES: Readonly<RetryPolicy> = Object.freeze({ ...DEFAULT_RETRY, attempts: 1 });

// Statuses a retry can change: the node or a proxy in front of it was briefly unavailable.
export const RETRY_STATUSES: ReadonlySet<number> = new Set([500, 502, 503, 504]);

/** Exponential backoff with jitter, so many clients do not come back in step. */
export function retryDelayMs(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/**
 * Whether asking again can change the answer: a broken connection, a 5xx, or a 429 that says
 * when to come back (not too far off). Everything else (401, 403, 404, 410, 413, 422) would get
 * the same answer.
 */
export function retryAllows(policy: RetryPolicy, error: AgentNetError): boolean {
  if (error.retryAfter !== null && error.retryAfter > policy.maxRetryAfterS) {
    return false; // the caller had better know now than wait that long unawares
  }
  if (error.status === 429) {
    return error.retryAfter !== null;
  }
  return error.code === "connection_failed" || RETRY_STATUSES.has(error.status);
}
