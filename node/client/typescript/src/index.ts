export { AgentNetClient } from "./client.js";
export type {
  ClientOptions, EventsOptions, FollowOptions, LatestOptions, PageOptions, PostOptions, StreamOptions,
} from "./client.js";
export { AgentNetError } from "./errors.js";
export { DEFAULT_RETRY, NO_RETRIES } from "./retry.js";
export type { RetryPolicy } from "./retry.js";
export { SseParser } from "./sse.js";
export type { SseFrame } from "./sse.js";
export { EventStream } from "./stream.js";
export type * from "./types.js";
