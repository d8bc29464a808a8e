/**
 * The client against fake listeners (no node): what it retries and what it does not, that a post
 * keeps one Idempotency-Key across its retries, how refusals become AgentNetError, the SSE field
 * rules across chunk boundaries, and a stream that resumes with Last-Event-ID, reconnects after
 * an idle link, ends on `token_revoked`, and closes its connection when the program stops; and
 * that an older node's names (`messages`, `events`, `origin_ts`, `at`) are read as the new ones.
 * `test/live.ts` runs against real nodes (tests/node/client/test_typescript_client.py).
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import { AgentNetClient, AgentNetError, type EventOut, SseParser } from "@agentnet/client";

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

interface Fake {
  url: string;
  seen: Seen[];
  closed: () => number;
  close: () => Promise<void>;
}

/** A listener answering with `handler(request, response, n)`, n counting from 0; it records each request. */
async function fake(handler: (seen: Seen, res: ServerResponse, n: number) => void): Promise<Fake> {
  const seen: Seen[] = [];
  let closed = 0;
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => { body += chunk.toString(); });
    req.on("end", () => {
      const request = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body };
      seen.push(request);
      handler(request, res, seen.length - 1);
    });
    res.on("close", () => { closed += 1; });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, seen, closed: () => closed,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

function refused(res: ServerResponse, status: number, code: string, extra: Record<string, unknown> = {},
                 headers: Record<string, string> = {}): void {
  json(res, status, { error: { code, message: `refused: ${code}`, ...extra } }, headers);
}

const FAST = { attempts: 4, baseDelayMs: 10, maxDelayMs: 40 };

function client(url: string, options: Partial<ConstructorParameters<typeof AgentNetClient>[0]> = {}): AgentNetClient {
  return new AgentNetClient({ baseUrl: url, token: "anagt_test", retry: FAST, ...options });
}

async function refusalOf(call: () => Promise<unknown>): Promise<AgentNetError> {
  try {
    await call();
  } catch (e) {
    assert.ok(e instanceof AgentNetError, `not an AgentNetError: ${String(e)}`);
    return e;
  }
  assert.fail("no error");
}

/** A shared message as a node sends it until 0.3: `created_at`, and the deprecated `origin_ts` beside it. */
const MESSAGE = {
  id: "$" + "a".repeat(43), network: "rollout", thread: "status", seq: 1, status: "sequenced",
  sender: "agent:ops@acme.example", body: "once", created_at: 1, origin_ts: 1,
};

test("the SSE parser follows the field rules across chunk boundaries", () => {
  const parser = new SseParser();
  const wire = new TextEncoder().encode(
    'retry: 2000\nid: 7\nevent: ready\ndata: {"cursor": "7"}\n\n: keepalive\n\n'
    + "id: 8\r\nevent: message.posted\r\ndata: a\r\ndata:b\r\n\r\nevent: error\ndata: x\n\n"
    + "id: 9\ndata: caf\u00e9 \u2713\n\n");
  const frames = [];
  for (let i = 0; i < wire.length; i++) {
    frames.push(...parser.feed(wire.slice(i, i + 1))); // one byte at a time: characters split too
  }
  assert.deepEqual(frames, [
    { event: "ready", data: '{"cursor": "7"}', id: "7" },
    { event: "message.posted", data: "a\nb", id: "8" },
    { event: "error", data: "x", id: "8" }, // the id sticks until a frame sets another
    { event: "message", data: "caf\u00e9 \u2713", id: "9" },
  ]);
});

test("a post whose answer was lost is retried with its key, and a 503 too", async () => {
  const node = await fake((req, res, n) => {
    if (n === 0) {
      res.socket?.destroy(); // the answer never arrives
    } else if (n === 1) {
      refused(res, 503, "unavailable");
    } else {
      json(res, 201, MESSAGE, { "Idempotent-Replayed": "true" });
    }
  });
  try {
    const posted = await client(node.url).post("rollout", "status", "once", { mentions: ["agent:delivery@globex.example"] });
    assert.equal(posted.id, MESSAGE.id);
    const keys = node.seen.map((r) => r.headers["idempotency-key"]);
    assert.equal(keys.length, 3);
    assert.equal(new Set(keys).size, 1);
    assert.match(String(keys[0]), /^[0-9a-f-]{36}$/);
    assert.deepEqual(JSON.parse(node.seen[0]!.body), { body: "once", mentions: ["agent:delivery@globex.example"] });
    assert.equal(node.seen[0]!.url, "/v1/networks/rollout/threads/status/messages");
    assert.equal(node.seen[0]!.headers["authorization"], "Bearer anagt_test");
    // Two posts: two keys.
    await client(node.url).post("rollout", "status", "again");
    assert.notEqual(node.seen[3]!.headers["idempotency-key"], keys[0]);
  } finally {
    await node.close();
  }
});

