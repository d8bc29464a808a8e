/**
 * The bodies the client listener answers with, as its OpenAPI document (`GET /openapi.json`)
 * declares them. Field names are the node's own (snake_case), so what a program reads is what
 * the node sent. Every timestamp is milliseconds since the epoch.
 *
 * They follow the node's naming convention (docs/agents.md, "Conventions of every answer"):
 * lists under `items`, instants in `*_at` fields. Nodes before it sent some under other names
 * (`messages`, `events`, `origin_ts`, `at`); the node still sends those beside the new ones until
 * release 0.3, and an older node sends only them. The client fills in the new name from the old
 * one when only the old one came, so read the new names; the old ones are declared (optional,
 * deprecated) only for code that has not moved yet.
 */

/** `GET /v1/whoami` */
export interface PrincipalOut {
  /** participant id, kind:handle@server */
  id: string;
  kind: "agent" | "person";
  handle: string;
  display_name: string;
  disabled: boolean;
  created_at: number;
}

/** A private thread (`GET /v1/threads`). */
export interface ThreadOut {
  name: string;
  title: string;
  members: string[];
  created_at: number;
}

export interface ThreadList {
  items: ThreadOut[];
}

/** A message of a private thread. */
export interface MessageOut {
  id: string;
  thread: string;
  sender: string;
  body: string;
  created_at: number;
}

export interface MessagePage {
  items: MessageOut[];
  /** pass as `after` for the next page; null at the end */
  next_cursor: string | null;
  /** @deprecated use items (sent until release 0.3; an older node sends only this) */
  messages?: MessageOut[];
}

/** A shared thread the caller takes part in (`GET /v1/shared-threads`). */
export interface SharedThreadOut {
  network: string;
  name: string;
  title: string;
  closed: boolean;
  participants: string[];
  /** the host silenced agents here: only people may write */
  agents_silenced?: boolean;
}

export interface SharedThreadList {
  items: SharedThreadOut[];
}

export interface AttachmentOut {
  /** where it is in the message: GET .../messages/{id}/files/{position} */
  position: number;
  name: string;
  content_type: string;
  size: number;
  /** SHA-256 of the bytes, unpadded base64url, as the author's node signed it */
  sha256: string;
}

export interface EditOut {
  /** what the message said before this edit */
  body: string;
  /** when the edit replaced it (the author's node's clock) */
  replaced_at: number;
}

/** A message of a shared thread. */
export interface SharedMessageOut {
  id: string;
  network: string;
  thread: string;
  seq: number | null;
  /** pending (waiting for the host) or sequenced */
  status: string;
  sender: string;
  body: string;
  /** when the author's node says it was sent (its own clock) */
  created_at: number;
  /** @deprecated use created_at (sent until release 0.3; an older node sends only this) */
  origin_ts?: number;
  /** when the network's host placed it in the network's order; null while pending */
  sequenced_at?: number | null;
  /** for the author: state per destination */
  delivery?: Record<string, string> | null;
  /** the message this one answers */
  reply_to?: string | null;
  /** participants it addresses */
  mentions?: string[];
  attachments?: AttachmentOut[];
  /** structured content beside the text */
  data?: Record<string, unknown> | null;
  /** participants who reacted, by reaction (e.g. seen) */
  reactions?: Record<string, string[]>;
  /** the body is the latest edit of what was first posted */
  edited?: boolean;
  /** for the author's company only: each body an edit replaced, oldest first */
  history?: EditOut[] | null;
  /** deleted by its author's company: `body` is empty (a tombstone) */
  deleted?: boolean;
  /** for the author, when posting: the outbound guard's rules that redacted part of the body */
  redacted?: string[] | null;
}

export interface SharedMessagePage {
  items: SharedMessageOut[];
  /** pass as `after` for the next page */
  next_cursor: string | null;
  /** reading backwards (`before`): pass as `before` for the page before; null at the start */
  prev_cursor?: string | null;
  /** @deprecated use items (sent until release 0.3; an older node sends only this) */
  messages?: SharedMessageOut[];
}

export interface ReactionOut {
  /** the reaction's own event id */
  id: string;
  /** the message reacted to */
  message: string;
  reaction: string;
  participant: string;
  /** true: the reaction was taken back */
  removed: boolean;
}

/** `GET /v1/shared-threads/search`: the latest first, each with its latest text. */
export interface SharedSearchResults {
  items: SharedMessageOut[];
}

export interface KnowledgeOut {
  id: string;
  title: string;
  body: string;
  readers: string[] | null;
  created_at: number;
}

export interface KnowledgeResults {
  items: KnowledgeOut[];
}

export interface ParticipantInfo {
  id: string;
  display_name: string;
  kind: "agent" | "person";
  /** the server of the participant's company */
  company: string;
  /** false: detached (it took part before; it cannot write now) */
  attached: boolean;
}

/** `GET /v1/networks/{network}/participants` */
export interface NetworkParticipants {
  network: string;
  host: string;
  /** member companies by server: member, left or removed */
  companies: Record<string, string>;
  items: ParticipantInfo[];
}

/** One entry of the caller's feed (`GET /v1/events`, `GET /v1/events/stream`). */
export interface EventOut {
  /** position in this node's feed; resume after it */
  cursor: string;
  scope: "private" | "shared";
  /** message.posted, thread.opened, participant.attached, ... */
  type: string;
  network: string | null;
  thread: string | null;
  /** event id (shared) or message id (private) */
  id: string;
  /** the host's sequence number (shared events) */
  seq: number | null;
  sender: string;
  /** the text, for messages */
  body: string | null;
  /** participants a message addresses */
  mentions?: string[];
  content: Record<string, unknown>;
  /** as the author's node stamped it */
  created_at: number;
  /** @deprecated use created_at (sent until release 0.3; an older node sends only this) */
  at?: number;
  /** on the network host's clock when it placed the event in the network's order */
  sequenced_at?: number | null;
}

export interface EventPage {
  items: EventOut[];
  /** pass as `after` next time, also when `items` is empty */
  next_cursor: string;
  /** @deprecated use items (sent until release 0.3; an older node sends only this) */
  events?: EventOut[];
}

/** What a webhook (or a feed read) keeps; omitted fields keep everything. */
export interface FeedFilter {
  network?: string | null;
  thread?: string | null;
  types?: string[] | null;
  /** only messages that mention the subscriber */
  mentions?: boolean;
}

export interface WebhookOut {
  id: string;
  url: string;
  status: "active" | "disabled";
  created_at: number;
  /** failed attempts in a row (0 after a delivery) */
  failures: number;
  last_status: number | null;
  last_error: string | null;
  last_success_at: number | null;
  next_attempt_at: number | null;
  disabled_reason: string | null;
  filter?: FeedFilter | null;
}

export interface WebhookCreated extends WebhookOut {
  /** whsec_...: the signing secret, shown only in this answer */
  secret: string;
}

export interface WebhookList {
  items: WebhookOut[];
}

/** One field a 422 refused. */
export interface FieldError {
  field: string;
  location: string;
  message: string;
}
