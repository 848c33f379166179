// `/` commands, as in the terminal client (`parley chat`). Each reply is shown in the
// current buffer as a line of its own.

const DURATION = /^(\d+)([smhd])$/;

function seconds(word) {
  const m = DURATION.exec(word || "");
  if (!m) return null;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]];
}

/** Splits `rest` into its first word and what follows. */
function first(rest) {
  const m = /^(\S+)\s*([\s\S]*)$/.exec(rest.trim());
  return m ? [m[1], m[2].trim()] : ["", ""];
}

const COMMANDS = {
  help: ["", "this list", (app) => {
    for (const [name, [usage, what]] of Object.entries(COMMANDS)) {
      app.system(app.active, `/${name}${usage ? ` ${usage}` : ""}: ${what}`);
    }
  }],
  join: ["ROOM", "enter a room, creating it if nobody is there", (app, rest) => {
    const [room] = first(rest);
    if (!room) return "usage";
    return app.join(room);
  }],
  part: ["[ROOM]", "leave the room (or close the conversation)", (app, rest) => {
    const [room] = first(rest);
    const buffer = room ? app.buffer("room", room.replace(/^#/, ""), false) : app.active;
    return app.part(buffer);
  }],
  nick: ["NEW", "change your nick", async (app, rest) => {
    const [nick] = first(rest);
    if (!nick) return "usage";
    const answer = await app.request({ type: "nick", nick });
    app.renamedTo(answer.nick);
    app.system(app.active, `You are now ${answer.nick}.`);
  }],
  me: ["ACTION", "say what you do, in the third person", (app, rest) => {
    if (!rest.trim()) return "usage";
    if (app.active?.kind !== "room") return app.system(app.active, "Actions are for rooms: the protocol has none for private messages.");
    return app.say(app.active, rest, "action");
  }],
  msg: ["NICK TEXT", "a private message", (app, rest) => {
    const [nick, words] = first(rest);
    if (!nick) return "usage";
    const buffer = app.buffer("private", nick);
    app.show(buffer);
    if (words) return app.say(buffer, words);
  }],
  query: ["NICK", "open a conversation", (app, rest) => {
    const [nick] = first(rest);
    if (!nick) return "usage";
    app.show(app.buffer("private", nick));
  }],
  topic: ["[TEXT]", "show the room's topic, or set it", async (app, rest) => {
    const buffer = app.active;
    if (buffer?.kind !== "room") return app.system(buffer, "Topics are for rooms.");
    if (rest.trim()) {
      await app.request({ type: "topic", room: buffer.name, topic: rest.trim() });
      return app.refreshTopic(buffer);
    }
    const t = await app.request({ type: "topic", room: buffer.name });
    buffer.topic = t.topic || "";
    app.renderHeader();
    app.system(buffer, t.topic ? `Topic: ${t.topic}${t.by ? ` (set by ${t.by})` : ""}` : "No topic is set.");
  }],
  who: ["", "who is in the room", async (app) => {
    const buffer = app.active;
    if (buffer?.kind !== "room") return;
    const who = await app.request({ type: "who", room: buffer.name });
    buffer.members = who.members || [];
    app.renderMembers();
    app.system(buffer, `In ${who.room}: ${buffer.members.join(", ")}`);
  }],
  whois: ["NICK", "what the server says about someone", async (app, rest) => {
    const [nick] = first(rest);
    if (!nick) return "usage";
    const w = await app.request({ type: "whois", nick });
    const parts = [`${w.nick}`];
    if (w.account) parts.push(`account ${w.account}`);
    if (w.admin) parts.push("server administrator");
    if (w.rooms?.length) parts.push(`in ${w.rooms.join(" ")}`);
    if (w.since) parts.push(`connected since ${new Date(w.since).toLocaleString()}`);
    if (typeof w.idle_secs === "number") parts.push(`idle ${w.idle_secs} s`);
    if (w.away) parts.push(`away: ${w.away}`);
    app.system(app.active, parts.join(" · "));
  }],
  away: ["[MESSAGE]", "mark yourself away, or back without a message", async (app, rest) => {
    const message = rest.trim();
    const a = await app.request(message ? { type: "away", message } : { type: "away" });
    document.getElementById("me-status").textContent = a.away ? "away" : "";
    app.system(app.active, a.away ? "You are marked away." : "You are back.");
  }],
  invite: ["NICK", "invite someone into this room", async (app, rest) => {
    const [nick] = first(rest);
    if (!nick || app.active?.kind !== "room") return "usage";
    await app.request({ type: "invite", room: app.active.name, nick });
    app.system(app.active, `${nick} is invited to ${app.active.name}.`);
  }],
  rooms: ["", "the rooms on the server", async (app) => {
    const r = await app.request({ type: "rooms" });
    const list = (r.rooms || []).map((room) => `${room.name} (${room.members})${room.joined ? " ✓" : ""}`);
    app.system(app.active, `Rooms: ${list.join(", ") || "none"}`);
  }],
  search: ["WORDS [from:NICK] [in:ROOM] [before:DATE] [after:DATE]", "search what you may see", (app, rest) => {
    if (!rest.trim()) return "usage";
    document.getElementById("search").value = rest.trim();
    return app.search(rest.trim());
  }],
  delete: ["SEQ [REASON]", "delete a message of this room", async (app, rest) => {
    const [seq, reason] = first(rest);
    if (!/^\d+$/.test(seq) || app.active?.kind !== "room") return "usage";
    await app.request({ type: "delete", room: app.active.name, seq: Number(seq), reason: reason || undefined });
  }],
  kick: ["NICK [REASON]", "put someone out of the room", (app, rest) => moderate(app, rest, "kick")],
  ban: ["NICK|ADDRESS [DURATION] [REASON]", "keep someone out (30s, 10m, 2h, 7d)", async (app, rest) => {
    const [mask, more] = first(rest);
    if (!mask || app.active?.kind !== "room") return "usage";
    const [maybe, tail] = first(more);
    const secs = seconds(maybe);
    const reason = secs === null ? more : tail;
    await app.request({ type: "ban", room: app.active.name, mask, seconds: secs ?? undefined, reason: reason || undefined });
    app.system(app.active, `${mask} is banned from ${app.active.name}.`);
  }],
  unban: ["NICK|ADDRESS", "lift a ban", (app, rest) => moderate(app, rest, "unban", "mask")],
  mute: ["NICK [DURATION]", "keep someone quiet", async (app, rest) => {
    const [nick, more] = first(rest);
    if (!nick || app.active?.kind !== "room") return "usage";
    const secs = seconds(first(more)[0]);
    await app.request({ type: "mute", room: app.active.name, nick, seconds: secs ?? undefined });
    app.system(app.active, `${nick} is muted.`);
  }],
  unmute: ["NICK", "let someone speak again", (app, rest) => moderate(app, rest, "unmute")],
  op: ["NICK", "make someone an operator of the room", (app, rest) => moderate(app, rest, "op")],
  deop: ["NICK", "take it back", (app, rest) => moderate(app, rest, "deop")],
  register: ["PASSWORD", "make your nick an account", async (app, rest) => {
    if (!rest) return "usage";
    const r = await app.request({ type: "register", password: rest });
    app.system(app.active, `Your account ${r.account} is made; you are logged in.`);
  }],
  login: ["[NAME] PASSWORD", "log in to your account", async (app, rest) => {
    const words = rest.trim().split(/\s+/);
    if (!words[0]) return "usage";
    const request = words.length > 1 ? { type: "auth", name: words[0], password: words.slice(1).join(" ") } : { type: "auth", password: words[0] };
    const r = await app.request(request);
    app.renamedTo(r.nick);
    app.system(app.active, `Logged in to ${r.account}.`);
  }],
  password: ["OLD NEW", "change your password", async (app, rest) => {
    const [old, fresh] = first(rest);
    if (!old || !fresh) return "usage";
    await app.request({ type: "password", old, new: fresh });
    app.system(app.active, "Your password is changed.");
  }],
  audit: ["[N]", "the latest moderation actions (administrators)", async (app, rest) => {
    const n = Number(first(rest)[0]) || 20;
    const a = await app.request({ type: "audit", limit: n });
    for (const entry of a.entries || []) {
      app.system(app.active, `${entry.ts} ${entry.actor} ${entry.action} ${entry.room || ""} ${entry.target || ""} ${entry.detail || ""}`);
    }
  }],
  disconnect: ["", "close the connection (until /reconnect)", (app) => app.disconnect()],
  reconnect: ["", "connect again now", (app) => {
    app.retry = 0;
    return app.reconnect();
  }],
  quit: ["", "sign out", (app) => app.logout()],
};

async function moderate(app, rest, type, field = "nick") {
  const [who, reason] = first(rest);
  if (!who || app.active?.kind !== "room") return "usage";
  const request = { type, room: app.active.name, [field]: who };
  if (reason && type === "kick") request.reason = reason;
  await app.request(request);
  app.system(app.active, `${type}: ${who}`);
}

/** Runs one `/` command line. */
export async function runCommand(app, line) {
  const [word, rest] = (() => {
    const m = /^\/(\S+)\s?([\s\S]*)$/.exec(line);
    return m ? [m[1].toLowerCase(), m[2]] : ["", ""];
  })();
  const command = COMMANDS[word === "msg" || word === "query" ? word : word] || (word === "w" ? COMMANDS.msg : null);
  if (!command) {
    app.system(app.active, `Unknown command /${word}: /help lists them.`);
    return;
  }
  try {
    const result = await command[2](app, rest);
    if (result === "usage") app.system(app.active, `Usage: /${word} ${command[0]}`);
  } catch (e) {
    app.system(app.active, `/${word}: ${e.message}`);
  }
}
