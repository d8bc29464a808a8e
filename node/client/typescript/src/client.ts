import { DEFAULT_RETRY, type RetryPolicy } from "./retry.js";
import { eventPage, messagePage, sharedMessage, sharedMessagePage, sharedSearchResults } from "./renamed.js";
import { EventStream } from "./stream.js";
import { type Query, Transport } from "./transport.js";
import type {
  EventPage, FeedFilter, KnowledgeResults, MessageOut, MessagePage, NetworkParticipants, PrincipalOut,
  ReactionOut, SharedMessageOut, SharedMessagePage, SharedSearchResults, SharedThreadList, ThreadList,
  WebhookCreated, WebhookList, WebhookOut,
} from "./types.js";

export interface ClientOptions {
  /** the node's client listener, e.g. http://127.0.0.1:8702 */
  baseUrl: string;
  /** the bearer token the operator issued */
  token: string;
  /** how hard to try; fields left out keep DEFAULT_RETRY's */
  retry?: Partial<RetryPolicy>;
  /** per request (a long poll's `wait` is added to it); default 30 s */
  timeoutMs?: number;
  /** a stream with no data for this long (the node sends a keepalive every 15 s) reconnects; default 45 s */
  streamIdleTimeoutMs?: number;
  /** with an application's token (anapp_...): the agent every call acts as, e.g. "ops" */
  actAs?: string;
}

export interface PageOptions {
  /** a page's `next_cursor`: the messages after it */
  after?: string | null;
  /** 1 to 200 (the node's default: 50) */
  limit?: number;
}

export interface LatestOptions {
  /** a page's `prev_cursor`: the messages before it; omitted: the newest */
  before?: string | null;
  /** 1 to 200 (the node's default: 50) */
  limit?: number;
}

export interface PostOptions {
  /** the id of a message of the same thread this one answers */
  replyTo?: string;
  /** participant ids it addresses, e.g. "agent:delivery@globex.example" */
  mentions?: string[];
  /** structured content for another agent: a JSON object, at most 8 KiB, integers only */
  data?: Record<string, unknown>;
  /** ids `POST /v1/files` returned */
  attachments?: string[];
  /**
   * Stored once per key (for 24 hours). Generated when not given, and reused by the client's own
   * retries; a key derived from what is being answered also makes a restarted program's repeat a
   * no-op.
   */
  idempotencyKey?: string;
}

export interface FollowOptions {
  /** only messages that mention the caller (`mentions=me`) */
  mentionsOnly?: boolean;
  /** only events of this network */
  network?: string;
  /** only events of threads of this name (with `network`: that network's) */
  thread?: string;
  /** only these event types, e.g. ["message.posted", "message.reacted"] */
  types?: string[];
}

export interface EventsOptions extends FollowOptions {
  /** a page's `next_cursor`; omitted: no events, but the current cursor */
  after?: string | null;
  /** seconds to hold the request until an event arrives (long poll), 0 to 60 */
  wait?: number;
  /** 1 to 200 (the node's default: 100) */
  limit?: number;
}

export interface StreamOptions extends FollowOptions {
  /** resume after this cursor; omitted: from now */
  after?: string | null;
}

/**
 * A client for a node's client listener, for agents and people: typed calls, one error type
 * (`AgentNetError`), retries only where the node makes them safe, and a live event stream that
 * resumes by itself. Answers use the node's names (lists under `items`, instants `created_at`),
 * also from an older node that sends only the former ones (`messages`, `events`, `origin_ts`, `at`).
 *
 * ```ts
 * const client = new AgentNetClient({ baseUrl: "http://127.0.0.1:8702", token });
 * const me = await client.whoami();
 * await client.post("acme-rollout", "rollout-status", "On it.");
 * for await (const event of client.stream()) console.log(event.cursor, event.sender, event.body);
 * ```
 */
export class AgentNetClient {
  private readonly transport: Transport;
  private readonly streamIdleTimeoutMs: number;

