// DOM helpers. Everything a peer wrote (bodies, nicks, topics, file names) goes into the
// page as text nodes: never as HTML.

/** An element with attributes (strings, or `on*` handlers) and children (nodes or text). */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

/** The colour class of a nick: the same nick always gets the same one. */
export function nickClass(nick) {
  let hash = 5381;
  const key = String(nick).toLowerCase();
  for (let i = 0; i < key.length; i++) hash = ((hash * 33) ^ key.charCodeAt(i)) >>> 0;
  return `nick nc${hash % 12}`;
}

const LINK = /\b(?:https?:\/\/|www\.)[^\s<>"]+/gi;

/** Only http(s) URLs become links; anything else stays text. */
export function safeUrl(raw) {
  let candidate = raw.replace(/[.,;:!?)\]'"]+$/, "");
  if (/^www\./i.test(candidate)) candidate = `https://${candidate}`;
  try {
    const url = new URL(candidate);
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    return { href: url.href, length: raw.replace(/[.,;:!?)\]'"]+$/, "").length };
  } catch {
    return null;
  }
}

/** Text with its http(s) links made clickable, as a list of nodes. */
export function linkify(text, highlight) {
  const nodes = [];
  let at = 0;
  for (const match of text.matchAll(LINK)) {
    const url = safeUrl(match[0]);
    if (!url) continue;
    if (match.index > at) nodes.push(...marked(text.slice(at, match.index), highlight));
    const shown = text.slice(match.index, match.index + url.length);
    nodes.push(el("a", { href: url.href, target: "_blank", rel: "noopener noreferrer nofollow" }, shown));
    at = match.index + url.length;
  }
  if (at < text.length) nodes.push(...marked(text.slice(at), highlight));
  return nodes;
}

/** Text with the words matching `highlight` (a RegExp) wrapped in <mark>. */
function marked(text, highlight) {
  if (!highlight) return [document.createTextNode(text)];
  const nodes = [];
  let at = 0;
  highlight.lastIndex = 0;
  for (const match of text.matchAll(highlight)) {
    if (!match[0]) break;
    if (match.index > at) nodes.push(document.createTextNode(text.slice(at, match.index)));
    nodes.push(el("mark", null, match[0]));
    at = match.index + match[0].length;
  }
  if (at < text.length) nodes.push(document.createTextNode(text.slice(at)));
  return nodes;
}

export function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A RegExp matching `nick` as a whole word, any case. */
export function mentionPattern(nick) {
  return new RegExp(`(?<![\\p{L}\\p{N}_])${escapeRegExp(nick)}(?![\\p{L}\\p{N}_])`, "giu");
}

const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric" });

export function timeOf(ts) {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? "" : clock.format(d);
}

export function fullTime(ts) {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? "" : full.format(d);
}

/** The local day of an instant, as a key (`2026-11-25`). */
export function dayKey(ts) {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return "";
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

export function dayLabel(ts) {
  const d = new Date(ts);
  const today = new Date();
  const yesterday = new Date(today.getTime() - 86400000);
  if (dayKey(d) === dayKey(today)) return "Today";
  if (dayKey(d) === dayKey(yesterday)) return "Yesterday";
  return dayFormat.format(d);
}

export function humanSize(bytes) {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit + 1 < units.length) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
