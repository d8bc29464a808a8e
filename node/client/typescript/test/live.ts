/**
 * The client against two real federated nodes, run by tests/node/client/test_typescript_client.py.
 * It does what an agent on each side would do and prints what it saw as JSON lines on stdout:
 * `{"signal": "revoke"}` when the test should revoke AGENTNET_REVOCABLE_TOKEN, and
 * `{"report": {...}}` at the end. The Python test asserts on the report and on the nodes.
 * A step that never comes true, or an unexpected error, ends it with exit code 1.
 *
 * Env: AGENTNET_ACME_URL, AGENTNET_GLOBEX_URL (client listeners), AGENTNET_OPS_TOKEN (Acme's
 * agent), AGENTNET_DELIVERY_TOKEN (Globex's agent), AGENTNET_REVOCABLE_TOKEN (another token of
 * Globex's agent), AGENTNET_NETWORK, AGENTNET_THREAD (a shared thread both agents are in),
 * AGENTNET_PRIVATE_THREAD (a private thread of Acme's agent), AGENTNET_OUTSIDER (a participant id
 * that is not in the thread).
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import { AgentNetClient, AgentNetError, type EventOut, type SharedMessageOut } from "@agentnet/client";

function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

const ACME_URL = env("AGENTNET_ACME_URL");
const GLOBEX_URL = env("AGENTNET_GLOBEX_URL");
const NETWORK = env("AGENTNET_NETWORK");
const THREAD = env("AGENTNET_THREAD");
const FAST = { attempts: 4, baseDelayMs: 50, maxDelayMs: 300 };

const acme = new AgentNetClient({ baseUrl: ACME_URL, token: env("AGENTNET_OPS_TOKEN"), retry: FAST });
const globex = new AgentNetClient({ baseUrl: GLOBEX_URL, token: env("AGENTNET_DELIVERY_TOKEN"), retry: FAST });

function say(message: unknown): void {
  process.stdout.write(JSON.stringify(message) + "\n");
}

async function eventually<T>(what: string, check: () => Promise<T | undefined | null | false>,
                             timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const result = await check();
      if (result) {
        return result;
      }
      last = result;
    } catch (e) {
      last = e;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms (last: ${String(last)})`);
}

async function message(client: AgentNetClient, id: string,
                       until: (m: SharedMessageOut) => boolean = () => true): Promise<SharedMessageOut> {
  return eventually(`message ${id} at ${client.baseUrl}`, async () => {
    const page = await client.read(NETWORK, THREAD, { limit: 200 });
    return page.items.find((m) => m.id === id && until(m));
  });
}

/** Messages and events carry their instant as `created_at` (the node's convention; `origin_ts`, `at` before it). */
function stamped(what: string, items: { created_at: number }[]): void {
  for (const item of items) {
    if (!Number.isInteger(item.created_at) || item.created_at <= 0) {
      throw new Error(`${what}: created_at is ${String(item.created_at)}`);
    }
  }
}

async function refusal(call: () => Promise<unknown>): Promise<{ status: number; code: string; reason: string | null;
                                                                fields: string[]; retryAfter: number | null }> {
  try {
    await call();
  } catch (e) {
    if (e instanceof AgentNetError) {
      return { status: e.status, code: e.code, reason: e.reason, fields: e.fields.map((f) => f.field),
               retryAfter: e.retryAfter };
    }
    throw e;
  }
  throw new Error("no error");
}

// --- proxies between the client and a node ------------------------------------------------

interface Listening {
  url: string;
  close: () => Promise<void>;
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Listening> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

function forwardHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (typeof value === "string" && !["host", "connection", "content-length"].includes(name)) {
      headers[name] = value;
    }
  }
  return headers;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

type Step = "drop" | "unavailable" | "slow-down" | "forward";

/**
 * In front of Acme's node: each POST meets the next step of `plan` (then `rest`): `drop` passes
 * it to the node and cuts the connection before the answer (stored, answer lost); `unavailable`
 * answers 503 without passing it on; `slow-down` answers 429 with Retry-After: 1; `forward`
 * passes it and its answer. It records each POST's Idempotency-Key.
 */