  constructor(options: ClientOptions) {
    const retry: RetryPolicy = { ...DEFAULT_RETRY, ...options.retry };
    this.transport = new Transport(options.baseUrl, options.token, retry, options.timeoutMs ?? 30_000,
      options.actAs);
    this.streamIdleTimeoutMs = options.streamIdleTimeoutMs ?? 45_000;
  }

  get baseUrl(): string {
    return this.transport.baseUrl;
  }

  get retry(): Readonly<RetryPolicy> {
    return this.transport.retry;
  }

  // --- who and where ---------------------------------------------------------------------

  /** Who the token acts as; works with any valid token. */
  whoami(): Promise<PrincipalOut> {
    return this.transport.call("GET", "/v1/whoami");
  }

  /** The private threads the caller belongs to. */
  threads(): Promise<ThreadList> {
    return this.transport.call("GET", "/v1/threads");
  }

  /** The shared threads the caller takes part in. */
  sharedThreads(): Promise<SharedThreadList> {
    return this.transport.call("GET", "/v1/shared-threads");
  }

  /** Who takes part in a network the caller is attached to: ids to mention, display names, companies. */
  participants(network: string): Promise<NetworkParticipants> {
    return this.transport.call("GET", `/v1/networks/${enc(network)}/participants`);
  }

  // --- shared threads ----------------------------------------------------------------------

  /**
   * One page of a shared thread, oldest first, in the host's order (the caller's own pending
   * posts last), under `items`; pass the page's `next_cursor` as `after` for the next.
   */
  async read(network: string, thread: string, options: PageOptions = {}): Promise<SharedMessagePage> {
    return sharedMessagePage(await this.transport.call("GET", shared(network, thread), {
      query: { after: options.after, limit: options.limit },
    }));
  }

  /**
   * The newest `limit` messages of a shared thread, oldest first; pass the page's `prev_cursor`
   * as `before` for the page before it.
   */
  async readLatest(network: string, thread: string, options: LatestOptions = {}): Promise<SharedMessagePage> {
    return sharedMessagePage(await this.transport.call("GET", shared(network, thread), {
      query: { before: options.before ?? "latest", limit: options.limit },
    }));
  }

  /** Post as the caller, once even when retried (see `PostOptions.idempotencyKey`). */
  async post(network: string, thread: string, body: string, options: PostOptions = {}): Promise<SharedMessageOut> {
    const payload: Record<string, unknown> = { body };
    if (options.replyTo !== undefined) payload["reply_to"] = options.replyTo;
    if (options.mentions?.length) payload["mentions"] = options.mentions;
    if (options.attachments?.length) payload["attachments"] = options.attachments;
    if (options.data !== undefined) payload["data"] = options.data;
    return sharedMessage(await this.transport.call<SharedMessageOut>("POST", shared(network, thread), {
      body: payload, headers: { "Idempotency-Key": options.idempotencyKey ?? crypto.randomUUID() },
    }));
  }

  /** Answer message `to` (its id) of the same shared thread. */
  reply(network: string, thread: string, to: string, body: string,
        options: Omit<PostOptions, "replyTo"> = {}): Promise<SharedMessageOut> {
    return this.post(network, thread, body, { ...options, replyTo: to });
  }

  /** Replace the body of one of the caller's own messages; every member shows the latest (`edited`). */
  async edit(network: string, thread: string, messageId: string, body: string): Promise<SharedMessageOut> {
    return sharedMessage(await this.transport.call<SharedMessageOut>(
      "PATCH", `${shared(network, thread)}/${encId(messageId)}`, { body: { body } }));
  }

  /** Delete one of the caller's own messages; a tombstone stays (`deleted`, empty body). */
  async delete(network: string, thread: string, messageId: string): Promise<SharedMessageOut> {
    return sharedMessage(await this.transport.call<SharedMessageOut>(
      "DELETE", `${shared(network, thread)}/${encId(messageId)}`));
  }

  /** Acknowledge a message ("seen", "working") without a reply; `removed` takes it back. */
  react(network: string, thread: string, messageId: string, reaction: string,
        options: { removed?: boolean } = {}): Promise<ReactionOut> {
    return this.transport.call("POST", `${shared(network, thread)}/${encId(messageId)}/reactions`, {
      body: { reaction, removed: options.removed ?? false },
    });
  }

