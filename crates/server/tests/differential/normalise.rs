//! What is compared of a line, and what is not.
//!
//! Each line becomes a canonical one: `@tags :source COMMAND params…`, the last
//! parameter after a `:` when it has a space or is empty (however the server sent it).
//! The rules:
//!
//! - The server's name, anywhere as a whole parameter or the source, is `<server>`.
//! - A user's host is `<host>` in masks (`nick!user@host`), in USERHOST's
//!   `nick=+user@host`, and as the host parameter of WHO (352), WHOX (354) and WHOIS
//!   (311), when it is the host every test client has on that server (both show the
//!   address, Parley with `[irc] hosts = "ip"`). The user name is compared, without
//!   the `~` Parley puts before it: InspIRCd adds it only with its ident module, which
//!   the test does not load. The script's `hosts` option compares both as sent.
//! - Tags: their names are compared, and their values but for `time`, `msgid` and
//!   `batch`, which are `*`. BATCH references are `<batch>`. A server's vendor tags
//!   (`inspircd.org/echo`) are left out, and so is `time` on what the server itself
//!   says (numerics, CAP), where server-time is optional.
//! - Times: 329's, 333's and 367's timestamps, 317's idle time and signon, and WHOX's
//!   idle time (354's `l`, where the exchange's `WHO` asked for it) are `<ts>`;
//!   LUSERS counts (251–255) are `<n>`; 265's and 266's optional counts are left out,
//!   and so is 253 (connections still registering, a matter of timing).
//! - Versions (004, 351) are `<version>`; 004's mode letters are `<modes>` (005 says
//!   which modes exist in a form clients parse).
//! - A numeric's last parameter is free text, compared only for being there (`<text>`),
//!   unless it carries data: away messages, real names, topics, NAMES and WHOIS channel
//!   lists, mode arguments, WHO replies, USERHOST replies, the MOTD's lines (without
//!   the customary `- ` before each; see
//!   [`DATA_LAST`]). `ERROR` and the text of `FAIL`/`WARN`/`NOTE` and of notices from the
//!   server are free text too. The script's `text` option compares it all.
//! - 005: only the tokens in [`ISUPPORT_VALUES`] (with their values) and
//!   [`ISUPPORT_PRESENT`] (whether they are there) are compared, all 005 lines of a reply
//!   as one. `CAP LS`: only whether each capability of [`CAPS`] is offered.
//! - LIST's topics lose InspIRCd's `[+modes] ` before them; 324's mode letters without
//!   a parameter are in alphabetical order, before those with one (`+ntkl key 10`).
//! - 008 (InspIRCd's server notice mask, after OPER) is left out: Parley has none.
//! - Order: NAMES replies of one channel are one list, in name order; so are runs of
//!   MONITOR's 730, 731 and 732 (comma lists; 730's items by nick alone, as the
//!   documents let a server add `!user@host` or not); the channels of a WHOIS 319 are
//!   in name order; runs of WHO, WHOX, LIST, ban list and LINKS replies
//!   are in sorted order. Everything else keeps the order it came in, per client.

use parley_proto::irc::Message;

/// Numerics whose last parameter is data, not text.
pub const DATA_LAST: &[&str] = &[
    "221", "301", "302", "303", "311", "314", "319", "322", "324", "329", "332", "333", "341", "352", "353", "354",
    "367", "372", "730", "731", "732",
];

/// 005 tokens compared with their values.
pub const ISUPPORT_VALUES: &[&str] = &["CHANMODES", "CHANTYPES", "MONITOR", "PREFIX", "STATUSMSG"];

/// 005 tokens compared for being there: their values are each server's settings.
pub const ISUPPORT_PRESENT: &[&str] = &[
    "AWAYLEN",
    "CASEMAPPING",
    "CHANLIMIT",
    "CHANNELLEN",
    "ELIST",
    "KICKLEN",
    "MODES",
    "NETWORK",
    "NICKLEN",
    "TOPICLEN",
    "WHOX",
];

