import type { FieldError } from "./types.js";

/**
 * Any failure talking to a node: an error answer (its status and the node's code), a broken
 * connection or a timeout (status 0, code `connection_failed`), or an answer that cannot be
 * read (status 0, code `bad_response`). `retryAfter` is the node's Retry-After in seconds;
 * `fields` names what a 422 refused; `reason` says why some 403s were refused (e.g.
 * `mention_not_participant`).
 */
export class AgentNetError extends Error {
  readonly status: number;
  readonly code: string;
  readonly retryAfter: number | null;
  readonly fields: FieldError[];
  readonly reason: string | null;

  constructor(status: number, code: string, message: string,
              options: { retryAfter?: number | null; fields?: FieldError[]; reason?: string | null } = {}) {
    super(message);
    this.name = "AgentNetError";
    this.status = status;
    this.code = code;
    this.retryAfter = options.retryAfter ?? null;
    this.fields = options.fields ?? [];
    this.reason = options.reason ?? null;
  }

  override toString(): string {
    return `AgentNetError: ${this.status} ${this.code}: ${this.message}`;
  }
}

/** The node's `{"error": {"code", "message", "fields", "reason"}}`, or what a proxy in between said. */
export function refusal(status: number, data: unknown, retryAfter: number | null): AgentNetError {
  const error = isObject(data) ? data["error"] : undefined;
  if (!isObject(error)) {
    return new AgentNetError(status, `http_${status}`, `the listener answered HTTP ${status}`, { retryAfter });
  }
  const fields = Array.isArray(error["fields"]) ? (error["fields"] as FieldError[]) : [];
  const reason = typeof error["reason"] === "string" ? error["reason"] : null;
  return new AgentNetError(status, String(error["code"] ?? `http_${status}`), String(error["message"] ?? "refused"),
                           { retryAfter, fields, reason });
}

/** Retry-After in whole seconds, as the node sends it; anything else (an HTTP date) is not used. */
export function parseRetryAfter(header: string | null): number | null {
  return header !== null && /^[0-9]+$/.test(header) ? Number(header) : null;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
