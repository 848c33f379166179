// Files over the native protocol (docs/PROTOCOL.md, "Files"): uploads in `chunk`s,
// downloads by `read`s, every file's SHA-256 checked in the browser.

import { RequestError } from "./wire.js";

/** The hex SHA-256 of `bytes`: Web Crypto where the page is a secure context, else in JS. */
export async function sha256Hex(bytes) {
  let digest;
  if (globalThis.crypto && crypto.subtle) {
    digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  } else {
    digest = sha256(new Uint8Array(bytes));
  }
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);

/** SHA-256 (FIPS 180-4) for pages without Web Crypto (plain HTTP to a LAN address). */
function sha256(data) {
  const h = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const total = Math.ceil((data.length + 9) / 64) * 64;
  const padded = new Uint8Array(total);
  padded.set(data);
  padded[data.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(total - 8, Math.floor(data.length / 0x20000000));
  view.setUint32(total - 4, (data.length * 8) >>> 0);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let block = 0; block < total; block += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(block + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) >>> 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) >>> 0;
    }
    const add = [a, b, c, d, e, f, g, hh];
    for (let i = 0; i < 8; i++) h[i] = (h[i] + add[i]) >>> 0;
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) outView.setUint32(i * 4, h[i]);
  return out;
}

/** How many pieces may be on their way at once. */
const UPLOAD_WINDOW = 4;

/**
 * Uploads `file` (a File) to `target` (`{room}` or `{to}`), calling `progress(sent, size)`
 * as the server acknowledges pieces. Resolves with the `shared` result and the file's
 * `description`, as the others receive it.
 */
export async function upload(connection, target, file, progress) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const sha256 = await sha256Hex(bytes);
  const started = await connection.request({
    type: "upload",
    ...target,
    name: file.name || "pasted",
    size: bytes.length,
    media_type: file.type || "application/octet-stream",
    sha256,
  });
  const chunk = Math.max(1, Math.min(started.chunk || 65536, 1 << 20));
  // An empty file is one empty piece.
  const pieces = [[0, bytes.subarray(0, Math.min(chunk, bytes.length))]];
  for (let offset = chunk; offset < bytes.length; offset += chunk) {
    pieces.push([offset, bytes.subarray(offset, Math.min(offset + chunk, bytes.length))]);
  }
  progress(0, bytes.length);
  let shared = null;
  const inFlight = new Set();
  for (const [offset, piece] of pieces) {
    const answer = connection
      .request({ type: "chunk", file: started.file, offset, "content-type": "application/octet-stream" }, piece)
      .then((reply) => {
        if (reply.result === "shared") shared = reply;
        else if (typeof reply.received === "number") progress(reply.received, bytes.length);
      });
    inFlight.add(answer);
    answer.finally(() => inFlight.delete(answer)).catch(() => {});
    if (inFlight.size >= UPLOAD_WINDOW) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  progress(bytes.length, bytes.length);
  if (!shared) throw new RequestError("upload_failed", "the server did not confirm the file");
  const description = { file: started.file, name: file.name || "pasted", size: bytes.length, media_type: file.type || "application/octet-stream", sha256 };
  return { ...shared, description };
}

/**
 * Downloads the file `id`, checking its SHA-256. Resolves with `{info, bytes}`; rejects
 * with `checksum_mismatch` when the bytes are not the announced ones.
 */
export async function download(connection, id, progress = () => {}) {
  const info = await connection.request({ type: "download", file: id });
  const size = Number(info.size) || 0;
  const chunk = Math.max(1, Number(info.chunk) || 65536);
  const window = Math.max(1, Math.min(Number(info.window) || 1, 16));
  const bytes = new Uint8Array(size);
  let received = 0;
  const offsets = [];
  for (let offset = 0; offset < size; offset += chunk) offsets.push(offset);
  const inFlight = new Set();
  for (const offset of offsets) {
    const read = connection.request({ type: "read", file: id, offset }).then(({ payload }) => {
      if (offset + payload.length > size) throw new RequestError("bad_data", "more bytes than the file has");
      bytes.set(payload, offset);
      received += payload.length;
      progress(received, size);
    });
    inFlight.add(read);
    read.finally(() => inFlight.delete(read)).catch(() => {});
    if (inFlight.size >= window) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  const digest = await sha256Hex(bytes);
  if (received !== size || digest !== String(info.sha256).toLowerCase()) {
    throw new RequestError("checksum_mismatch", "the file received is not the one shared (SHA-256 differs)");
  }
  return { info, bytes };
}

/** Media types shown inline as a preview; never SVG or anything that runs. */
export const PREVIEWABLE = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);