/// The capabilities whose offer `CAP LS` is compared for: those of InspIRCd's modules
/// that Parley could offer; what else either offers is left out.
pub const CAPS: &[&str] = &[
    "account-notify",
    "away-notify",
    "batch",
    "cap-notify",
    "echo-message",
    "extended-join",
    "extended-monitor",
    "invite-notify",
    "labeled-response",
    "message-tags",
    "multi-prefix",
    "server-time",
    "userhost-in-names",
];

/// What a server calls itself and its users.
pub struct Context<'a> {
    pub server: &'a str,
    /// Every user's host as this server shows it.
    pub host: &'a str,
}

#[derive(Clone, Copy, Default)]
pub struct Options {
    pub hosts: bool,
    pub text: bool,
    /// Where a WHOX reply's idle time is among its parameters, when the exchange's
    /// `WHO` asked for it (see [`whox_idle`]).
    pub whox_idle: Option<usize>,
}

/// The index of the idle time (`l`) among a `354` reply's parameters, when `sent` is a
/// WHOX request with it: after the client, then each field asked for before it in
/// WHOX's fixed order `tcuihsnfdlaor` (the token only when one is given).
pub fn whox_idle(sent: &str) -> Option<usize> {
    let mut words = sent.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("WHO") {
        return None;
    }
    let spec = words.nth(1)?.strip_prefix('%')?;
    let (fields, token) = match spec.split_once(',') {
        Some((fields, token)) => (fields, !token.is_empty()),
        None => (spec, false),
    };
    if !fields.contains('l') {
        return None;
    }
    let before = "tcuihsnfd".chars().filter(|f| fields.contains(*f) && (*f != 't' || token)).count();
    Some(1 + before)
}

/// The canonical lines of one client's replies.
pub fn normalise(lines: &[String], cx: &Context<'_>, options: Options) -> Vec<String> {
    let mut out: Vec<Canonical> = Vec::new();
    for line in lines {
        if line.starts_with('<') {
            out.push(Canonical::raw(line));
            continue;
        }
        let Ok(message) = Message::parse(line) else {
            out.push(Canonical::raw(&format!("<unparsed> {line}")));
            continue;
        };
        if let Some(canonical) = canonical(message, cx, options) {
            out.push(canonical);
        }
    }
    let merged = merge(out);
    merged.iter().map(Canonical::render).collect()
}

struct Canonical {
    tags: Vec<String>,
    source: Option<String>,
    command: String,
    params: Vec<String>,
    /// A line that is not IRC (`<connection closed>`), shown as it is.
    raw: Option<String>,
}

impl Canonical {
    fn raw(text: &str) -> Canonical {
        Canonical { tags: Vec::new(), source: None, command: String::new(), params: Vec::new(), raw: Some(text.into()) }
    }

    fn render(&self) -> String {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let mut line = String::new();
        if !self.tags.is_empty() {
            line.push('@');
            line.push_str(&self.tags.join(";"));
            line.push(' ');
        }
        if let Some(source) = &self.source {
            line.push(':');
            line.push_str(source);
            line.push(' ');
        }
        line.push_str(&self.command);
        for (i, param) in self.params.iter().enumerate() {
            line.push(' ');
            let last = i + 1 == self.params.len();
            if last && (param.is_empty() || param.contains(' ') || param.starts_with(':')) {
                line.push(':');
            }
            line.push_str(param);
        }
        line
    }
}

