import { AgentNetError } from "./errors.js";

export interface SseFrame {
  event: string;
  data: string;
  id: string | null;
}

/**
 * The Server-Sent Events field rules, without I/O: bytes in (in any chunks), frames out. The
 * `id` sticks from frame to frame until one sets another, as the spec's "last event ID" does.
 */
export class SseParser {
  /** A frame holds one event (the largest is under 200 KB); far more is not an event stream. */
  static readonly MAX_BUFFER = 1 << 20;

  private readonly decoder = new TextDecoder("utf-8");
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private id: string | null = null;

  feed(chunk: Uint8Array): SseFrame[] {
    // A streaming decoder keeps a character split across chunks whole.
    this.buffer += this.decoder.decode(chunk, { stream: true });
    const lines = this.buffer.split("\n");
    this.buffer = lines.pop() ?? "";
    if (this.buffer.length > SseParser.MAX_BUFFER) {
      throw new AgentNetError(0, "bad_response", "an event stream line is too long");
    }
    const frames: SseFrame[] = [];
    for (const line of lines) {
      const frame = this.line(line.endsWith("\r") ? line.slice(0, -1) : line);
      if (frame !== null) {
        frames.push(frame);
      }
    }
    return frames;
  }

  private line(line: string): SseFrame | null {
    if (line === "") {
      return this.dispatch();
    }
    if (line.startsWith(":")) {
      return null; // a comment: keepalive
    }
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) {
      value = value.slice(1);
    }
    if (name === "event") {
      this.event = value;
    } else if (name === "data") {
      this.data.push(value);
    } else if (name === "id" && !value.includes("\0")) {
      this.id = value;
    }
    return null; // "retry" and unknown fields: the client keeps its own backoff
  }

  private dispatch(): SseFrame | null {
    const data = this.data;
    const event = this.event;
    this.data = [];
    this.event = "";
    if (data.length === 0) {
      return null;
    }
    return { event: event || "message", data: data.join("\n"), id: this.id };
  }
}