async function lossyProxy(plan: Step[], rest: Step) {
  const keys: string[] = [];
  const replayed: (string | null)[] = [];
  const server = await listen((req, res) => {
    void (async () => {
      const body = await readBody(req);
      let step: Step = "forward";
      if (req.method === "POST") {
        keys.push(String(req.headers["idempotency-key"]));
        step = plan[keys.length - 1] ?? rest;
      }
      if (step === "unavailable" || step === "slow-down") {
        const status = step === "unavailable" ? 503 : 429;
        res.writeHead(status, { "Content-Type": "application/json", ...(status === 429 ? { "Retry-After": "1" } : {}) });
        res.end(JSON.stringify({ error: { code: step === "unavailable" ? "unavailable" : "too_many_requests",
                                          message: `the proxy says ${status}` } }));
        return;
      }
      const answer = await fetch(ACME_URL + req.url, {
        method: req.method ?? "GET", headers: forwardHeaders(req), body: body.length ? body : undefined,
      });
      const text = await answer.text();
      if (step === "drop") {
        res.socket?.destroy();
        return;
      }
      if (req.method === "POST") {
        replayed.push(answer.headers.get("Idempotent-Replayed"));
      }
      res.writeHead(answer.status, { "Content-Type": answer.headers.get("Content-Type") ?? "application/json" });
      res.end(text);
    })();
  });
  return { ...server, keys, replayed };
}

/**
 * In front of Globex's node: passes the event stream through frame by frame, and cuts the first
 * connection right after its first event. It records each connection's Last-Event-ID.
 */
async function cuttingStreamProxy() {
  const lastEventIds: (string | null)[] = [];
  const server = await listen((req, res) => {
    const connection = lastEventIds.length;
    lastEventIds.push((req.headers["last-event-id"] as string | undefined) ?? null);
    const upstream = httpRequest(GLOBEX_URL + req.url, { method: "GET", headers: forwardHeaders(req) }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      let buffer = "";
      answer.setEncoding("utf8");
      answer.on("data", (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, end + 2);
          buffer = buffer.slice(end + 2);
          if (connection === 0 && /^event: message\./m.test(frame)) {
            answer.destroy(); // the node stops here; the client gets this frame, then the link dies
            res.write(frame, () => setTimeout(() => res.socket?.destroy(), 50));
            return;
          }
          res.write(frame);
        }
      });
      answer.on("end", () => res.end());
    });
    upstream.on("error", () => res.socket?.destroy());
    res.on("close", () => upstream.destroy());
    upstream.end();
  });
  return { ...server, lastEventIds };
}

// --- the story ------------------------------------------------------------------------------