fn canonical(message: Message, cx: &Context<'_>, options: Options) -> Option<Canonical> {
    let command = message.command.to_ascii_uppercase();
    if command == "253" {
        return None;
    }
    let numeric = command.len() == 3 && command.bytes().all(|b| b.is_ascii_digit());
    if command == "008" {
        return None;
    }
    let from_server = message.source.as_deref() == Some(cx.server);
    let mut tags: Vec<String> = message
        .tags
        .iter()
        // A server's own vendor tags (`inspircd.org/echo`) are its own matter, and
        // server-time is optional on what the server itself says.
        .filter(|(key, _)| key.starts_with('+') || !key.contains('/'))
        .filter(|(key, _)| !(from_server && key == "time"))
        .map(|(key, value)| match (key.as_str(), value) {
            ("time" | "msgid" | "batch", _) => format!("{key}=*"),
            (_, Some(value)) if !value.is_empty() => format!("{key}={value}"),
            _ => key.clone(),
        })
        .collect();
    tags.sort();
    let source = message.source.as_deref().map(|s| person(s, cx, options));
    let mut params: Vec<String> = message.params.iter().map(|p| person(p, cx, options)).collect();
    let last = params.len().saturating_sub(1);
    let text = "<text>".to_owned();
    match command.as_str() {
        "004" => {
            params.truncate(3);
            if let Some(version) = params.get_mut(2) {
                *version = "<version>".into();
            }
            params.push("<modes>".into());
        }
        "005" => {
            let tokens = params.get(1..last).unwrap_or_default();
            let mut kept: Vec<String> = tokens.iter().filter_map(|t| isupport(t)).collect();
            kept.insert(0, params.first().cloned().unwrap_or_default());
            params = kept;
        }
        "351" => {
            if let Some(version) = params.get_mut(1) {
                *version = "<version>".into();
            }
        }
        "329" => stamp(&mut params, 2),
        "333" => stamp(&mut params, 3),
        "367" => stamp(&mut params, 4),
        "317" => {
            stamp(&mut params, 2);
            stamp(&mut params, 3);
        }
        "251" | "252" | "254" | "255" => {
            for p in &mut params[1..] {
                if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                    *p = "<n>".into();
                }
            }
        }
        // `265 <client> [<u> <m>] :text`: the counts are optional.
        "265" | "266" => {
            let text = params.pop();
            params.truncate(1);
            params.extend(text);
        }
        // The MOTD's lines, with or without the customary "- " before each.
        "372" => {
            if let Some(line) = params.last_mut() {
                if let Some(rest) = line.strip_prefix("- ") {
                    *line = rest.to_owned();
                }
            }
        }
        "311" | "314" | "352" if !options.hosts => {
            user_host(&mut params, 2, 3, cx);
        }
        // WHOX: idle seconds are a matter of timing, as 317's are.
        "354" if options.whox_idle.is_some() && !options.hosts => {
            if let Some(idle) = options.whox_idle {
                stamp(&mut params, idle);
            }
            whox_hosts(&mut params, cx);
        }
        "354" if !options.hosts => whox_hosts(&mut params, cx),
        "302" => {
            if let Some(list) = params.last_mut() {
                let mut items: Vec<String> = list.split_whitespace().map(|i| userhost(i, cx, options)).collect();
                items.sort();
                *list = items.join(" ");
            }
        }
        // MONITOR's comma lists, in name order; 730's by nick alone (the documents let a
        // server add `!user@host`: Parley does, InspIRCd does not).
        "730" | "731" | "732" => {
            if let Some(list) = params.last_mut() {
                let mut items: Vec<String> =
                    list.split(',').map(|i| i.split_once('!').map_or(i, |(nick, _)| nick).to_owned()).collect();
                items.sort();
                *list = items.join(",");
            }
        }
        "319" => {
            if let Some(list) = params.last_mut() {
                let mut channels: Vec<&str> = list.split_whitespace().collect();
                channels.sort_unstable();
                *list = channels.join(" ");
            }
        }
        "CAP" => cap(&mut params),
        // InspIRCd shows a channel's modes before its topic in LIST: `[+nt] topic`.
        "322" => {
            if let Some(topic) = params.last_mut() {
                if let Some(rest) = topic.strip_prefix("[+").and_then(|t| t.split_once("] ")) {
                    *topic = rest.1.to_owned();
                }
            }
        }
        "324" => {
            if let Some(modes) = params.get_mut(2) {
                *modes = mode_letters(modes);
            }
        }
        "BATCH" => {
            if let Some(id) = params.first_mut() {
                let sign = if id.starts_with('-') { "-" } else { "+" };
                *id = format!("{sign}<batch>");
            }
        }
        _ => {}
    }
    if !options.text {
        let prose = if numeric {
            !DATA_LAST.contains(&command.as_str()) && command != "004" && command != "005"
        } else {
            matches!(command.as_str(), "ERROR" | "FAIL" | "WARN" | "NOTE")
                || (from_server && matches!(command.as_str(), "NOTICE" | "PRIVMSG"))
        };
        // A numeric with only its target has no text to stand for.
        if prose && params.len() > usize::from(numeric) {
            if let Some(last) = params.last_mut() {
                last.clone_from(&text);
            }
        }
    }
    Some(Canonical { tags, source, command, params, raw: None })
}