test("retries are bounded", async () => {
  const node = await fake((_req, res) => { res.socket?.destroy(); });
  try {
    const error = await refusalOf(() => client(node.url, { retry: { ...FAST, attempts: 3 } }).post("r", "t", "lost"));
    assert.deepEqual([error.status, error.code], [0, "connection_failed"]);
    assert.equal(node.seen.length, 3);
  } finally {
    await node.close();
  }
});

test("a 429 with Retry-After is waited out; without it, or too long, it is raised at once", async () => {
  const node = await fake((req, res, n) => {
    if (req.url.includes("/wait/") && n === 0) {
      refused(res, 429, "too_many_requests", { retry_after_s: 1 }, { "Retry-After": "1" });
    } else if (req.url.includes("/bare/")) {
      refused(res, 429, "too_many_requests");
    } else if (req.url.includes("/long/")) {
      refused(res, 429, "too_many_requests", {}, { "Retry-After": "3600" });
    } else {
      json(res, 201, MESSAGE);
    }
  });
  try {
    const started = Date.now();
    await client(node.url).post("wait", "t", "x");
    assert.ok(Date.now() - started >= 950, "it waited the Retry-After");
    assert.equal(node.seen.length, 2);
    const bare = await refusalOf(() => client(node.url).post("bare", "t", "x"));
    assert.deepEqual([bare.status, bare.code, bare.retryAfter], [429, "too_many_requests", null]);
    const long = await refusalOf(() => client(node.url).post("long", "t", "x"));
    assert.deepEqual([long.status, long.retryAfter], [429, 3600]);
    assert.equal(node.seen.length, 4);
  } finally {
    await node.close();
  }
});

test("refusals are one error type and are not retried; a proxy's non-JSON 5xx is", async () => {
  const node = await fake((req, res) => {
    if (req.url.startsWith("/v1/whoami")) {
      refused(res, 401, "unauthorized");
    } else if (req.url.startsWith("/v1/webhooks")) {
      refused(res, 422, "invalid_request", { fields: [{ field: "url", location: "body", message: "https" }] });
    } else if (req.url.startsWith("/v1/shared-threads/search")) {
      refused(res, 403, "policy_refused", { reason: "mention_not_participant" });
    } else {
      res.writeHead(502, { "Content-Type": "text/html" });
      res.end("<html>Bad gateway</html>");
    }
  });
  try {
    const c = client(node.url);
    const unauthorized = await refusalOf(() => c.whoami());
    assert.deepEqual([unauthorized.status, unauthorized.code, unauthorized.message], [401, "unauthorized", "refused: unauthorized"]);
    assert.equal(unauthorized.name, "AgentNetError");
    const invalid = await refusalOf(() => c.webhooks());
    assert.deepEqual(invalid.fields, [{ field: "url", location: "body", message: "https" }]);
    const policy = await refusalOf(() => c.searchMessages("x"));
    assert.deepEqual([policy.status, policy.reason], [403, "mention_not_participant"]);
    assert.equal(node.seen.length, 3);
    const gateway = await refusalOf(() => c.threads());
    assert.deepEqual([gateway.status, gateway.code], [502, "http_502"]);
    assert.equal(node.seen.length, 3 + FAST.attempts);
  } finally {
    await node.close();
  }
});

test("creating a webhook is never retried (it takes no Idempotency-Key)", async () => {
  const node = await fake((_req, res) => refused(res, 503, "unavailable"));
  try {
    const error = await refusalOf(() => client(node.url).createWebhook("https://hooks.example/x",
                                                                       { filter: { mentions: true } }));
    assert.equal(error.status, 503);
    assert.equal(node.seen.length, 1);
    assert.deepEqual(JSON.parse(node.seen[0]!.body), { url: "https://hooks.example/x", filter: { mentions: true } });
  } finally {
    await node.close();
  }
});

test("a request past its timeout is a connection failure; a long poll's wait extends it", async () => {
  const node = await fake((req, res) => {
    if (req.url.startsWith("/v1/events")) {
      setTimeout(() => json(res, 200, { items: [], events: [], next_cursor: "5" }), 400);
    } // anything else: never answered
  });
  try {
    const c = client(node.url, { timeoutMs: 150, retry: { ...FAST, attempts: 2 } });
    const error = await refusalOf(() => c.whoami());
    assert.deepEqual([error.status, error.code], [0, "connection_failed"]);
    assert.equal(node.seen.length, 2);
    const page = await c.events({ after: "4", wait: 1, mentionsOnly: true, types: ["message.posted", "message.reacted"] });
    assert.equal(page.next_cursor, "5");
    assert.deepEqual(page.items, []);
    const query = new URL(node.seen[2]!.url, node.url).searchParams;
    assert.deepEqual(Object.fromEntries(query), { after: "4", wait: "1", mentions: "me", types: "message.posted,message.reacted" });
  } finally {
    await node.close();
  }
});