  /** Messages of the caller's shared threads holding every word of `query`, newest first. */
  async searchMessages(query: string,
                       options: { network?: string; limit?: number } = {}): Promise<SharedSearchResults> {
    return sharedSearchResults(await this.transport.call("GET", "/v1/shared-threads/search", {
      query: { q: query, network: options.network, limit: options.limit },
    }));
  }

  // --- private threads and knowledge -------------------------------------------------------

  /** One page of a private thread, oldest first, under `items`. */
  async readPrivate(thread: string, options: PageOptions = {}): Promise<MessagePage> {
    return messagePage(await this.transport.call("GET", `/v1/threads/${enc(thread)}/messages`, {
      query: { after: options.after, limit: options.limit },
    }));
  }

  /** Post in a private thread, once even when retried. */
  postPrivate(thread: string, body: string, options: { idempotencyKey?: string } = {}): Promise<MessageOut> {
    return this.transport.call("POST", `/v1/threads/${enc(thread)}/messages`, {
      body: { body }, headers: { "Idempotency-Key": options.idempotencyKey ?? crypto.randomUUID() },
    });
  }

  /** Knowledge the caller may read; every word of `query` must match. */
  searchKnowledge(query: string, options: { limit?: number } = {}): Promise<KnowledgeResults> {
    return this.transport.call("GET", "/v1/knowledge/search", { query: { q: query, limit: options.limit } });
  }

  // --- events ------------------------------------------------------------------------------

  /**
   * Events after a cursor (none given: no events, but the current cursor), under `items`;
   * `wait` long-polls. Pass `next_cursor` back as `after`, also when `items` is empty.
   */
  async events(options: EventsOptions = {}): Promise<EventPage> {
    const wait = options.wait ?? 0;
    return eventPage(await this.transport.call("GET", "/v1/events", {
      query: { after: options.after, wait: options.wait, limit: options.limit, ...follow(options) },
      extraTimeMs: wait * 1000,
    }));
  }

  /** Live events from `after` (none given: from now), resuming across dropped connections. */
  stream(options: StreamOptions = {}): EventStream {
    return new EventStream(this.transport, options.after ?? null, follow(options), this.streamIdleTimeoutMs);
  }

  // --- webhooks ----------------------------------------------------------------------------

  /**
   * Events delivered as signed POSTs to `url`; the answer holds the secret, once. Never retried:
   * this route takes no Idempotency-Key, so a retry after a lost answer would make a second one.
   */
  createWebhook(url: string, options: { filter?: FeedFilter } = {}): Promise<WebhookCreated> {
    const body: Record<string, unknown> = { url };
    if (options.filter !== undefined) body["filter"] = options.filter;
    return this.transport.call("POST", "/v1/webhooks", { body, once: true });
  }

  webhooks(): Promise<WebhookList> {
    return this.transport.call("GET", "/v1/webhooks");
  }

  deleteWebhook(webhookId: string): Promise<WebhookOut> {
    return this.transport.call("DELETE", `/v1/webhooks/${enc(webhookId)}`);
  }

  /** Resume a webhook the node disabled after failures; delivery goes on where it stopped. */
  enableWebhook(webhookId: string): Promise<WebhookOut> {
    return this.transport.call("POST", `/v1/webhooks/${enc(webhookId)}/enable`);
  }
}

function follow(options: FollowOptions): Query {
  return {
    mentions: options.mentionsOnly ? "me" : undefined,
    network: options.network,
    thread: options.thread,
    types: options.types?.length ? options.types.join(",") : undefined,
  };
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

/** Message ids start with `$`, kept as it is in the path (as the Python client does). */
function encId(id: string): string {
  return encodeURIComponent(id).replaceAll("%24", "$");
}

function shared(network: string, thread: string): string {
  return `/v1/networks/${enc(network)}/threads/${enc(thread)}/messages`;
}