/// The server's name as `<server>`; a mask's host as `<host>`, its user name without `~`.
fn person(text: &str, cx: &Context<'_>, options: Options) -> String {
    if text == cx.server {
        return "<server>".into();
    }
    if options.hosts {
        return text.to_owned();
    }
    // Masks anywhere in the text: `nick!user@HOST` where HOST is this server's users' host.
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match word.split_once('!').and_then(|(nick, rest)| rest.split_once('@').map(|(user, host)| (nick, user, host)))
        {
            Some((nick, user, host)) if host == cx.host => {
                out.push_str(nick);
                out.push('!');
                out.push_str(unmarked(user));
                out.push_str("@<host>");
            }
            _ => out.push_str(word),
        }
    }
    out
}

/// USERHOST's `nick[*]=[+-]user@host`.
fn userhost(item: &str, cx: &Context<'_>, options: Options) -> String {
    if options.hosts {
        return item.to_owned();
    }
    match item.split_once('=') {
        Some((nick, rest)) if rest.len() > 1 && rest.ends_with(&format!("@{}", cx.host)) => {
            let user = rest[1..].split_once('@').map_or("", |(user, _)| user);
            format!("{nick}={}{}@<host>", &rest[..1], unmarked(user))
        }
        _ => item.to_owned(),
    }
}

/// A user name without the `~` that says no ident lookup vouched for it.
fn unmarked(user: &str) -> &str {
    user.strip_prefix('~').unwrap_or(user)
}

fn user_host(params: &mut [String], user: usize, host: usize, cx: &Context<'_>) {
    if let Some(p) = params.get_mut(user) {
        *p = unmarked(p).to_owned();
    }
    if let Some(p) = params.get_mut(host) {
        if p == cx.host {
            *p = "<host>".into();
        }
    }
}

/// WHOX's user and host fields, and a client's own address (`i`), which is InspIRCd's
/// host for it: every test client connects from 127.0.0.1. (Only the user field starts
/// with `~`.)
fn whox_hosts(params: &mut [String], cx: &Context<'_>) {
    for p in params.iter_mut().skip(1) {
        if p == cx.host || p == "127.0.0.1" {
            *p = "<host>".into();
        } else if let Some(user) = p.strip_prefix('~') {
            *p = user.to_owned();
        }
    }
}

fn stamp(params: &mut [String], index: usize) {
    if let Some(p) = params.get_mut(index) {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            *p = "<ts>".into();
        }
    }
}

fn isupport(token: &str) -> Option<String> {
    let (name, _) = token.split_once('=').unwrap_or((token, ""));
    if ISUPPORT_VALUES.contains(&name) {
        Some(token.to_owned())
    } else if ISUPPORT_PRESENT.contains(&name) {
        Some(name.to_owned())
    } else {
        None
    }
}