test("an invalid base URL is refused when the client is made", () => {
  assert.throws(() => new AgentNetClient({ baseUrl: "ftp://x", token: "t" }),
                (e: unknown) => e instanceof AgentNetError && e.code === "invalid_url");
});

/** An event of the feed: as a node sends it until 0.3 (`created_at`, and `at` beside it), or as an older one (`at` only). */
function eventOut(cursor: number, body: string, names: "current" | "old" = "current"): Record<string, unknown> {
  return { cursor: String(cursor), scope: "private", type: "message.posted", network: null, thread: "billing",
           id: `m${cursor}`, seq: null, sender: "person:alex@acme.example", body, content: { body },
           ...(names === "current" ? { created_at: cursor * 1000, at: cursor * 1000 } : { at: cursor * 1000 }) };
}

function event(cursor: number, body: string, names: "current" | "old" = "current"): string {
  return `id: ${cursor}\nevent: message.posted\ndata: ${JSON.stringify(eventOut(cursor, body, names))}\n\n`;
}

function sse(res: ServerResponse): void {
  res.writeHead(200, { "Content-Type": "text/event-stream" });
}

test("the stream resumes with Last-Event-ID after a drop and a 503, and ends on token_revoked", async () => {
  const node = await fake((_req, res, n) => {
    if (n === 0) {
      sse(res);
      res.write('retry: 2000\nid: 5\nevent: ready\ndata: {"cursor": "5"}\n\n');
      res.write(event(6, "m6"));
      res.write(event(7, "m7").slice(0, 30)); // a frame cut in the middle: never handed out
      setTimeout(() => res.socket?.destroy(), 50);
    } else if (n === 1) {
      refused(res, 503, "unavailable");
    } else {
      sse(res);
      res.write('id: 6\nevent: ready\ndata: {"cursor": "6"}\n\n');
      res.write(event(7, "m7"));
      res.write(": keepalive\n\n");
      res.end('event: error\ndata: {"code": "token_revoked", "message": "the token was revoked"}\n\n');
    }
  });
  try {
    const stream = client(node.url).stream({ after: "5", network: "rollout", thread: "status" });
    const seen: string[] = [];
    const error = await refusalOf(async () => {
      for await (const e of stream) {
        seen.push(e.body ?? "");
      }
    });
    assert.deepEqual(seen, ["m6", "m7"]);
    assert.deepEqual([error.status, error.code], [401, "token_revoked"]);
    assert.equal(stream.cursor, "7");
    assert.equal(stream.reconnects, 2);
    assert.deepEqual(node.seen.map((r) => r.headers["last-event-id"]), ["5", "6", "6"]);
    assert.deepEqual(Object.fromEntries(new URL(node.seen[0]!.url, node.url).searchParams),
                     { network: "rollout", thread: "status" });
    assert.equal(node.seen[0]!.headers["accept"], "text/event-stream");
  } finally {
    await node.close();
  }
});

test("a stream refused before it starts is raised, not retried", async () => {
  const node = await fake((_req, res) => refused(res, 410, "cursor_expired"));
  try {
    const stream = client(node.url).stream({ after: "1" });
    const error = await refusalOf(() => stream.next());
    assert.deepEqual([error.status, error.code], [410, "cursor_expired"]);
    assert.equal(node.seen.length, 1);
  } finally {
    await node.close();
  }
});