async function main(): Promise<Record<string, unknown>> {
  const report: Record<string, unknown> = {};
  const [ops, delivery] = [await acme.whoami(), await globex.whoami()];
  report["whoami"] = { acme: ops.id, globex: delivery.id, kinds: [ops.kind, delivery.kind] };
  report["sharedThreads"] = {
    acme: (await acme.sharedThreads()).items.map((t) => [t.network, t.name]),
    globex: (await globex.sharedThreads()).items.map((t) => [t.network, t.name]),
  };
  const participants = await acme.participants(NETWORK);
  report["participants"] = { host: participants.host, ids: participants.items.map((p) => p.id).sort() };

  // Globex's agent follows the network's posts through a proxy that cuts its first connection.
  const start = (await globex.events()).next_cursor;
  const streamProxy = await cuttingStreamProxy();
  const follower = new AgentNetClient({ baseUrl: streamProxy.url, token: env("AGENTNET_DELIVERY_TOKEN"), retry: FAST });
  const stream = follower.stream({ after: start, network: NETWORK, types: ["message.posted"] });
  const streamed: EventOut[] = [];
  const following = (async () => {
    for await (const event of stream) {
      streamed.push(event);
    }
  })();

  // Acme's agent asks Globex's, mentioning it, with structured data.
  const posted = await acme.post(NETWORK, THREAD, "Is the retry fix deployed?",
                                 { mentions: [delivery.id], data: { ticket: 4012 } });
  const received = await message(globex, posted.id);
  stamped("the post and the message received", [posted, received]);
  report["posted"] = { id: posted.id, status: posted.status, sender: posted.sender };
  report["received"] = { id: received.id, sender: received.sender, body: received.body, mentions: received.mentions,
                         data: received.data };

  // Globex's agent answers it; Acme's agent sees the reply.
  const answer = await globex.reply(NETWORK, THREAD, posted.id, "Deploying it now.");
  const replyAtAcme = await message(acme, answer.id);
  report["reply"] = { id: answer.id, reply_to: answer.reply_to, atAcme: { reply_to: replyAtAcme.reply_to,
                                                                            sender: replyAtAcme.sender,
                                                                            body: replyAtAcme.body } };

  // Acme's agent edits its question; both nodes converge on the latest body.
  const edited = await acme.edit(NETWORK, THREAD, posted.id, "Is the retry fix deployed to production?");
  const editAtGlobex = await message(globex, posted.id, (m) => m.edited === true);
  const editAtAcme = await message(acme, posted.id);
  report["edit"] = {
    answer: { body: edited.body, edited: edited.edited },
    atGlobex: { body: editAtGlobex.body, edited: editAtGlobex.edited, history: editAtGlobex.history ?? null },
    atAcme: { body: editAtAcme.body, history: (editAtAcme.history ?? []).map((h) => h.body) },
  };

  // Globex's agent acknowledges it.
  const seen = await globex.react(NETWORK, THREAD, posted.id, "seen");
  const reactedAtAcme = await message(acme, posted.id, (m) => (m.reactions?.["seen"] ?? []).length > 0);
  report["reaction"] = { message: seen.message, participant: seen.participant, atAcme: reactedAtAcme.reactions };

  // The feed: mentions only, the network's posts, and a long poll woken by a post.
  const mentions = await globex.events({ after: start, mentionsOnly: true });
  const posts = await globex.events({ after: start, network: NETWORK, types: ["message.posted"] });
  const waiting = globex.events({ after: posts.next_cursor, wait: 20, network: NETWORK, types: ["message.posted"] });
  const waitStarted = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 300));
  const third = await acme.post(NETWORK, THREAD, "Thanks, standing by.");
  const woken = await waiting;
  stamped("the feed's events", [...mentions.items, ...posts.items, ...woken.items]);
  report["events"] = {
    start,
    mentions: mentions.items.map((e) => e.id),
    posts: posts.items.map((e) => [e.id, e.cursor, e.scope, e.network, e.thread, e.sender]),
    postsNextCursor: posts.next_cursor,
    longPoll: { ids: woken.items.map((e) => e.id), ms: Date.now() - waitStarted, next: woken.next_cursor },
  };

  // The stream delivered all three posts across the cut, each once, with its cursor.
  await eventually("three streamed posts", async () => streamed.length >= 3);
  stamped("the streamed events", streamed);
  await new Promise((resolve) => setTimeout(resolve, 200)); // nothing more arrives
  report["stream"] = {
    ids: streamed.map((e) => e.id), cursors: streamed.map((e) => e.cursor), cursor: stream.cursor,
    reconnects: stream.reconnects, lastEventIds: streamProxy.lastEventIds,
  };
  await stream.return();
  await following;
  await streamProxy.close();

  // Newest first pages, and search, on Globex's copy.
  await message(globex, third.id);
  const latest = await globex.readLatest(NETWORK, THREAD, { limit: 1 });
  const before = await globex.readLatest(NETWORK, THREAD, { before: latest.prev_cursor ?? null, limit: 1 });
  // Forward, two at a time: `limit` counts the thread's entries (edits, reactions, ...), not only
  // its messages, so a page may hold fewer messages than `limit` while more follow.
  const walked: string[] = [];
  const cursors: (string | null)[] = [];
  let after: string | null = null;
  do {
    const page = await globex.read(NETWORK, THREAD, { after, limit: 2 });
    walked.push(...page.items.map((m) => m.id));
    after = page.next_cursor;
    cursors.push(after);
  } while (after !== null && cursors.length < 50);
  const whole = await globex.read(NETWORK, THREAD, { limit: 200 });
  report["pages"] = {
    latest: latest.items.map((m) => m.id), prevCursor: latest.prev_cursor ?? null,
    before: before.items.map((m) => m.id),
    walked, cursors, whole: whole.items.map((m) => m.id), wholeNext: whole.next_cursor,
  };
  const found = await globex.searchMessages("retry production", { network: NETWORK });
  report["search"] = found.items.map((m) => [m.id, m.body]);

  // A private thread.
  const privateThread = env("AGENTNET_PRIVATE_THREAD");
  const note = await acme.postPrivate(privateThread, "Asked Globex about the retry fix.");
  report["private"] = {
    threads: (await acme.threads()).items.map((t) => t.name),
    note: [note.thread, note.sender],
    bodies: (await acme.readPrivate(privateThread)).items.map((m) => m.body),
  };

  // A deleted message leaves a tombstone on both nodes.
  const scratch = await acme.post(NETWORK, THREAD, "Scratch that.");
  await message(globex, scratch.id);
  const gone = await acme.delete(NETWORK, THREAD, scratch.id);
  const tombstone = await message(globex, scratch.id, (m) => m.deleted === true);
  report["delete"] = { id: scratch.id, answer: gone.deleted, atGlobex: [tombstone.deleted, tombstone.body] };

  // Idempotency: the same key twice; a post whose answer was lost, then a 503; retries bounded; a 429 waited out.
  const key = `ts-client-${crypto.randomUUID()}`;
  const once = await acme.post(NETWORK, THREAD, "Stored once (explicit key).", { idempotencyKey: key });
  const again = await acme.post(NETWORK, THREAD, "Stored once (explicit key).", { idempotencyKey: key });
  const lossy = await lossyProxy(["drop", "unavailable"], "forward");
  const retried = await new AgentNetClient({ baseUrl: lossy.url, token: env("AGENTNET_OPS_TOKEN"), retry: FAST })
    .post(NETWORK, THREAD, "Stored once (retried).");
  await lossy.close();
  const dropping = await lossyProxy([], "drop");
  const bounded = await refusal(() => new AgentNetClient({
    baseUrl: dropping.url, token: env("AGENTNET_OPS_TOKEN"), retry: { ...FAST, attempts: 3 },
  }).post(NETWORK, THREAD, "Stored once (client gave up)."));
  await dropping.close();
  const slow = await lossyProxy(["slow-down"], "forward");
  const slowStarted = Date.now();
  const waitedOut = await new AgentNetClient({ baseUrl: slow.url, token: env("AGENTNET_OPS_TOKEN"), retry: FAST })
    .post(NETWORK, THREAD, "Posted after a 429.");
  const waitedMs = Date.now() - slowStarted;
  await slow.close();
  report["idempotency"] = {
    explicit: { key, ids: [once.id, again.id] },
    retried: { id: retried.id, keys: lossy.keys, replayed: lossy.replayed },
    bounded: { ...bounded, keys: dropping.keys },
    rateLimited: { id: waitedOut.id, keys: slow.keys, waitedMs },
  };

  // Refusals: one error type with the node's status and code.
  const stranger = new AgentNetClient({ baseUrl: GLOBEX_URL, token: "anagt_not-a-token", retry: FAST });
  const strangerStream = stranger.stream();
  report["errors"] = {
    invalidToken: await refusal(() => stranger.whoami()),
    invalidTokenStream: { ...(await refusal(() => strangerStream.next())), reconnects: strangerStream.reconnects },
    unknownThread: await refusal(() => acme.read(NETWORK, "no-such-thread")),
    tooLarge: await refusal(() => acme.post(NETWORK, THREAD, "x".repeat(20_000))),
    notParticipant: await refusal(() => acme.post(NETWORK, THREAD, "hi", { mentions: [env("AGENTNET_OUTSIDER")] })),
    badMention: await refusal(() => acme.post(NETWORK, THREAD, "hi", { mentions: ["agent:Bad"] })),
    unknownCursor: await refusal(() => globex.events({ after: "999999999" })),
    badWebhook: await refusal(() => acme.createWebhook("ftp://nowhere")),
  };

  // Webhooks: made, listed, deleted.
  const hook = await acme.createWebhook("https://hooks.acme.example/agentnet",
                                        { filter: { network: NETWORK, mentions: true } });
  const listed = (await acme.webhooks()).items.map((w) => w.id);
  const deleted = await acme.deleteWebhook(hook.id);
  report["webhooks"] = { secret: hook.secret.slice(0, 6), status: hook.status, filter: hook.filter ?? null,
                         listed: listed.includes(hook.id), deleted: deleted.id === hook.id,
                         after: (await acme.webhooks()).items.map((w) => w.id) };

  // A token revoked while its stream is open ends the stream with token_revoked, not a reconnect.
  const revocable = new AgentNetClient({ baseUrl: GLOBEX_URL, token: env("AGENTNET_REVOCABLE_TOKEN"), retry: FAST });
  const doomed = revocable.stream();
  const ended = refusal(() => doomed.next());
  await eventually("the stream's ready frame", async () => doomed.cursor !== null);
  say({ signal: "revoke" });
  report["revoked"] = { ...(await ended), reconnects: doomed.reconnects };
  return report;
}

const overall = setTimeout(() => {
  process.stderr.write("live.ts: still running after 60 s\n");
  process.exit(1);
}, 60_000);
main().then((report) => {
  clearTimeout(overall);
  say({ report });
}, (error: unknown) => {
  clearTimeout(overall);
  process.stderr.write(`live.ts failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exitCode = 1;
});
