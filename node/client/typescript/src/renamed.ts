import { isObject } from "./errors.js";
import type {
  EventOut, EventPage, MessagePage, SharedMessageOut, SharedMessagePage, SharedSearchResults,
} from "./types.js";

/**
 * Answers under the node's naming convention (docs/agents.md, "Conventions of every answer"):
 * lists under `items`, instants in `created_at`. A node sends the old names (`messages`,
 * `events`, `origin_ts`, `at`) beside the new ones until release 0.3, and a node from before the
 * convention sends only the old ones: there the new name is filled in from the old one, so the
 * rest of the client and its callers read only the new names. The answer is changed in place.
 */
function fillIn(body: unknown, name: string, old: string): void {
  if (isObject(body) && body[name] === undefined && body[old] !== undefined) {
    body[name] = body[old];
  }
}

function each(body: unknown, one: (item: unknown) => void): void {
  const items = isObject(body) ? body["items"] : undefined;
  if (Array.isArray(items)) {
    items.forEach(one);
  }
}

/** A shared message: `created_at` (was `origin_ts`). */
export function sharedMessage<T extends SharedMessageOut>(message: T): T {
  fillIn(message, "created_at", "origin_ts");
  return message;
}

/** An event of the feed or the stream: `created_at` (was `at`). */
export function event<T extends EventOut>(out: T): T {
  fillIn(out, "created_at", "at");
  return out;
}

/** A page of a shared thread: `items` (was `messages`), each message's `created_at`. */
export function sharedMessagePage(page: SharedMessagePage): SharedMessagePage {
  fillIn(page, "items", "messages");
  each(page, (m) => fillIn(m, "created_at", "origin_ts"));
  return page;
}

/** Shared messages found: each message's `created_at`. */
export function sharedSearchResults(results: SharedSearchResults): SharedSearchResults {
  each(results, (m) => fillIn(m, "created_at", "origin_ts"));
  return results;
}

/** A page of a private thread: `items` (was `messages`). */
export function messagePage(page: MessagePage): MessagePage {
  fillIn(page, "items", "messages");
  return page;
}

/** A page of the feed: `items` (was `events`), each event's `created_at`. */
export function eventPage(page: EventPage): EventPage {
  fillIn(page, "items", "events");
  each(page, (e) => fillIn(e, "created_at", "at"));
  return page;
}
