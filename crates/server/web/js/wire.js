// The native protocol over WebSocket (docs/PROTOCOL.md, "Over WebSocket"): one frame
// per binary message, a frame being a 2-byte big-endian header length, a JSON header,
// then `content-length` bytes of payload.

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });

export const TEXT = "text/plain; charset=utf-8";
export const BINARY = "application/octet-stream";

/** One frame as bytes: `header` (an object) and an optional payload. */
export function encodeFrame(header, payload) {
  const h = { ...header };
  let body = null;
  if (payload !== undefined && payload !== null) {
    body = typeof payload === "string" ? encoder.encode(payload) : new Uint8Array(payload);
    h["content-type"] = h["content-type"] || (typeof payload === "string" ? TEXT : BINARY);
    h["content-length"] = body.length;
  }
  const head = encoder.encode(JSON.stringify(h));
  if (head.length > 65535) throw new Error("header too long");
  const frame = new Uint8Array(2 + head.length + (body ? body.length : 0));
  frame[0] = head.length >> 8;
  frame[1] = head.length & 0xff;
  frame.set(head, 2);
  if (body) frame.set(body, 2 + head.length);
  return frame;
}

/** A received message as `{header, payload}`, or null when it is not one frame. */
export function decodeFrame(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 2) return null;
  const length = (bytes[0] << 8) | bytes[1];
  if (length === 0 || bytes.length < 2 + length) return null;
  let header;
  try {
    header = JSON.parse(decoder.decode(bytes.subarray(2, 2 + length)));
  } catch {
    return null;
  }
  if (!header || typeof header !== "object" || typeof header.type !== "string") return null;
  return { header, payload: bytes.subarray(2 + length) };
}

export function text(payload) {
  return decoder.decode(payload);
}

/**
 * Where the WebSocket can be, in the order to try: the page's own server (`page`, its
 * origin), then each node of its cluster that a `welcome` listed as a web URL
 * (`https://HOST/PATH` becomes `wss://HOST/PATH/ws`). Bare `HOST:PORT` entries are for
 * native clients and are skipped, as is anything that is not an http(s) URL.
 */
export function socketUrls(page, nodes) {
  const urls = [];
  for (const base of [page, ...(nodes || [])]) {
    if (typeof base !== "string" || !/^https?:\/\//i.test(base)) continue;
    let url;
    try {
      url = new URL(base);
    } catch {
      continue;
    }
    const path = url.pathname.endsWith("/") ? url.pathname : `${url.pathname}/`;
    const socket = `${url.protocol === "https:" ? "wss" : "ws"}://${url.host}${path}ws`;
    if (!urls.includes(socket)) urls.push(socket);
  }
  return urls;
}

/** A failed request: the server's `code` and `message`. */
export class RequestError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

/**
 * One WebSocket session: requests with ids answered by promises, events to a callback.
 * `onevent(header, payload)` gets every frame that answers no request; `onclose(reason)`
 * is called once.
 */
export class Connection {
  constructor(url, { onevent, onclose }) {
    this.url = url;
    this.onevent = onevent;
    this.onclose = onclose;
    this.nextId = 1;
    this.pending = new Map();
    this.closed = false;
    this.lastHeard = Date.now();
  }

  open() {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (e) {
        reject(e);
        return;
      }
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("could not connect"));
      ws.onmessage = (m) => this.receive(m.data);
      ws.onclose = (e) => this.finish(e.reason || "connection closed");
    });
  }

  receive(data) {
    this.lastHeard = Date.now();
    if (typeof data === "string") return;
    const frame = decodeFrame(data);
    if (!frame) return;
    const { header, payload } = frame;
    const waiting = header.id !== undefined && header.id !== 0 ? this.pending.get(header.id) : undefined;
    if (waiting && (header.type === "result" || header.type === "error" || header.type === "data")) {
      this.pending.delete(header.id);
      if (header.type === "error") {
        waiting.reject(new RequestError(header.code, header.message));
      } else if (header.type === "data") {
        waiting.resolve({ header, payload });
      } else {
        let body = {};
        try {
          body = payload.length ? JSON.parse(text(payload)) : {};
        } catch {
          body = {};
        }
        waiting.resolve(body);
      }
      return;
    }
    this.onevent(header, payload);
  }

  finish(reason) {
    if (this.closed) return;
    this.closed = true;
    for (const waiting of this.pending.values()) waiting.reject(new RequestError("disconnected", reason));
    this.pending.clear();
    this.onclose(reason);
  }

  /** Sends a request; resolves with the result's body (or a `data` frame), rejects with a RequestError. */
  request(header, payload) {
    if (this.closed || !this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new RequestError("disconnected", "not connected"));
    }
    const id = this.nextId++;
    const frame = encodeFrame({ ...header, id }, payload);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(frame);
    });
  }

  /** How many bytes wait in the socket's send buffer. */
  get buffered() {
    return this.ws ? this.ws.bufferedAmount : 0;
  }

  close(reason = "closed") {
    if (this.ws) this.ws.close(1000, "bye");
    this.finish(reason);
  }
}
