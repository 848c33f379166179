// Parley's browser client: the native protocol over WebSocket (wire.js), one buffer per
// room or conversation, gap-free catch-up by seq after a reconnect.

import { Connection, RequestError, socketUrls, text } from "./wire.js";
import { el, nickClass, linkify, mentionPattern, timeOf, fullTime, dayKey, dayLabel, humanSize } from "./view.js";
import { upload, download, PREVIEWABLE } from "./files.js";
import { runCommand } from "./commands.js";

const $ = (id) => document.getElementById(id);

/** Messages per history page when catching up or scrolling back (the server's maximum). */
const PAGE = 500;
/** Previews are fetched for images up to this size. */
const PREVIEW_MAX = 8 * 1000 * 1000;
const TYPING_EVERY = 3000;
const TYPING_EXPIRES = 6000;
const REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "👀"];

/** Compares two sort keys (arrays of numbers). */
function compare(a, b) {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

function keyOf(kind, name) {
  return `${kind === "room" ? "r" : "p"}:${String(name).toLowerCase()}`;
}

/** One room or conversation: its messages in order, as the server numbered them. */
class Buffer {
  constructor(kind, name) {
    this.kind = kind;
    this.name = name;
    this.key = keyOf(kind, name);
    this.members = [];
    this.topic = "";
    this.entries = new Map();
    this.keys = [];
    this.sub = 0;
    this.firstSeq = 0;
    this.lastSeq = 0;
    this.atStart = false;
    this.loadingOlder = null;
    this.readTs = null;
    this.unread = 0;
    this.mentions = 0;
    this.typing = new Map();
    /** Replies whose original is not held yet, by the original's seq. */
    this.awaited = new Map();
    this.joined = true;
    this.log = el("ol", {
      class: "log",
      "data-buffer": this.key,
      role: "log",
      "aria-label": `Messages in ${name}. Arrow keys move between messages; R replies, E reacts.`,
      tabindex: "0",
      hidden: true,
    });
    this.log.addEventListener("scroll", () => app.scrolled(this), { passive: true });
    this.log.addEventListener("keydown", (e) => app.logKey(this, e));
    const actions = (e) => app.ensureActions(this, e.target.closest?.(".msg"));
    this.log.addEventListener("pointerover", actions);
    this.log.addEventListener("focusin", actions);
  }

  get target() {
    return this.kind === "room" ? { room: this.name } : { with: this.name };
  }

  get sendTarget() {
    return this.kind === "room" ? { room: this.name } : { to: this.name };
  }

  newestTs() {
    const last = this.log.lastElementChild;
    for (let node = last; node; node = node.previousElementSibling) {
      if (node.dataset.ts && node.classList.contains("msg")) return node.dataset.ts;
    }
    return null;
  }
}

const app = {
  conn: null,
  me: "",
  maxText: 4096,
  buffers: new Map(),
  active: null,
  credentials: null,
  remembered: localStorage.getItem("parley.session"),
  retry: 0,
  retryTimer: null,
  // The cluster's nodes the last welcome listed, and which of `urls()` to try next.
  nodes: [],
  target: 0,
  userClosed: false,
  features: { typing: true, thumbnails: true },
  replyTo: null,
  typingSent: 0,
  notifyAsked: false,
  searchState: null,
  markTimer: null,

  // ---- connection -------------------------------------------------------------------

  /**
   * Where to connect: this page's server, then the cluster's other nodes. A kept
   * session's cookie belongs to this page's server, so a session kept that way resumes
   * only there (behind one name, a load balancer moves it between nodes).
   */
  urls() {
    const urls = socketUrls(`${location.origin}/`, this.nodes);
    return this.remembered ? urls.slice(0, 1) : urls;
  },

  /**
   * Opens a session at `url` (default: this page's server): `how` is `{resume}`, or
   * `{nick, password, register, remember}`.
   */
  async connect(how, url = this.urls()[0]) {
    const conn = new Connection(url, {
      onevent: (header, payload) => {
        if (this.conn === conn) this.event(header, payload);
      },
      onclose: (reason) => {
        if (this.conn === conn) this.lost(reason);
      },
    });
    await conn.open();
    const hello = { type: "hello", version: 1 };
    if (how.resume) {
      hello.resume = true;
    } else {
      hello.nick = how.nick;
      if (how.password && !how.register) hello.password = how.password;
      if (how.remember && how.password) hello.remember = true;
    }
    let welcome;
    try {
      welcome = await conn.request(hello);
    } catch (e) {
      conn.close();
      throw e;
    }
    let token = welcome.token;
    if (how.register) {
      try {
        const registered = await conn.request({ type: "register", password: how.password, remember: how.remember || undefined });
        token = registered.token;
      } catch (e) {
        conn.close();
        throw e;
      }
    }
    this.conn = conn;
    this.userClosed = false;
    this.retry = 0;
    // How to sign in again after a lost connection: the kept session's cookie, or else
    // the password, held in this page's memory only (never in storage).
    if (!how.resume) this.credentials = how.password ? { nick: welcome.nick, password: how.password } : { nick: welcome.nick };
    if (token && (await this.keepSession(token, welcome.nick))) this.credentials = null;
    await this.welcomed(welcome);
  },

  /** Hands the resume token to the server for an HttpOnly cookie, and forgets it. */
  async keepSession(token, nick) {
    try {
      const answer = await fetch("/session", {
        method: "POST",
        body: token,
        headers: { "content-type": "text/plain; charset=utf-8" },
        credentials: "same-origin",
      });
      if (answer.ok) {
        localStorage.setItem("parley.session", nick);
        this.remembered = nick;
        return true;
      }
    } catch {
      // The server keeps no browser sessions: this browser will ask for the password again.
    }
    return false;
  },

  async welcomed(welcome) {
    this.me = welcome.nick;
    this.nodes = welcome.nodes || [];
    this.maxText = welcome.max_text || 4096;
    this.mention = mentionPattern(this.me);
    $("me-nick").textContent = this.me;
    $("me-nick").className = nickClass(this.me);
    showApp();
    this.banner(null);
    const lobby = this.buffer("room", welcome.room || "lobby");
    lobby.members = welcome.members || [];
    lobby.topic = welcome.topic || "";
    const rooms = [...this.buffers.values()].filter((b) => b.kind === "room" && b !== lobby && b.joined);
    if (!this.active) this.show(lobby);
    this.renderSidebar();
    this.renderHeader();
    await this.sync(lobby, welcome.history || [], null);
    this.request({ type: "mark_read", room: lobby.name }).then((m) => this.marker(lobby, m.ts), () => {});
    for (const room of rooms) {
      try {
        const joined = await this.request({ type: "join", room: room.name });
        room.members = joined.members || [];
        room.topic = joined.topic || "";
        await this.sync(room, joined.history || [], joined.read);
      } catch (e) {
        this.system(room, `Could not rejoin ${room.name}: ${e.message}`);
      }
    }
    for (const conversation of [...this.buffers.values()].filter((b) => b.kind === "private")) {
      this.catchUpConversation(conversation);
    }
    this.renderSidebar();
    this.renderHeader();
    this.fillView(this.active);
  },

  lost(reason) {
    this.conn = null;
    for (const buffer of this.buffers.values()) this.clearTyping(buffer);
    if (this.userClosed) {
      this.banner("Disconnected.", "Reconnect now");
      return;
    }
    this.banner(`Connection lost (${reason}). Reconnecting…`, "Reconnect now");
    this.scheduleReconnect();
  },

  scheduleReconnect() {
    clearTimeout(this.retryTimer);
    const delay = Math.min(15000, 500 * 2 ** this.retry) * (0.75 + Math.random() / 2);
    this.retry++;
    this.retryTimer = setTimeout(() => this.reconnect(), delay);
  },

  async reconnect() {
    clearTimeout(this.retryTimer);
    if (this.conn) return;
    this.userClosed = false;
    let how;
    if (this.remembered) how = { resume: true };
    else if (this.credentials) how = { ...this.credentials };
    else return showLogin("Please sign in again.");
    // Round-robin over this page's server and the cluster's nodes: the next one at
    // once after a failure, and the growing wait only after a whole round.
    const urls = this.urls();
    const url = urls[this.target % urls.length];
    this.target = (this.target + 1) % urls.length;
    const where = urls.length > 1 ? ` to ${new URL(url).host}` : "";
    this.banner(`Reconnecting${where}…`);
    try {
      await this.connect(how, url);
      this.target = 0;
    } catch (e) {
      if (e.code === "bad_token" || e.code === "bad_login") {
        localStorage.removeItem("parley.session");
        this.remembered = null;
        return showLogin(e.code === "bad_token" ? "Your session has ended: please sign in again." : e.message);
      }
      // A guest's nick may still be held by the session the server has not yet seen
      // go: after a few tries, take another.
      if (e.code === "nick_taken" && this.credentials && !this.credentials.password && this.retry > 3) {
        this.credentials.nick = `${this.credentials.nick.slice(0, 30)}_`;
      }
      this.banner(`Could not reconnect${where} (${e.message}). Trying again…`, "Reconnect now");
      if (this.target !== 0) {
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.reconnect(), 0);
      } else {
        this.scheduleReconnect();
      }
    }
  },

  /**
   * Every 30 s of silence, a `ping`: a connection that does not answer within 15 s is
   * dead (a laptop that slept, a network that went away) and is replaced.
   */
  keepAlive() {
    setInterval(() => {
      const conn = this.conn;
      if (!conn || Date.now() - conn.lastHeard < 30000) return;
      const timer = setTimeout(() => {
        if (this.conn === conn) conn.close("no answer to ping");
      }, 15000);
      conn.request({ type: "ping" }).then(() => clearTimeout(timer), () => clearTimeout(timer));
    }, 10000);
  },

  disconnect() {
    this.userClosed = true;
    clearTimeout(this.retryTimer);
    if (this.conn) {
      const conn = this.conn;
      conn.close();
    }
  },

  async logout() {
    this.userClosed = true;
    clearTimeout(this.retryTimer);
    if (this.conn) {
      await this.request({ type: "quit" }).catch(() => {});
      this.conn?.close();
    }
    await fetch("/session", { method: "DELETE", credentials: "same-origin" }).catch(() => {});
    localStorage.removeItem("parley.session");
    location.reload();
  },

  request(header, payload) {
    if (!this.conn) return Promise.reject(new RequestError("disconnected", "not connected"));
    return this.conn.request(header, payload);
  },

  banner(message, action) {
    const banner = $("banner");
    banner.hidden = !message;
    $("banner-text").textContent = message || "";
    $("banner-action").hidden = !action;
    if (action) $("banner-action").textContent = action;
  },

  // ---- buffers ----------------------------------------------------------------------

  buffer(kind, name, create = true) {
    const key = keyOf(kind, name);
    let buffer = this.buffers.get(key);
    if (!buffer && create) {
      buffer = new Buffer(kind, name);
      this.buffers.set(key, buffer);
      $("logs").appendChild(buffer.log);
      this.renderSidebar();
    }
    return buffer;
  },

  ordered() {
    const all = [...this.buffers.values()];
    const rooms = all.filter((b) => b.kind === "room").sort((a, b) => a.name.localeCompare(b.name));
    const privates = all.filter((b) => b.kind === "private").sort((a, b) => a.name.localeCompare(b.name));
    return [...rooms, ...privates];
  },

  show(buffer) {
    if (!buffer) return;
    if (this.active) this.active.log.hidden = true;
    this.active = buffer;
    buffer.log.hidden = false;
    this.cancelReply();
    this.renderSidebar();
    this.renderHeader();
    this.renderMembers();
    this.renderTyping();
    document.body.classList.remove("show-sidebar");
    $("toggle-sidebar").setAttribute("aria-expanded", "false");
    buffer.log.scrollTop = buffer.log.scrollHeight;
    this.fillView(buffer);
    this.markReadSoon();
    this.updateTitle();
  },

  /** Loads older pages while the view is not full, so that it can be scrolled. */
  fillView(buffer) {
    if (!buffer || buffer !== this.active) return;
    requestAnimationFrame(() => {
      if (buffer.log.scrollHeight <= buffer.log.clientHeight + 20 && !buffer.atStart) this.loadOlder(buffer);
    });
  },

  step(by) {
    const list = this.ordered();
    if (!list.length) return;
    const at = Math.max(0, list.indexOf(this.active));
    this.show(list[(at + by + list.length) % list.length]);
  },

  renderSidebar() {
    const render = (list, into) => {
      const items = list.map((b) => {
        const badges = [];
        if (b.mentions && b.kind === "room") {
          badges.push(el("span", { class: "badge mention", "aria-label": `${b.mentions} mentioning you` }, `@${b.mentions}`));
        }
        if (b.unread) {
          const hot = b.kind === "private" ? " hot" : "";
          badges.push(el("span", { class: `badge count${hot}`, "aria-label": `${b.unread} unread` }, String(b.unread)));
        }
        return el(
          "li",
          null,
          el(
            "button",
            {
              type: "button",
              class: `buffer${b.unread ? " unread" : ""}${b.mentions ? " mentioned" : ""}`,
              "data-key": b.key,
              "aria-current": b === this.active ? "page" : false,
              onclick: () => this.show(b),
            },
            el("span", { class: "name" }, b.kind === "room" ? `# ${b.name}` : b.name),
            ...badges,
          ),
        );
      });
      into.replaceChildren(...items);
    };
    const list = this.ordered();
    render(list.filter((b) => b.kind === "room"), $("rooms"));
    render(list.filter((b) => b.kind === "private"), $("privates"));
    this.updateTitle();
  },

  renderHeader() {
    const b = this.active;
    $("buffer-title").textContent = b ? (b.kind === "room" ? `# ${b.name}` : b.name) : "Parley";
    const topic = $("topic");
    topic.replaceChildren(...(b && b.topic ? linkify(b.topic) : []));
    topic.title = b && b.topic ? b.topic : "";
    $("input").placeholder = b ? `Message ${b.kind === "room" ? "#" + b.name : b.name}` : "Message";
  },

  renderMembers() {
    const b = this.active;
    const list = $("member-list");
    if (!b || b.kind !== "room") {
      list.replaceChildren(...(b ? [this.memberItem(this.me), this.memberItem(b.name)] : []));
      $("members-heading").textContent = "In this conversation";
      return;
    }
    const members = [...b.members].sort((x, y) => x.toLowerCase().localeCompare(y.toLowerCase()));
    $("members-heading").textContent = `Members (${members.length})`;
    list.replaceChildren(...members.map((m) => this.memberItem(m)));
  },

  memberItem(nick) {
    return el(
      "li",
      null,
      el(
        "button",
        {
          type: "button",
          class: nickClass(nick),
          title: nick === this.me ? "You" : `Private message to ${nick}`,
          onclick: () => {
            if (nick !== this.me) this.show(this.buffer("private", nick));
          },
        },
        nick,
      ),
    );
  },

  updateTitle() {
    let unread = 0;
    for (const b of this.buffers.values()) unread += b.unread;
    const where = this.active ? ` – ${this.active.kind === "room" ? "#" : ""}${this.active.name}` : "";
    document.title = `${unread ? `(${unread}) ` : ""}Parley${where}`;
  },

  // ---- messages ---------------------------------------------------------------------

  /** An entry from an event or a history page, normalised. */
  entry(buffer, raw) {
    const e = {
      seq: Number(raw.seq) || 0,
      from: String(raw.from ?? ""),
      ts: String(raw.ts ?? ""),
      kind: raw.kind ? String(raw.kind) : null,
      text: String(raw.text ?? ""),
      replyTo: Number(raw.reply_to) || 0,
      reactions: new Map(),
      file: null,
    };
    if (raw.reactions && typeof raw.reactions === "object") {
      for (const [reaction, nicks] of Object.entries(raw.reactions)) {
        if (Array.isArray(nicks) && nicks.length) e.reactions.set(reaction, new Set(nicks.map(String)));
      }
    }
    if (e.kind === "file") e.file = parseFile(e.text);
    e.id = buffer.kind === "room" ? `s${e.seq}` : e.seq ? `p${e.seq}` : `t${e.from}|${e.ts}`;
    e.key = buffer.kind === "room" ? [e.seq, 0] : [Date.parse(e.ts) || 0, e.seq || Number.MAX_SAFE_INTEGER];
    return e;
  },

  /** Adds messages to a buffer in seq order, skipping those it holds. */
  insert(buffer, raws, { live = false } = {}) {
    const visible = this.visible(buffer);
    const log = buffer.log;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
    const oldHeight = log.scrollHeight;
    const oldTop = log.scrollTop;
    let prepended = false;
    let added = 0;
    for (const raw of raws) {
      const e = this.entry(buffer, raw);
      if (buffer.kind === "room" && !e.seq) continue;
      if (buffer.entries.has(e.id)) continue;
      if (buffer.kind === "private" && e.seq) {
        const pending = buffer.entries.get(`t${e.from}|${e.ts}`);
        if (pending) {
          buffer.entries.delete(pending.id);
          pending.seq = e.seq;
          pending.id = e.id;
          pending.li.dataset.seq = String(e.seq);
          buffer.entries.set(e.id, pending);
          buffer.lastSeq = Math.max(buffer.lastSeq, e.seq);
          continue;
        }
      }
      e.li = this.render(buffer, e);
      buffer.entries.set(e.id, e);
      if (buffer.keys.length && compare(e.key, buffer.keys[0]) < 0) prepended = true;
      this.place(buffer, e.key, e.li);
      added++;
      if (e.seq) {
        buffer.lastSeq = Math.max(buffer.lastSeq, e.seq);
        buffer.firstSeq = buffer.firstSeq ? Math.min(buffer.firstSeq, e.seq) : e.seq;
      }
      if (e.from !== this.me && e.ts && (!buffer.readTs || e.ts > buffer.readTs) && !(visible && atBottom)) {
        buffer.unread++;
        if (buffer.kind === "private" || this.mentions(e)) buffer.mentions++;
      }
      if (live && e.from !== this.me) this.alert(buffer, e);
      if (e.replyTo) {
        this.renderQuote(buffer, e);
        // Shown as "message #N" until the original arrives (scrolling back).
        if (!buffer.entries.has(this.idOf(buffer, e.replyTo))) {
          if (!buffer.awaited.has(e.replyTo)) buffer.awaited.set(e.replyTo, []);
          buffer.awaited.get(e.replyTo).push(e);
        }
      }
      if (e.seq && buffer.awaited.has(e.seq)) {
        for (const reply of buffer.awaited.get(e.seq)) this.renderQuote(buffer, reply);
        buffer.awaited.delete(e.seq);
      }
    }
    if (buffer.firstSeq === 1) this.reachedStart(buffer);
    if (!added) return;
    if (atBottom && !prepended) log.scrollTop = log.scrollHeight;
    else if (prepended) log.scrollTop = oldTop + (log.scrollHeight - oldHeight);
    if (buffer === this.active) this.markReadSoon();
    this.renderSidebar();
  },

  /** The id of the message numbered `seq` in a buffer. */
  idOf(buffer, seq) {
    return buffer.kind === "room" ? `s${seq}` : `p${seq}`;
  },

  /** Puts a node at its place by sort key, with day separators kept right. */
  place(buffer, key, li) {
    const keys = buffer.keys;
    let lo = 0;
    let hi = keys.length;
    if (hi && compare(keys[hi - 1], key) <= 0) lo = hi;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compare(keys[mid], key) <= 0) lo = mid + 1;
      else hi = mid;
    }
    keys.splice(lo, 0, key);
    buffer.log.insertBefore(li, buffer.log.children[lo] || null);
    this.fixDay(li);
    if (li.nextElementSibling) this.fixDay(li.nextElementSibling);
  },

  fixDay(li) {
    const prev = li.previousElementSibling;
    const wanted = !prev || prev.dataset.day !== li.dataset.day;
    const sep = li.firstElementChild && li.firstElementChild.classList.contains("day") ? li.firstElementChild : null;
    if (wanted && !sep && li.dataset.ts) {
      li.insertBefore(el("div", { class: "day", role: "separator" }, el("span", null, dayLabel(li.dataset.ts))), li.firstChild);
    } else if (!wanted && sep) {
      sep.remove();
    }
  },

  render(buffer, e) {
    const own = e.from === this.me;
    const mentioned = !own && this.mentions(e);
    const li = el("li", {
      class: `msg${e.kind ? ` k-${e.kind}` : ""}${own ? " own" : ""}${mentioned ? " mentioned" : ""}`,
      "data-seq": e.seq ? String(e.seq) : false,
      "data-ts": e.ts,
      "data-day": dayKey(e.ts),
      "data-from": e.from,
    });
    const nick = el("button", { type: "button", class: nickClass(e.from), onclick: () => this.openPrivate(e.from) }, e.from);
    const body = el("span", { class: "body" });
    if (e.file) body.append(this.fileView(buffer, e));
    else body.append(...linkify(e.text, mentioned ? this.mention : null));
    const line =
      e.kind === "action"
        ? el("div", { class: "line" }, el("span", { class: "star", "aria-hidden": "true" }, "*"), nick, " ", body)
        : e.kind === "notice"
          ? el("div", { class: "line" }, "-", nick, "- ", body)
          : el("div", { class: "line" }, nick, body);
    const time = el("time", { datetime: e.ts }, timeOf(e.ts));
    li.append(time, el("div", { class: "content" }, line));
    if (e.reactions.size) this.renderReactions(buffer, e, li);
    // One tab stop for the whole log: messages are reached with the arrow keys, and
    // act with keys of their own (see `logKey`). Their buttons are made when first
    // pointed at or focused (`ensureActions`): ten thousand messages, half the nodes.
    li.tabIndex = -1;
    nick.tabIndex = -1;
    return li;
  },

  /** The buttons of a message (reply, react, delete) and its full time, made on first need. */
  ensureActions(buffer, li) {
    if (!li || li.dataset.actions || li.classList.contains("deleted")) return;
    const e = buffer.entries.get(this.idOf(buffer, li.dataset.seq));
    if (!e) return;
    li.dataset.actions = "1";
    li.querySelector("time").title = fullTime(e.ts);
    const button = (label, name, onclick) =>
      el("button", { type: "button", class: "icon", "aria-label": label, title: label, tabindex: "-1", onclick }, icon(name));
    const actions = el(
      "div",
      { class: "actions" },
      button("Reply", "reply", () => this.startReply(buffer, e)),
      button("React", "react", (ev) => this.pickReaction(buffer, e, ev.currentTarget)),
    );
    if (buffer.kind === "room") actions.append(button("Delete", "delete", () => this.deleteMessage(buffer, e)));
    li.append(actions);
  },

  /** The keyboard in a log: arrows between messages, R reply, E react, Enter follows a quote. */
  logKey(buffer, ev) {
    const at = ev.target.closest ? ev.target.closest(".msg") : null;
    const messages = () => [...buffer.log.querySelectorAll(".msg")];
    const focus = (li) => {
      if (!li) return;
      li.focus();
      li.scrollIntoView({ block: "nearest" });
    };
    if (ev.key === "ArrowUp" || ev.key === "ArrowDown") {
      if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
      ev.preventDefault();
      const all = messages();
      if (!at) return focus(all[all.length - 1]);
      const i = all.indexOf(at) + (ev.key === "ArrowUp" ? -1 : 1);
      if (i < 0) this.loadOlder(buffer);
      return focus(all[Math.max(0, Math.min(i, all.length - 1))]);
    }
    if (!at || ev.target !== at) return;
    const e = buffer.entries.get(this.idOf(buffer, at.dataset.seq));
    if (!e) return;
    if (ev.key === "r" || ev.key === "R") {
      ev.preventDefault();
      this.startReply(buffer, e);
    } else if (ev.key === "e" || ev.key === "E" || ev.key === "+") {
      ev.preventDefault();
      this.pickReaction(buffer, e, at);
    } else if (ev.key === "Enter" && e.replyTo) {
      ev.preventDefault();
      this.jump(buffer, e.replyTo);
    } else if (ev.key === "Escape") {
      $("input").focus();
    }
  },

  mentions(e) {
    if (!this.mention || e.file) return false;
    this.mention.lastIndex = 0;
    return this.mention.test(e.text);
  },

  renderQuote(buffer, e) {
    const content = e.li.querySelector(".content");
    content.querySelector(".quote")?.remove();
    const original = buffer.entries.get(this.idOf(buffer, e.replyTo));
    const summary = original
      ? [el("span", { class: nickClass(original.from) }, original.from), " ", original.file ? original.file.name : original.text.slice(0, 140)]
      : [`message #${e.replyTo}`];
    content.insertBefore(
      el(
        "button",
        { type: "button", class: "quote", title: "Go to the message answered (Enter)", tabindex: "-1", onclick: () => this.jump(buffer, e.replyTo) },
        "↪ ",
        ...summary,
      ),
      content.firstChild,
    );
  },

  renderReactions(buffer, e, li = e.li) {
    const chips = [...e.reactions.entries()]
      .filter(([, nicks]) => nicks.size)
      .map(([reaction, nicks]) => {
        const mine = [...nicks].some((n) => n.toLowerCase() === this.me.toLowerCase());
        return el(
          "button",
          {
            type: "button",
            class: "chip",
            "aria-pressed": mine ? "true" : "false",
            title: [...nicks].join(", "),
            "aria-label": `${reaction} ${nicks.size}: ${[...nicks].join(", ")}`,
            onclick: () => this.react(buffer, e, reaction, mine),
            tabindex: "-1",
          },
          `${reaction} ${nicks.size}`,
        );
      });
    let holder = li.querySelector(".reactions");
    if (!holder) {
      holder = el("div", { class: "reactions" });
      li.querySelector(".content").append(holder);
    }
    holder.replaceChildren(...chips);
  },

  system(buffer, message, ts = new Date().toISOString()) {
    if (!buffer) return;
    const li = el("li", { class: "sys", "data-ts": ts, "data-day": dayKey(ts) }, el("time", { datetime: ts }, timeOf(ts)), el("span", { class: "body" }, message));
    const key = buffer.kind === "room" ? [buffer.lastSeq + 0.5, ++buffer.sub] : [Date.parse(ts) || Date.now(), Number.MAX_SAFE_INTEGER, ++buffer.sub];
    const log = buffer.log;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
    if (buffer.kind === "private") key.length = 2;
    this.place(buffer, key, li);
    if (atBottom) log.scrollTop = log.scrollHeight;
  },

  visible(buffer) {
    return buffer === this.active && document.visibilityState === "visible";
  },

  // ---- history ----------------------------------------------------------------------

  /**
   * Brings a buffer up to date after a (re)join: the first time from the join's own
   * page; afterwards by `history` after the last seq held, page after page until one
   * comes back empty. Messages arriving meanwhile go to their place by seq.
   */
  async sync(buffer, history, read) {
    try {
      if (read) buffer.readTs = maxTs(buffer.readTs, read);
      if (!buffer.lastSeq) {
        if (!buffer.readTs && history.length) buffer.readTs = history[history.length - 1].ts;
        this.insert(buffer, history);
        if (history.length < 50) this.reachedStart(buffer);
        return;
      }
      const newest = history.length ? Number(history[history.length - 1].seq) : 0;
      if (newest < buffer.lastSeq) {
        this.restart(buffer);
        this.insert(buffer, history);
        this.system(buffer, `${buffer.name} started a new life: what was said before is not kept.`);
        return;
      }
      let cursor = buffer.lastSeq;
      for (;;) {
        const page = await this.request({ type: "history", room: buffer.name, after: cursor, limit: PAGE });
        const messages = page.messages || [];
        if (!messages.length) break;
        this.insert(buffer, messages);
        const last = Number(messages[messages.length - 1].seq);
        if (!(last > cursor)) break;
        cursor = last;
      }
    } finally {
      this.recount(buffer);
    }
  },

  async catchUpConversation(buffer) {
    try {
      let cursor = buffer.lastSeq;
      for (;;) {
        const request = { type: "conversation", with: buffer.name, limit: PAGE };
        if (cursor) request.after = cursor;
        const page = await this.request(request);
        const messages = page.messages || [];
        if (!messages.length) break;
        this.insert(buffer, messages);
        const last = Number(messages[messages.length - 1].seq);
        if (!cursor) break;
        if (!(last > cursor)) break;
        cursor = last;
      }
    } catch {
      // A guest's conversations were its connection's: nothing more to fetch.
    }
  },

  restart(buffer) {
    buffer.entries.clear();
    buffer.awaited.clear();
    buffer.keys = [];
    buffer.log.replaceChildren();
    buffer.firstSeq = 0;
    buffer.lastSeq = 0;
    buffer.atStart = false;
    buffer.unread = 0;
    buffer.mentions = 0;
  },

  /** Scrolling back: the page before the oldest message held. */
  loadOlder(buffer) {
    if (buffer.loadingOlder) return buffer.loadingOlder;
    if (buffer.atStart || !this.conn) return Promise.resolve();
    const request =
      buffer.kind === "room"
        ? { type: "history", room: buffer.name, limit: 100 }
        : { type: "conversation", with: buffer.name, limit: 100 };
    // The oldest message held, by seq (without one: the latest page).
    let first = buffer.firstSeq;
    if (buffer.kind === "private") {
      first = 0;
      for (const e of buffer.entries.values()) if (e.seq && (!first || e.seq < first)) first = e.seq;
    }
    if (first) request.before = first;
    // Shown by the stylesheet: a node in the log would shift the order kept in `keys`.
    buffer.log.classList.add("loading-older");
    buffer.loadingOlder = this.request(request)
      .then((page) => {
        buffer.log.classList.remove("loading-older");
        const messages = page.messages || [];
        if (!messages.length) {
          this.reachedStart(buffer);
          return;
        }
        this.insert(buffer, messages);
      })
      .catch((e) => {
        buffer.log.classList.remove("loading-older");
        if (e.code !== "disconnected") this.system(buffer, `History: ${e.message}`);
        if (e.code === "history_unavailable" || e.code === "not_in_room") buffer.atStart = true;
      })
      .finally(() => {
        buffer.loadingOlder = null;
        this.fillView(buffer);
      });
    return buffer.loadingOlder;
  },

  /** Nothing older to load: says so at the top of the buffer, once. */
  reachedStart(buffer) {
    buffer.atStart = true;
    if (buffer.log.querySelector(".start")) return;
    const what = buffer.kind === "room" ? `The beginning of #${buffer.name}` : `The beginning of your conversation with ${buffer.name}`;
    buffer.log.insertBefore(el("li", { class: "start" }, what), buffer.log.firstChild);
    buffer.keys.unshift([-Infinity]);
    if (buffer.log.children[1]) this.fixDay(buffer.log.children[1]);
  },

  scrolled(buffer) {
    if (buffer !== this.active) return;
    if (buffer.log.scrollTop < 400) this.loadOlder(buffer);
    if (buffer.log.scrollHeight - buffer.log.scrollTop - buffer.log.clientHeight < 60) this.markReadSoon();
  },

  /** Shows one message, loading older pages until it is held. */
  async jump(buffer, seq) {
    if (this.active !== buffer) this.show(buffer);
    while (buffer.kind === "room" && (!buffer.firstSeq || seq < buffer.firstSeq) && !buffer.atStart) {
      const before = buffer.firstSeq;
      await this.loadOlder(buffer);
      if (buffer.firstSeq === before) break;
    }
    const id = buffer.kind === "room" ? `s${seq}` : `p${seq}`;
    const e = buffer.entries.get(id);
    if (!e) {
      this.system(buffer, `Message #${seq} is no longer in the history.`);
      return;
    }
    e.li.scrollIntoView({ block: "center" });
    e.li.classList.remove("flash");
    void e.li.offsetWidth;
    e.li.classList.add("flash");
    e.li.tabIndex = -1;
    e.li.focus({ preventScroll: true });
  },

  // ---- read markers -----------------------------------------------------------------

  markReadSoon() {
    clearTimeout(this.markTimer);
    this.markTimer = setTimeout(() => this.markRead(), 300);
  },

  async markRead() {
    const buffer = this.active;
    if (!buffer || !this.visible(buffer) || !this.conn) return;
    const log = buffer.log;
    if (log.scrollHeight - log.scrollTop - log.clientHeight > 60) return;
    const newest = buffer.newestTs();
    if (buffer.unread || buffer.mentions) {
      buffer.unread = 0;
      buffer.mentions = 0;
      this.renderSidebar();
    }
    if (!newest || (buffer.readTs && newest <= buffer.readTs)) return;
    buffer.readTs = newest;
    try {
      const answer = await this.request({ type: "mark_read", ...buffer.target, ts: newest });
      this.marker(buffer, answer.ts);
    } catch {
      // Read markers are a convenience: a server without them still chats.
    }
  },

  marker(buffer, ts) {
    if (!buffer || !ts) return;
    buffer.readTs = maxTs(buffer.readTs, ts);
    this.recount(buffer);
  },

  recount(buffer) {
    if (this.visible(buffer)) return;
    let unread = 0;
    let mentions = 0;
    if (buffer.readTs) {
      for (const e of buffer.entries.values()) {
        if (e.from !== this.me && e.ts > buffer.readTs) {
          unread++;
          if (buffer.kind === "private" || this.mentions(e)) mentions++;
        }
      }
      buffer.unread = unread;
      buffer.mentions = mentions;
    }
    this.renderSidebar();
  },

  // ---- events -----------------------------------------------------------------------

  event(h, payload) {
    switch (h.type) {
      case "message": {
        const buffer = this.buffer("room", h.room);
        const raw = { ...h, text: text(payload) };
        this.clearTyping(buffer, h.from);
        this.insert(buffer, [raw], { live: true });
        break;
      }
      case "whisper": {
        const other = h.from.toLowerCase() === this.me.toLowerCase() ? h.to : h.from;
        const buffer = this.buffer("private", other);
        this.clearTyping(buffer, h.from);
        this.insert(buffer, [{ ...h, text: text(payload) }], { live: true });
        break;
      }
      case "joined": {
        const buffer = this.buffer("room", h.room, false);
        if (!buffer) break;
        if (!buffer.members.some((m) => m.toLowerCase() === h.nick.toLowerCase())) buffer.members.push(h.nick);
        this.system(buffer, h.arrival ? `${h.nick} connected` : `${h.nick} joined`, h.ts);
        if (buffer === this.active) this.renderMembers();
        break;
      }
      case "left": {
        const buffer = this.buffer("room", h.room, false);
        if (!buffer) break;
        if (h.nick.toLowerCase() === this.me.toLowerCase()) {
          buffer.joined = false;
          buffer.members = [];
          this.system(buffer, `You are no longer in ${buffer.name}${h.detail ? ` (${h.detail})` : ""}.`, h.ts);
          if (buffer === this.active) this.renderMembers();
          break;
        }
        buffer.members = buffer.members.filter((m) => m.toLowerCase() !== h.nick.toLowerCase());
        const why = { part: "left", quit: "quit", lost: "lost the connection", kicked: "was put out" }[h.reason] || "left";
        this.system(buffer, `${h.nick} ${why}${h.detail ? ` (${h.detail})` : ""}`, h.ts);
        this.clearTyping(buffer, h.nick);
        if (buffer === this.active) this.renderMembers();
        break;
      }
      case "nick": {
        const renamed = (m) => (m.toLowerCase() === h.old.toLowerCase() ? h.new : m);
        if (h.old.toLowerCase() === this.me.toLowerCase()) this.renamedTo(h.new);
        for (const buffer of this.buffers.values()) {
          if (buffer.kind === "room" && buffer.members.some((m) => m.toLowerCase() === h.old.toLowerCase())) {
            buffer.members = buffer.members.map(renamed);
            this.system(buffer, `${h.old} is now ${h.new}`, h.ts);
          }
        }
        this.renderMembers();
        break;
      }
      case "marker":
        this.marker(h.room ? this.buffer("room", h.room, false) : this.buffer("private", h.with, false), h.ts);
        break;
      case "deleted": {
        const buffer = this.buffer("room", h.room, false);
        const e = buffer?.entries.get(`s${h.seq}`);
        if (!e) break;
        e.deleted = true;
        e.li.classList.add("deleted");
        e.li.querySelector(".body").replaceChildren(
          el("em", null, `message deleted${h.by && h.by !== h.author ? ` by ${h.by}` : ""}${h.reason ? `: ${h.reason}` : ""}`),
        );
        e.li.querySelector(".reactions")?.remove();
        e.li.querySelector(".actions")?.remove();
        break;
      }
      case "typing": {
        const buffer = h.room ? this.buffer("room", h.room, false) : this.buffer("private", h.from, false);
        if (buffer && h.from !== this.me) this.typing(buffer, h.from, h.state);
        break;
      }
      case "reaction": {
        const buffer = h.room ? this.buffer("room", h.room, false) : this.buffer("private", h.with, false);
        const e = buffer?.entries.get(buffer.kind === "room" ? `s${h.seq}` : `p${h.seq}`);
        if (!e) break;
        const nicks = e.reactions.get(h.reaction) || new Set();
        if (h.removed) {
          for (const n of [...nicks]) if (n.toLowerCase() === String(h.from).toLowerCase()) nicks.delete(n);
        } else {
          nicks.add(h.from);
        }
        e.reactions.set(h.reaction, nicks);
        this.renderReactions(buffer, e);
        break;
      }
      case "notice": {
        const message = text(payload);
        this.system(this.active, message, h.ts);
        this.announce(message);
        if (this.active?.kind === "room") this.refreshTopic(this.active);
        break;
      }
      case "ping":
        this.request({ type: "ping" }).catch(() => {});
        break;
      case "shutdown":
        this.banner(`${h.message || "The server is stopping."} Reconnecting when it is back…`);
        break;
      case "error":
        if (h.message) this.banner(`${h.message}`);
        break;
      default:
        break;
    }
  },

  renamedTo(nick) {
    this.me = nick;
    this.mention = mentionPattern(nick);
    if (this.credentials && !this.credentials.password) this.credentials.nick = nick;
    $("me-nick").textContent = nick;
    $("me-nick").className = nickClass(nick);
  },

  async refreshTopic(buffer) {
    try {
      const t = await this.request({ type: "topic", room: buffer.name });
      buffer.topic = t.topic || "";
      if (buffer === this.active) this.renderHeader();
    } catch {
      // The topic stays as it was shown.
    }
  },

  // ---- typing -----------------------------------------------------------------------

  typing(buffer, nick, state) {
    const old = buffer.typing.get(nick);
    if (old) clearTimeout(old);
    if (state === "active") buffer.typing.set(nick, setTimeout(() => this.clearTyping(buffer, nick), TYPING_EXPIRES));
    else buffer.typing.delete(nick);
    if (buffer === this.active) this.renderTyping();
  },

  clearTyping(buffer, nick) {
    if (!buffer) return;
    for (const [n, timer] of [...buffer.typing]) {
      if (nick === undefined || n.toLowerCase() === nick.toLowerCase()) {
        clearTimeout(timer);
        buffer.typing.delete(n);
      }
    }
    if (buffer === this.active) this.renderTyping();
  },

  renderTyping() {
    const nicks = this.active ? [...this.active.typing.keys()] : [];
    const line = $("typing");
    if (!nicks.length) return line.replaceChildren();
    const who = nicks.length > 3 ? `${nicks.length} people are` : `${nicks.join(", ")} ${nicks.length > 1 ? "are" : "is"}`;
    line.replaceChildren(el("span", { class: "dots", "aria-hidden": "true" }, "•••"), ` ${who} typing…`);
  },

  sendTyping(state) {
    const buffer = this.active;
    if (!this.features.typing || !buffer || !this.conn) return;
    const now = Date.now();
    if (state === "active" && now - this.typingSent < TYPING_EVERY) return;
    if (state !== "active" && !this.typingSent) return;
    this.typingSent = state === "active" ? now : 0;
    this.request({ type: "typing", ...buffer.sendTarget, state }).catch((e) => {
      if (e.code === "unknown_type" || e.code === "bad_request") this.features.typing = false;
    });
  },

  // ---- sending ----------------------------------------------------------------------

  async submit(line) {
    const buffer = this.active;
    if (!line.trim()) return;
    this.askNotifications();
    if (line.startsWith("/") && !line.startsWith("//")) return runCommand(this, line);
    this.say(buffer, line.startsWith("//") ? line.slice(1) : line);
  },

  async say(buffer, words, kind) {
    if (!buffer) return;
    const bytes = new TextEncoder().encode(words).length;
    if (bytes > this.maxText) {
      this.system(buffer, `That message is ${bytes} bytes; the server takes at most ${this.maxText}.`);
      return;
    }
    const reply = this.replyTo && this.replyTo.buffer === buffer ? this.replyTo.seq : 0;
    this.cancelReply();
    this.sendTyping("done");
    const header =
      buffer.kind === "room"
        ? { type: kind === "action" ? "act" : "say", room: buffer.name }
        : { type: "whisper", to: buffer.name };
    if (reply) header.reply_to = reply;
    try {
      const answer = await this.request(header, words);
      const raw = { seq: answer.seq, from: this.me, ts: answer.ts, text: words, kind: kind || null, reply_to: reply || undefined };
      this.insert(buffer, [raw]);
    } catch (e) {
      this.system(buffer, `Not sent: ${e.message}`);
    }
  },

  startReply(buffer, e) {
    if (!e.seq) return;
    this.replyTo = { buffer, seq: e.seq };
    $("replying").hidden = false;
    $("replying-text").replaceChildren("Replying to ", el("span", { class: nickClass(e.from) }, e.from), `: ${e.file ? e.file.name : e.text.slice(0, 80)}`);
    $("input").focus();
  },

  cancelReply() {
    this.replyTo = null;
    $("replying").hidden = true;
  },

  async react(buffer, e, reaction, remove) {
    if (!e.seq) return;
    try {
      await this.request({ type: "react", ...buffer.target, seq: e.seq, reaction, remove: remove || undefined });
      const nicks = e.reactions.get(reaction) || new Set();
      if (remove) {
        for (const n of [...nicks]) if (n.toLowerCase() === this.me.toLowerCase()) nicks.delete(n);
      } else {
        nicks.add(this.me);
      }
      e.reactions.set(reaction, nicks);
      this.renderReactions(buffer, e);
    } catch (err) {
      this.system(buffer, err.code === "unknown_type" ? "This server does not take reactions yet." : `Reaction: ${err.message}`);
    }
  },

  pickReaction(buffer, e, anchor) {
    document.querySelector(".picker")?.remove();
    const message = anchor.closest(".msg") || anchor;
    // Closed once: removing a focused button fires `focusout`, which closes it too.
    let open = true;
    const close = (refocus) => {
      if (!open) return;
      open = false;
      picker.remove();
      if (refocus) message.focus();
    };
    const picker = el(
      "div",
      { class: "picker", role: "menu", "aria-label": "Reactions" },
      ...REACTIONS.map((r) =>
        el("button", { type: "button", role: "menuitem", onclick: () => { this.react(buffer, e, r, false); close(true); } }, r),
      ),
    );
    message.appendChild(picker);
    picker.querySelector("button").focus();
    picker.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") {
        close(true);
      } else if (ev.key === "ArrowRight" || ev.key === "ArrowLeft") {
        const buttons = [...picker.querySelectorAll("button")];
        const i = buttons.indexOf(document.activeElement) + (ev.key === "ArrowRight" ? 1 : -1);
        buttons[(i + buttons.length) % buttons.length].focus();
      }
      ev.stopPropagation();
    });
    picker.addEventListener("focusout", (ev) => {
      if (!picker.contains(ev.relatedTarget)) close(false);
    });
  },

  async deleteMessage(buffer, e) {
    try {
      await this.request({ type: "delete", room: buffer.name, seq: e.seq });
      this.event({ type: "deleted", room: buffer.name, seq: e.seq, by: this.me, author: e.from });
    } catch (err) {
      this.system(buffer, `Not deleted: ${err.message}`);
    }
  },

  openPrivate(nick) {
    if (nick && nick.toLowerCase() !== this.me.toLowerCase()) this.show(this.buffer("private", nick));
  },

  async join(name) {
    try {
      const joined = await this.request({ type: "join", room: name.replace(/^#/, "") });
      const buffer = this.buffer("room", joined.room);
      buffer.joined = true;
      buffer.members = joined.members || [];
      buffer.topic = joined.topic || "";
      this.show(buffer);
      await this.sync(buffer, joined.history || [], joined.read);
      this.renderHeader();
      this.renderMembers();
      this.fillView(buffer);
    } catch (e) {
      this.system(this.active, `Could not join ${name}: ${e.message}`);
    }
  },

  async part(buffer) {
    if (!buffer) return;
    if (buffer.kind === "room") {
      try {
        await this.request({ type: "part", room: buffer.name });
      } catch (e) {
        return this.system(buffer, `Could not leave: ${e.message}`);
      }
    }
    this.buffers.delete(buffer.key);
    buffer.log.remove();
    if (this.active === buffer) this.active = null;
    this.show(this.ordered()[0]);
    this.renderSidebar();
  },

  // ---- alerts -----------------------------------------------------------------------

  askNotifications() {
    if (this.notifyAsked || !("Notification" in window)) return;
    this.notifyAsked = true;
    if (Notification.permission === "default") Notification.requestPermission().catch(() => {});
  },

  alert(buffer, e) {
    const important = buffer.kind === "private" || this.mentions(e);
    if (buffer === this.active && document.visibilityState === "visible") {
      this.announce(`${e.from}: ${e.file ? `shared ${e.file.name}` : e.text}`);
    }
    if (!important || document.visibilityState === "visible") return;
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const title = buffer.kind === "room" ? `${e.from} in #${buffer.name}` : `${e.from} (private)`;
    try {
      const note = new Notification(title, { body: e.file ? e.file.name : e.text.slice(0, 200), tag: buffer.key });
      note.onclick = () => {
        window.focus();
        this.show(buffer);
        note.close();
      };
    } catch {
      // Some browsers only notify from a service worker.
    }
  },

  announce(message) {
    const region = $("announce");
    region.append(el("p", null, message));
    while (region.childElementCount > 5) region.firstElementChild.remove();
  },

  // ---- files ------------------------------------------------------------------------

  fileView(buffer, e) {
    const f = e.file;
    const box = el(
      "span",
      { class: "file" },
      el("span", { class: "file-name" }, f.name),
      el("span", { class: "file-meta" }, ` ${humanSize(f.size)} · ${f.media_type}`),
    );
    const get = el("button", { type: "button", class: "small", onclick: () => this.save(buffer, f, get) }, "Download");
    box.append(" ", get);
    if (PREVIEWABLE.has(f.media_type)) {
      // Fetched when it scrolls into view: the box is what is watched, the image
      // being hidden (and so never "visible") until its bytes are checked.
      const img = el("img", { class: "preview", alt: `Preview of ${f.name}`, hidden: true });
      const holder = el("span", { class: "preview-box loading-preview" }, img);
      holder.dataset.file = f.file;
      holder.dataset.type = f.media_type;
      holder.dataset.size = String(f.size);
      box.append(holder);
      previews.observe(holder);
    }
    return box;
  },

  async save(buffer, f, button) {
    const label = button.textContent;
    button.disabled = true;
    try {
      const { bytes } = await download(this.conn, f.file, (got, size) => {
        button.textContent = `${Math.floor((100 * got) / Math.max(1, size))}%`;
      });
      const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
      const a = el("a", { href: url, download: f.name, hidden: true });
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      button.textContent = "✓ Verified";
    } catch (err) {
      button.textContent = label;
      this.system(buffer, `Download of ${f.name} failed: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  },

  async preview(holder) {
    const img = holder.querySelector("img");
    if (!this.conn || !img) return;
    try {
      let blob;
      if (this.features.thumbnails) {
        try {
          // The server's thumbnail: a small PNG, made with decoder limits.
          const { payload } = await this.request({ type: "thumbnail", file: holder.dataset.file });
          blob = new Blob([payload], { type: "image/png" });
        } catch (err) {
          if (err.code !== "unknown_type" && err.code !== "bad_request") throw err;
          this.features.thumbnails = false;
        }
      }
      if (!blob) {
        // A server without thumbnails: the image itself, checked, when it is small.
        if (Number(holder.dataset.size) > PREVIEW_MAX) throw new RequestError("too_large", "too large to preview");
        const { bytes } = await download(this.conn, holder.dataset.file);
        const type = PREVIEWABLE.has(holder.dataset.type) ? holder.dataset.type : "application/octet-stream";
        blob = new Blob([bytes], { type });
      }
      img.src = URL.createObjectURL(blob);
      img.hidden = false;
      img.addEventListener("click", () => img.classList.toggle("large"));
    } catch (err) {
      holder.replaceChildren(el("span", { class: "file-meta" }, `(no preview: ${err.message})`));
    } finally {
      holder.classList.remove("loading-preview");
    }
  },

  async share(files) {
    const buffer = this.active;
    if (!buffer) return;
    for (const file of files) {
      const bar = el("progress", { max: "100", value: "0", "aria-label": `Uploading ${file.name}` });
      const item = el("li", null, el("span", { class: "file-name" }, file.name || "pasted"), bar);
      $("uploads").appendChild(item);
      try {
        const shared = await upload(this.conn, buffer.sendTarget, file, (sent, size) => {
          bar.max = Math.max(1, size);
          bar.value = sent;
        });
        const raw = { seq: shared.seq, from: this.me, ts: shared.ts, kind: "file", text: JSON.stringify(shared.description) };
        this.insert(buffer, [raw]);
      } catch (e) {
        this.system(buffer, `Upload of ${file.name} failed: ${e.message}`);
      } finally {
        item.remove();
      }
    }
  },

  // ---- search -----------------------------------------------------------------------

  async search(query, page = 1) {
    if (!query.trim()) return;
    const panel = $("results");
    panel.hidden = false;
    $("results-title").textContent = `Results for “${query}”`;
    if (page === 1) $("results-list").replaceChildren(el("li", { class: "loading" }, "Searching…"));
    try {
      const found = await this.request({ type: "search", query, page });
      if (page === 1) $("results-list").replaceChildren();
      const hits = found.results || [];
      if (page === 1 && !hits.length) $("results-list").append(el("li", { class: "empty" }, "Nothing found."));
      for (const hit of hits) {
        const where = hit.room ? `#${hit.room}` : `${hit.from === this.me ? hit.to : hit.from} (private)`;
        $("results-list").append(
          el(
            "li",
            null,
            el(
              "button",
              { type: "button", class: "hit", onclick: () => this.openHit(hit) },
              el("span", { class: "where" }, where),
              el("time", { datetime: hit.ts }, `${dayLabel(hit.ts)} ${timeOf(hit.ts)}`),
              el("span", { class: nickClass(hit.from) }, hit.from),
              el("span", { class: "body" }, hit.text),
            ),
          ),
        );
      }
      this.searchState = { query, page };
      $("results-more").hidden = hits.length < 20;
    } catch (e) {
      $("results-list").replaceChildren(el("li", { class: "error" }, e.message));
      $("results-more").hidden = true;
    }
  },

  openHit(hit) {
    $("results").hidden = true;
    if (hit.room) {
      const buffer = this.buffer("room", hit.room, false);
      if (buffer) this.jump(buffer, Number(hit.seq));
    } else {
      const other = hit.from.toLowerCase() === this.me.toLowerCase() ? hit.to : hit.from;
      this.show(this.buffer("private", other));
    }
  },
};

function icon(name) {
  return el("span", { class: `i i-${name}`, "aria-hidden": "true" });
}

function maxTs(a, b) {
  if (!a) return b || null;
  if (!b) return a;
  return a > b ? a : b;
}

/** A file message's description, or null when it is not one. */
function parseFile(json) {
  try {
    const f = JSON.parse(json);
    if (!f || typeof f.file !== "string" || typeof f.name !== "string") return null;
    return {
      file: f.file,
      name: f.name,
      size: Number(f.size) || 0,
      media_type: typeof f.media_type === "string" ? f.media_type : "application/octet-stream",
      sha256: typeof f.sha256 === "string" ? f.sha256 : "",
    };
  } catch {
    return null;
  }
}

const previews = new IntersectionObserver((seen) => {
  for (const entry of seen) {
    if (!entry.isIntersecting) continue;
    previews.unobserve(entry.target);
    app.preview(entry.target);
  }
});

// ---- the page -----------------------------------------------------------------------

function showLogin(message) {
  $("connecting").hidden = true;
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  const nick = $("login-nick");
  if (!nick.value) nick.value = app.me || localStorage.getItem("parley.nick") || "";
  (nick.value ? $("login-password") : nick).focus();
}

function showApp() {
  $("connecting").hidden = true;
  $("login").hidden = true;
  $("app").hidden = false;
}

async function signIn(register) {
  const nick = $("login-nick").value.trim();
  const password = $("login-password").value;
  const remember = $("login-remember").checked;
  if (!nick) return showLogin("Choose a nick.");
  if (register && password.length < 8) return showLogin("A password has at least 8 characters.");
  $("login-submit").disabled = true;
  $("login-register").disabled = true;
  $("login-error").textContent = "";
  try {
    localStorage.setItem("parley.nick", nick);
    await app.connect({ nick, password, register, remember });
    $("login-password").value = "";
    $("input").focus();
  } catch (e) {
    showLogin(e.message);
  } finally {
    $("login-submit").disabled = false;
    $("login-register").disabled = false;
  }
}

function wire() {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn(false);
  });
  $("login-register").addEventListener("click", () => signIn(true));
  $("banner-action").addEventListener("click", () => {
    app.retry = 0;
    app.reconnect();
  });
  $("logout").addEventListener("click", () => app.logout());
  $("toggle-theme").addEventListener("click", () => {
    const dark = document.documentElement.dataset.theme
      ? document.documentElement.dataset.theme === "dark"
      : matchMedia("(prefers-color-scheme: dark)").matches;
    document.documentElement.dataset.theme = dark ? "light" : "dark";
    localStorage.setItem("parley.theme", document.documentElement.dataset.theme);
  });
  $("toggle-sidebar").addEventListener("click", () => {
    const open = document.body.classList.toggle("show-sidebar");
    $("toggle-sidebar").setAttribute("aria-expanded", String(open));
  });
  // On a phone, a tap beside the open sidebar closes it.
  $("main").addEventListener("click", (e) => {
    if (!document.body.classList.contains("show-sidebar")) return;
    e.preventDefault();
    e.stopPropagation();
    document.body.classList.remove("show-sidebar");
    $("toggle-sidebar").setAttribute("aria-expanded", "false");
  }, true);
  $("toggle-members").addEventListener("click", () => {
    const hidden = document.body.classList.toggle("hide-members");
    document.body.classList.toggle("show-members", !hidden);
    $("toggle-members").setAttribute("aria-expanded", String(!hidden));
  });
  $("join-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("join-room").value.trim();
    $("join-room").value = "";
    if (name) app.join(name);
  });
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    app.search($("search").value);
  });
  $("results-close").addEventListener("click", () => {
    $("results").hidden = true;
  });
  $("results-more").addEventListener("click", () => {
    if (app.searchState) app.search(app.searchState.query, app.searchState.page + 1);
  });
  $("replying-cancel").addEventListener("click", () => app.cancelReply());

  const input = $("input");
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const line = input.value;
    input.value = "";
    grow(input);
    app.submit(line);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("composer").requestSubmit();
    } else if (e.key === "Tab" && !e.shiftKey) {
      if (complete(input)) e.preventDefault();
    } else if (e.key === "Escape") {
      app.cancelReply();
    }
  });
  input.addEventListener("input", () => {
    grow(input);
    if (input.value && !input.value.startsWith("/")) app.sendTyping("active");
    else app.sendTyping("done");
  });
  input.addEventListener("paste", (e) => {
    const files = [...(e.clipboardData?.files || [])];
    if (files.length) {
      e.preventDefault();
      app.share(files);
    }
  });
  $("attach").addEventListener("change", (e) => {
    const files = [...e.target.files];
    e.target.value = "";
    app.share(files);
  });
  const main = $("main");
  let depth = 0;
  main.addEventListener("dragenter", (e) => {
    if (![...(e.dataTransfer?.types || [])].includes("Files")) return;
    depth++;
    $("drop").hidden = false;
  });
  main.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) $("drop").hidden = true;
  });
  main.addEventListener("dragover", (e) => {
    if ([...(e.dataTransfer?.types || [])].includes("Files")) e.preventDefault();
  });
  main.addEventListener("drop", (e) => {
    depth = 0;
    $("drop").hidden = true;
    const files = [...(e.dataTransfer?.files || [])];
    if (files.length) {
      e.preventDefault();
      app.share(files);
    }
  });

  document.addEventListener("keydown", (e) => {
    if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
      e.preventDefault();
      app.step(e.key === "ArrowUp" ? -1 : 1);
      $("input").focus();
    } else if (e.key === "Escape" && document.body.classList.contains("show-sidebar")) {
      document.body.classList.remove("show-sidebar");
      $("toggle-sidebar").setAttribute("aria-expanded", "false");
      $("toggle-sidebar").focus();
    } else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "k") {
      e.preventDefault();
      openSwitcher();
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") app.markReadSoon();
  });
  window.addEventListener("focus", () => app.markReadSoon());

  const switcherInput = $("switcher-input");
  switcherInput.addEventListener("input", () => renderSwitcher());
  switcherInput.addEventListener("keydown", (e) => {
    const items = [...$("switcher-list").children];
    const at = items.findIndex((li) => li.getAttribute("aria-selected") === "true");
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const next = (at + (e.key === "ArrowDown" ? 1 : -1) + items.length) % Math.max(1, items.length);
      items.forEach((li, i) => li.setAttribute("aria-selected", String(i === next)));
    }
  });
  $("switcher-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const chosen = $("switcher-list").querySelector('[aria-selected="true"]');
    $("switcher").close();
    if (chosen) chosen.click();
    $("input").focus();
  });
}

