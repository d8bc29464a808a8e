import { AgentNetError, isObject, parseRetryAfter, refusal } from "./errors.js";
import { event as renamedEvent } from "./renamed.js";
import { RETRY_STATUSES, retryDelayMs } from "./retry.js";
import { type SseFrame, SseParser } from "./sse.js";
import { connectionFailed, type Query, sleep, type Transport } from "./transport.js";
import type { EventOut } from "./types.js";

/**
 * Live events (`GET /v1/events/stream`) as an async iterator that reconnects on its own. Each
 * event has `created_at`, also from an older node that sends only `at`.
 *
 * Each Server-Sent Events frame's `id:` is a feed cursor. After a dropped connection, a 5xx or a
 * node restart the stream reconnects with `Last-Event-ID` set to the last event it handed out,
 * so nothing is missed and nothing repeats. `cursor` is that position (or, before any event,
 * where the stream started, from the node's `ready` frame): persist it to resume after the
 * program restarts. `reconnects` counts how often it had to come back.
 *
 * What no reconnect can fix is thrown: 401/403/410/422 before the stream starts, and the node's
 * `token_revoked` error frame (as a 401 with that code). `close()` (or leaving a `for await`
 * loop) closes the connection.
 */
export class EventStream implements AsyncIterableIterator<EventOut> {
  cursor: string | null;
  reconnects = 0;
  private readonly transport: Transport;
  private readonly query: Query;
  private readonly idleTimeoutMs: number;
  private readonly stopped = new AbortController();
  private frames: AsyncGenerator<EventOut, void, undefined> | null = null;

  constructor(transport: Transport, after: string | null, query: Query, idleTimeoutMs: number) {
    this.transport = transport;
    this.cursor = after;
    this.query = query;
    this.idleTimeoutMs = idleTimeoutMs;
  }

  get closed(): boolean {
    return this.stopped.signal.aborted;
  }

  [Symbol.asyncIterator](): EventStream {
    return this;
  }

  next(): Promise<IteratorResult<EventOut, undefined>> {
    this.frames ??= this.run();
    return this.frames.next() as Promise<IteratorResult<EventOut, undefined>>;
  }

  async return(): Promise<IteratorResult<EventOut, undefined>> {
    this.close();
    if (this.frames !== null) {
      await this.frames.return(undefined);
    }
    return { done: true, value: undefined };
  }

  /** Stop: the connection is closed, a pending `next()` ends the iteration. */
  close(): void {
    this.stopped.abort();
  }

  private async *run(): AsyncGenerator<EventOut, void, undefined> {
    const policy = this.transport.retry;
    let failures = 0;
    while (!this.closed) {
      const connection = { ready: false };
      try {
        for await (const event of this.connect(connection)) {
          failures = 0;
          yield event;
        }
      } catch (e) {
        if (this.closed) {
          return;
        }
        if (!(e instanceof AgentNetError) || !(e.code === "connection_failed" || RETRY_STATUSES.has(e.status))) {
          throw e;
        }
      }
      if (this.closed) {
        return;
      }
      if (connection.ready) {
        failures = 0; // it worked, then ended (the node shut down, or a proxy cut it): come back soon
      }
      await sleep(retryDelayMs(policy, failures), this.stopped.signal);
      failures += 1;
      this.reconnects += 1;
    }
  }

  private async *connect(connection: { ready: boolean }): AsyncGenerator<EventOut, void, undefined> {
    const transport = this.transport;
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = (): void => {
      clearTimeout(timer); // closed while an event is handed out: no idle timer keeps the program alive
      controller.abort();
    };
    this.stopped.signal.addEventListener("abort", stop, { once: true });
    const arm = (ms: number): void => {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(new DOMException(`no data for ${ms} ms`, "TimeoutError")), ms);
    };
    const headers = transport.headers({ Accept: "text/event-stream" });
    if (this.cursor !== null) {
      headers["Last-Event-ID"] = this.cursor;
    }
    try {
      arm(transport.timeoutMs); // until the answer's headers arrive
      let response: Response;
      try {
        response = await fetch(transport.url("/v1/events/stream", this.query), {
          headers, signal: controller.signal,
        });
      } catch (e) {
        throw connectionFailed("GET /v1/events/stream", e);
      }
      if (response.status >= 400) {
        throw await streamRefusal(response);
      }
      if (response.body === null) {
        throw new AgentNetError(0, "bad_response", "the event stream has no body");
      }
      const reader = response.body.getReader();
      const parser = new SseParser();
      while (true) {
        arm(this.idleTimeoutMs); // the node sends a keepalive every 15 s by default
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (e) {
          throw connectionFailed("GET /v1/events/stream", e);
        }
        if (chunk.done) {
          return;
        }
        for (const frame of parser.feed(chunk.value)) {
          const event = this.event(frame, connection);
          if (event !== null) {
            yield event;
          }
        }
      }
    } finally {
      clearTimeout(timer);
      this.stopped.signal.removeEventListener("abort", stop);
      controller.abort(); // release the connection when the loop ended early
    }
  }

  /** Track the cursor; null for the `ready` frame, which only says where the stream is. */
  private event(frame: SseFrame, connection: { ready: boolean }): EventOut | null {
    if (frame.event === "error") {
      throw frameError(frame);
    }
    if (frame.event === "ready") {
      connection.ready = true;
      this.cursor = frame.id || this.cursor;
      return null;
    }
    let event: unknown;
    try {
      event = JSON.parse(frame.data);
    } catch {
      event = null;
    }
    if (!isObject(event) || typeof event["cursor"] !== "string" || typeof event["type"] !== "string") {
      throw new AgentNetError(0, "bad_response", `unreadable event frame: ${frame.data.slice(0, 200)}`);
    }
    this.cursor = frame.id || event["cursor"];
    return renamedEvent(event as unknown as EventOut); // `created_at`, also from a node that sends only `at`
  }
}

/** The node's refusal of a stream, or what a proxy in between said. */
async function streamRefusal(response: Response): Promise<AgentNetError> {
  let data: unknown = null;
  try {
    data = JSON.parse(await response.text());
  } catch {
    data = null;
  }
  return refusal(response.status, data, parseRetryAfter(response.headers.get("Retry-After")));
}

/** The stream's last word (`token_revoked`): the token no longer works, so it is a 401. */
function frameError(frame: SseFrame): AgentNetError {
  try {
    const data: unknown = JSON.parse(frame.data);
    if (isObject(data) && data["code"] !== undefined) {
      return new AgentNetError(401, String(data["code"]), String(data["message"] ?? ""));
    }
  } catch {
    // not JSON: said as it is below
  }
  return new AgentNetError(401, "stream_error", frame.data);
}