/// `CAP <nick> LS|LIST|ACK|NAK|NEW|DEL [*] :caps`: the capability list in name order;
/// for `LS`, only which of [`CAPS`] are offered.
fn cap(params: &mut Vec<String>) {
    let Some(sub) = params.get(1).map(|s| s.to_ascii_uppercase()) else { return };
    // A `*` before the list says more lines follow (CAP LS 302): how a server splits the
    // list is its own matter.
    if params.len() == 4 && params[2] == "*" {
        params.remove(2);
    }
    let Some(list) = params.last_mut() else { return };
    let mut caps: Vec<String> = list
        .split_whitespace()
        .map(|c| if sub == "LS" { c.split('=').next().unwrap_or(c).to_owned() } else { c.to_owned() })
        .filter(|c| sub != "LS" || CAPS.contains(&c.as_str()))
        .collect();
    caps.sort();
    *list = caps.join(" ");
}

/// NAMES replies of one channel become one line, and so do a reply's 005 lines and its
/// CAP LS lines; runs of replies whose order says nothing are sorted.
fn merge(lines: Vec<Canonical>) -> Vec<Canonical> {
    let mut out: Vec<Canonical> = Vec::new();
    for line in lines {
        if let Some(prev) = out.last_mut() {
            if prev.raw.is_none() && line.raw.is_none() && prev.command == line.command {
                match line.command.as_str() {
                    "353" if prev.params.get(2) == line.params.get(2) && prev.params.len() == line.params.len() => {
                        let names = line.params.last().cloned().unwrap_or_default();
                        if let Some(list) = prev.params.last_mut() {
                            let mut all: Vec<&str> = list.split_whitespace().chain(names.split_whitespace()).collect();
                            all.sort_unstable();
                            *list = all.join(" ");
                        }
                        continue;
                    }
                    "005" => {
                        prev.params.extend(line.params.into_iter().skip(1));
                        continue;
                    }
                    "730" | "731" | "732" if prev.params.len() == line.params.len() => {
                        let more = line.params.last().cloned().unwrap_or_default();
                        if let Some(list) = prev.params.last_mut() {
                            let mut all: Vec<&str> = list.split(',').chain(more.split(',')).collect();
                            all.sort_unstable();
                            *list = all.join(",");
                        }
                        continue;
                    }
                    "CAP" if prev.params.get(1).is_some_and(|s| s.eq_ignore_ascii_case("LS")) => {
                        let more = line.params.last().cloned().unwrap_or_default();
                        if let Some(list) = prev.params.last_mut() {
                            let mut all: Vec<&str> = list.split_whitespace().chain(more.split_whitespace()).collect();
                            all.sort_unstable();
                            *list = all.join(" ");
                        }
                        continue;
                    }
                    _ => {}
                }
            }
        }
        out.push(line);
    }
    for line in &mut out {
        match line.command.as_str() {
            "353" => {
                if let Some(list) = line.params.last_mut() {
                    let mut names: Vec<&str> = list.split_whitespace().collect();
                    names.sort_unstable();
                    *list = names.join(" ");
                }
            }
            "005" => {
                if let Some(tokens) = line.params.get_mut(1..) {
                    tokens.sort();
                }
            }
            _ => {}
        }
    }
    // Runs of replies in no particular order.
    let mut i = 0;
    while i < out.len() {
        let command = out[i].command.clone();
        let mut j = i + 1;
        while j < out.len() && out[j].raw.is_none() && out[j].command == command {
            j += 1;
        }
        if out[i].raw.is_none() && matches!(command.as_str(), "352" | "354" | "322" | "367" | "364") {
            out[i..j].sort_by_key(Canonical::render);
        }
        i = j;
    }
    out
}

/// 324's `+modes`: the letters without parameters in alphabetical order, then those
/// with one in the order given (their parameters follow in that order).
fn mode_letters(modes: &str) -> String {
    let Some(letters) = modes.strip_prefix('+') else { return modes.to_owned() };
    let mut plain: Vec<char> = letters.chars().filter(|c| !matches!(c, 'k' | 'l')).collect();
    plain.sort_unstable();
    let with_parameter = letters.chars().filter(|c| matches!(c, 'k' | 'l'));
    std::iter::once('+').chain(plain).chain(with_parameter).collect()
}