function grow(input) {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

/** Tab completes a member's nick. */
function complete(input) {
  const buffer = app.active;
  if (!buffer || buffer.kind !== "room") return false;
  const upto = input.value.slice(0, input.selectionStart);
  const word = upto.match(/[^\s]+$/);
  if (!word) return false;
  const match = buffer.members.find((m) => m.toLowerCase().startsWith(word[0].toLowerCase()) && m !== app.me);
  if (!match) return false;
  const start = upto.length - word[0].length;
  const suffix = start === 0 ? ": " : " ";
  input.value = input.value.slice(0, start) + match + suffix + input.value.slice(input.selectionStart);
  const at = start + match.length + suffix.length;
  input.setSelectionRange(at, at);
  return true;
}

function openSwitcher() {
  const dialog = $("switcher");
  if (dialog.open) return;
  $("switcher-input").value = "";
  renderSwitcher();
  dialog.showModal();
  $("switcher-input").focus();
}

function renderSwitcher() {
  const query = $("switcher-input").value.trim().toLowerCase().replace(/^#/, "");
  const matches = app.ordered().filter((b) => b.name.toLowerCase().includes(query));
  const items = matches.map((b) =>
    el(
      "li",
      { role: "option", onclick: () => { $("switcher").close(); app.show(b); } },
      b.kind === "room" ? `# ${b.name}` : b.name,
      b.unread ? el("span", { class: "badge" }, String(b.unread)) : null,
    ),
  );
  if (query && !matches.some((b) => b.name.toLowerCase() === query)) {
    items.push(el("li", { role: "option", onclick: () => { $("switcher").close(); app.join(query); } }, `Join # ${query}`));
  }
  items.forEach((li, i) => li.setAttribute("aria-selected", String(i === 0)));
  $("switcher-list").replaceChildren(...items);
}

async function start() {
  const theme = localStorage.getItem("parley.theme");
  if (theme === "dark" || theme === "light") document.documentElement.dataset.theme = theme;
  wire();
  app.keepAlive();
  if (app.remembered) {
    try {
      await app.connect({ resume: true });
      return;
    } catch (e) {
      if (e.code === "bad_token") {
        localStorage.removeItem("parley.session");
        app.remembered = null;
      }
    }
  }
  showLogin();
}

export { app };
start();