test("a silent stream reconnects after its idle timeout; leaving the loop closes the connection", async () => {
  const node = await fake((_req, res, n) => {
    sse(res);
    res.write(`id: ${10 + n}\nevent: ready\ndata: {"cursor": "${10 + n}"}\n\n`);
    if (n === 1) {
      res.write(event(11, "after the silence"));
    } // and then nothing: no keepalive
  });
  try {
    const stream = client(node.url, { streamIdleTimeoutMs: 200 }).stream();
    let first: EventOut | undefined;
    for await (const e of stream) {
      first = e;
      break;
    }
    assert.equal(first?.body, "after the silence");
    assert.equal(stream.reconnects, 1);
    assert.deepEqual(node.seen.map((r) => r.headers["last-event-id"]), [undefined, "10"]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(node.closed(), 2, "both connections are closed");
    assert.deepEqual(await stream.next(), { done: true, value: undefined });
  } finally {
    await node.close();
  }
});

test("close() ends a pending next()", async () => {
  const node = await fake((_req, res) => {
    sse(res);
    res.write('id: 3\nevent: ready\ndata: {"cursor": "3"}\n\n');
  });
  try {
    const stream = client(node.url).stream();
    const pending = stream.next();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(stream.cursor, "3");
    stream.close();
    assert.deepEqual(await pending, { done: true, value: undefined });
    assert.equal(stream.reconnects, 0);
  } finally {
    await node.close();
  }
});

test("with actAs every call, the stream's too, names the agent; without it none does", async () => {
  const node = await fake((req, res) => {
    if (req.url.startsWith("/v1/events/stream")) {
      refused(res, 401, "unauthorized");
    } else {
      json(res, 200, { id: "agent:ops@acme.example", kind: "agent", handle: "ops", display_name: "Ops",
                       disabled: false, created_at: 1 });
    }
  });
  try {
    await client(node.url, { token: "anapp_test", actAs: "ops" }).whoami();
    await refusalOf(async () => {
      for await (const _event of client(node.url, { token: "anapp_test", actAs: "ops" }).stream()) {
        break;
      }
    });
    await client(node.url).whoami();
    assert.deepEqual(node.seen.map((r) => r.headers["act-as"]), ["ops", "ops", undefined]);
    assert.equal(node.seen[0]!.headers["authorization"], "Bearer anapp_test");
  } finally {
    await node.close();
  }
});

test("an older node's names (messages, events, origin_ts, at) are read as items and created_at", async () => {
  const { created_at: _created, ...shared } = MESSAGE;
  const old = { ...shared, origin_ts: 7 }; // a node from before the naming convention: no created_at
  const node = await fake((req, res) => {
    const path = req.url.split("?")[0];
    if (path === "/v1/networks/rollout/threads/status/messages") {
      if (req.method === "POST") {
        json(res, 201, old);
      } else {
        json(res, 200, { messages: [old], next_cursor: null, prev_cursor: null });
      }
    } else if (path === "/v1/threads/billing/messages") {
      json(res, 200, { messages: [{ id: "m1", thread: "billing", sender: "person:alex@acme.example", body: "hi",
                                    created_at: 5 }], next_cursor: null });
    } else if (path === "/v1/shared-threads/search") {
      json(res, 200, { items: [old] });
    } else if (path === "/v1/events/stream") {
      sse(res);
      res.write('id: 8\nevent: ready\ndata: {"cursor": "8"}\n\n');
      res.write(event(9, "streamed", "old"));
    } else if (path === "/v1/events") {
      json(res, 200, { events: [eventOut(9, "polled", "old")], next_cursor: "9" });
    } else {
      refused(res, 404, "not_found");
    }
  });
  try {
    const c = client(node.url);
    const page = await c.read("rollout", "status");
    assert.deepEqual(page.items.map((m) => [m.id, m.created_at]), [[MESSAGE.id, 7]]);
    assert.equal(page.next_cursor, null);
    const latest = await c.readLatest("rollout", "status", { limit: 1 });
    assert.deepEqual(latest.items.map((m) => m.created_at), [7]);
    assert.equal((await c.post("rollout", "status", "once")).created_at, 7);
    assert.deepEqual((await c.searchMessages("once")).items.map((m) => m.created_at), [7]);
    const notes = await c.readPrivate("billing");
    assert.deepEqual(notes.items.map((m) => [m.body, m.created_at]), [["hi", 5]]);
    const polled = await c.events({ after: "8" });
    assert.deepEqual(polled.items.map((e) => [e.id, e.body, e.created_at]), [["m9", "polled", 9000]]);
    assert.equal(polled.next_cursor, "9");
    const stream = c.stream({ after: "8" });
    const streamed = await stream.next();
    stream.close();
    assert.equal(streamed.done, false);
    assert.deepEqual([streamed.value?.body, streamed.value?.created_at, stream.cursor], ["streamed", 9000, "9"]);
  } finally {
    await node.close();
  }
});

test("a current node's pages (both names in them) are read under items, as sent", async () => {
  const current = eventOut(4, "polled");
  const node = await fake((req, res) => {
    if (req.url.startsWith("/v1/events")) {
      json(res, 200, { items: [current], events: [current], next_cursor: "4" });
    } else {
      json(res, 200, { items: [MESSAGE], messages: [MESSAGE], next_cursor: "1", prev_cursor: null });
    }
  });
  try {
    const c = client(node.url);
    const page = await c.read("rollout", "status");
    assert.deepEqual(page.items, [MESSAGE]);
    assert.equal(page.items[0]!.created_at, 1);
    const polled = await c.events({ after: "3" });
    assert.deepEqual(polled.items.map((e) => [e.id, e.created_at]), [["m4", 4000]]);
  } finally {
    await node.close();
  }
});
