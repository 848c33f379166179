//! A registered IRC session's input: each line parsed, checked, and turned into hub
//! commands (with the [`Context`] their answers need) or answered by the gateway itself
//! through [`Session::relay`], so every answer keeps its place in line.

use bytes::{Bytes, BytesMut};
use parley_hub::{
    Action, Audience, Command, HistoryQuery, HubError, Kind, Marked, Meta, ModeChange, Nick, Point, RoomMode, RoomName,
    ServerAction, Session, Watch,
};
use parley_proto::irc::{ctcp_action, Message, ParseError, MAX_LINE_WITH_TAGS};
use parley_proto::line::{duration as line_duration, LineDecoder, LineError};
use std::time::Duration;
use tokio::time::Instant;

use super::caps::Cap;
use super::labels::{self, Framing, Labeled, Piece};
use super::oper::OperPacing;
use super::register::cap;
use super::wire::Lines;
use super::{tags, wire_param, Context, Link};
use crate::gateway::words;
use crate::gateway::{ReadEnd, Turn};

/// The most targets of one PRIVMSG or NOTICE (`TARGMAX`).
pub(super) const MAX_TARGETS: usize = 4;

/// The most channels of one NAMES (`TARGMAX`): what clients send, and one hub command
/// per line; and the most nicks of one KICK, each its own hub command.
pub(super) const MAX_NAMES: usize = 1;
pub(super) const MAX_KICKS: usize = 4;

/// The most nicks of one `USERHOST` (as RFC 2812 has it) and of one `ISON`.
const MAX_USERHOST: usize = 5;
const MAX_ISON: usize = 32;

/// The most mode changes with an argument in one MODE (`MODES`).
const MAX_MODES: usize = 4;

/// A connection's input decoder: bounded lines, parsed as messages.
pub(super) struct Input {
    decoder: LineDecoder,
}

/// One unit of a connection's input.
pub(crate) enum Read {
    /// A message.
    Message(Message),
    /// A line that is not one, with the answer to give.
    Refused(Bytes),
}

impl Input {
    pub(super) fn new() -> Input {
        Input { decoder: LineDecoder::new(MAX_LINE_WITH_TAGS) }
    }

    /// The next message in `buf`; `None` when more bytes are needed. Lines that are not
    /// messages are answered, never dropped in silence (but for empty lines, which
    /// clients send as keepalives).
    pub(super) fn decode(&mut self, buf: &mut BytesMut, link: &Link) -> Option<Read> {
        loop {
            let decoded = match self.decoder.decode(buf) {
                Ok(None) => return None,
                Ok(Some(line)) => Ok(line),
                Err(e) => Err(e),
            };
            if let Some(read) = read(decoded, link) {
                return Some(read);
            }
        }
    }

    /// The last message, unterminated, at the end of input.
    pub(super) fn decode_eof(&mut self, buf: &mut BytesMut, link: &Link) -> Option<Read> {
        match self.decoder.decode_eof(buf) {
            Ok(Some(line)) => read(Ok(line), link),
            Ok(None) | Err(_) => None,
        }
    }
}

/// A decoded line as a message, or the answer to one that is not; `None` for an empty
/// line.
fn read(decoded: Result<String, LineError>, link: &Link) -> Option<Read> {
    let mut lines = Lines::new(link);
    let line = match decoded {
        Ok(line) => line,
        Err(LineError::TooLong { .. }) => {
            lines.numeric("417", &[], "Input line was too long");
            return Some(Read::Refused(lines.text.into()));
        }
        Err(LineError::InvalidUtf8) => {
            let server = link.server.name.clone();
            lines.from(&server, "FAIL", &["*", "INVALID_UTF8"], Some("Message rejected: not UTF-8"), "");
            return Some(Read::Refused(lines.text.into()));
        }
    };
    match Message::parse(&line) {
        Ok(message) => return Some(Read::Message(message)),
        Err(ParseError::Empty) => return None,
        Err(ParseError::BodyTooLong | ParseError::TagsTooLong) => {
            lines.numeric("417", &[], "Input line was too long");
        }
        Err(ParseError::ForbiddenCharacter) => {
            lines.numeric("400", &["*"], "Lines may not contain NUL or CR characters");
        }
        Err(ParseError::NoCommand | ParseError::BadCommand) => {
            let word = line.split_whitespace().find(|w| !w.starts_with(['@', ':'])).unwrap_or("*");
            lines.numeric("421", &[&wire_param(word)], "Unknown command");
        }
    }
    Some(Read::Refused(lines.text.into()))
}

/// Turns one IRC line into hub commands.
pub(super) async fn handle(
    read: Read,
    turn: &mut Turn<'_>,
    link: &Link,
    oper: &mut Option<Box<OperPacing>>,
) -> Result<(), ReadEnd> {
    let message = match read {
        Read::Refused(bytes) => return turn.relay(bytes).await,
        Read::Message(message) => message,
    };
    turn.pace().await?;
    let session = turn.session;
    let out = Out { session, link, labeled: labels::label_of(&message, link).map(Labeled::new) };
    let mut pacing = Pacing { turn, oper };
    let flow = match dispatch(&message, &out, &mut pacing).await {
        Ok(flow) => out.finish().await.map(|()| flow),
        Err(Gone) => Err(Gone),
    };
    match flow {
        Ok(Flow::Go) => Ok(()),
        Ok(Flow::Quit) => Err(ReadEnd::Quit),
        Ok(Flow::Flooded) => Err(ReadEnd::Flood),
        Ok(Flow::Close { told, others }) => {
            let _ = session.relay(closing(link, told)).await;
            Err(ReadEnd::Limit(others))
        }
        Err(Gone) => Err(ReadEnd::Closed),
    }
}

pub(super) fn closing(link: &Link, why: &str) -> Bytes {
    format!("ERROR :Closing link: {} ({why})\r\n", link.source()).into()
}

/// What slows a client down while one line is handled: the driver's flood control,
/// which every line and every further target of a comma list draw on, and the
/// connection's record of failed `OPER`s.
struct Pacing<'a, 'b> {
    turn: &'a mut Turn<'b>,
    oper: &'a mut Option<Box<OperPacing>>,
}

impl Pacing<'_, '_> {
    /// Draws on flood control for the targets of a comma list after the first (the line
    /// paid for that one): a list of many channels costs what as many lines do. `Some`
    /// when the client flooded and must go.
    async fn targets(&mut self, targets: usize) -> Option<Flow> {
        for _ in 1..targets {
            if self.turn.pace().await.is_err() {
                return Some(Flow::Flooded);
            }
        }
        None
    }
}

/// Whether the session goes on.
enum Flow {
    Go,
    Quit,
    /// The client flooded for too long; the driver tells it so.
    Flooded,
    /// The client broke a limit: it is `told` why in an `ERROR`, and the others see
    /// `others` as its quit reason.
    Close {
        told: &'static str,
        others: &'static str,
    },
}

/// The hub has stopped: the session is over.
struct Gone;

/// What one command becomes: hub commands and lines of the gateway's own, sent in the
/// order the line produced them, and for a labeled line framed as one answer (see
/// `labels.rs`).
struct Out<'a> {
    session: &'a Session,
    link: &'a Link,
    /// The line's label, when it has one its client asked to get back.
    labeled: Option<Labeled>,
}

impl Out<'_> {
    async fn command(&self, context: Context, command: Command) -> Result<(), Gone> {
        self.put(Piece::Command(context, command)).await
    }

    async fn relay(&self, lines: Lines<'_>) -> Result<(), Gone> {
        if lines.text.is_empty() {
            return Ok(());
        }
        self.put(Piece::Relay(lines.text)).await
    }

    /// One part of the line's answer: sent now, or held by its labeling.
    async fn put(&self, piece: Piece) -> Result<(), Gone> {
        match &self.labeled {
            None => self.send(piece, None).await,
            Some(labeled) => {
                for (piece, framing) in labeled.take(piece, self.link) {
                    self.send(piece, framing).await?;
                }
                Ok(())
            }
        }
    }

    /// Ends a labeled line's answer (its held part, the end of its batch, or an `ACK`).
    async fn finish(&self) -> Result<(), Gone> {
        if let Some(labeled) = &self.labeled {
            for (piece, framing) in labeled.finish(self.link) {
                self.send(piece, framing).await?;
            }
        }
        Ok(())
    }

    async fn send(&self, piece: Piece, framing: Option<Framing>) -> Result<(), Gone> {
        match piece {
            Piece::Command(context, command) => {
                let req = self.link.expect_framed(context, framing);
                self.session.send(req, command).await.map_err(|_| Gone)
            }
            Piece::Relay(text) => {
                let text = match framing {
                    // The gateway's own lines as a part of a labeled answer in several:
                    // on the answer to a `Ping`, so that the wire writes every part.
                    Some(Framing::Part { label, batch, last, .. }) => {
                        let framing = Framing::Part { label, batch, last, own: text };
                        let req = self.link.expect_framed(Context::None, Some(framing));
                        return self.session.send(req, Command::Ping).await.map_err(|_| Gone);
                    }
                    Some(alone) => labels::frame(&text, &alone, false, &self.link.server.name),
                    None => text,
                };
                self.session.relay(text.into()).await.map_err(|_| Gone)
            }
        }
    }

    fn lines(&self) -> Lines<'_> {
        Lines::new(self.link)
    }

    /// Client tags the hub would refuse: `417` when they are over the limits, as the
    /// message-tags specification has it, `FAIL` naming the tag otherwise.
    async fn refuse_tags(&self, e: &HubError) -> Result<(), Gone> {
        match e {
            HubError::TagsTooLong { .. } => self.numeric("417", &[], "Input line was too long").await,
            _ => {
                let mut lines = self.lines();
                let server = self.link.server.name.clone();
                lines.from(&server, "FAIL", &["*", "INVALID_TAG"], Some(&words::error(e)), "");
                self.relay(lines).await
            }
        }
    }

    async fn numeric(&self, code: &str, params: &[&str], text: &str) -> Result<(), Gone> {
        let mut lines = self.lines();
        lines.numeric(code, params, text);
        self.relay(lines).await
    }

    async fn need_more(&self, command: &str) -> Result<(), Gone> {
        self.numeric("461", &[command], "Not enough parameters").await
    }
}

/// The room a channel names, or `None` when it does not start with `#`.
fn room_of(channel: &str) -> Option<String> {
    channel.strip_prefix('#').map(str::to_owned)
}

/// A `STATUSMSG` target (`@#room` for its operators, `+#room` for its operators and
/// voiced members): who, and the channel.
fn status_of(target: &str) -> Option<(Audience, &str)> {
    let (audience, channel) = match target.split_at_checked(1)? {
        ("@", channel) => (Audience::Operators, channel),
        ("+", channel) => (Audience::Voiced, channel),
        _ => return None,
    };
    channel.starts_with('#').then_some((audience, channel))
}

/// The items of a comma list, empty ones left out.
fn list(targets: &str) -> Vec<&str> {
    targets.split(',').filter(|t| !t.is_empty()).collect()
}

/// Checks a comma list against its `TARGMAX` and pays for its targets. A list longer
/// than `max` is refused whole, naming its first target over the limit (`407`,
/// ERR_TOOMANYTARGETS). `Some`: the command stops there, and the session goes on as the
/// flow says.
async fn within(
    out: &Out<'_>,
    pacing: &mut Pacing<'_, '_>,
    targets: &[&str],
    max: usize,
) -> Result<Option<Flow>, Gone> {
    if let Some(over) = targets.get(max) {
        out.numeric("407", &[&wire_param(over)], "Too many targets").await?;
        return Ok(Some(Flow::Go));
    }
    Ok(pacing.targets(targets.len()).await)
}

async fn dispatch(message: &Message, out: &Out<'_>, pacing: &mut Pacing<'_, '_>) -> Result<Flow, Gone> {
    let (session, link) = (out.session, out.link);
    let command = message.command.to_ascii_uppercase();
    let param = |i: usize| message.param(i).filter(|p| !p.is_empty());
    match command.as_str() {
        "PRIVMSG" | "NOTICE" if param(0).is_some_and(|t| service_named(t).is_some()) => {
            // `PRIVMSG ChanServ :REGISTER #room`, as many clients and bots send it.
            let service = param(0).and_then(service_named).unwrap_or(Service::Chan);
            let words: Vec<&str> = param(1).unwrap_or("").split_whitespace().collect();
            return services(out, service, &words).await;
        }
        "CS" | "CHANSERV" | "NS" | "NICKSERV" => {
            let service = if command.starts_with('C') { Service::Chan } else { Service::Nick };
            let words: Vec<&str> = message.params.iter().flat_map(|p| p.split_whitespace()).collect();
            return services(out, service, &words).await;
        }
        "KLINE" | "DLINE" | "UNKLINE" | "UNDLINE" => return server_ban(out, &command, &message.params).await,
        "PRIVMSG" | "NOTICE" => {
            let notice = command == "NOTICE";
            let Some(targets) = param(0) else {
                return out.numeric("411", &[], &format!("No recipient given ({command})")).await.map(|()| Flow::Go);
            };
            let Some(text) = param(1) else {
                return out.numeric("412", &[], "No text to send").await.map(|()| Flow::Go);
            };
            let (kind, text) = match ctcp_action(text) {
                Some(action) => (Kind::Action, action.to_owned()),
                None if notice => (Kind::Notice, text.to_owned()),
                None => (Kind::Text, text.to_owned()),
            };
            let targets = list(targets);
            if let Some(flow) = within(out, pacing, &targets, MAX_TARGETS).await? {
                return Ok(flow);
            }
            // Client-only tags from a client that did not ask for message-tags are not
            // relayed (as InspIRCd and ergo do).
            let tagged = link.caps.has(Cap::MessageTags);
            for target in targets {
                let meta = match tags::meta(message, target) {
                    _ if !tagged => Meta::default(),
                    Ok(meta) => meta,
                    Err(e) => return out.refuse_tags(&e).await.map(|()| Flow::Go),
                };
                let context = Context::Privmsg { target: target.to_owned() };
                let command = match (status_of(target), room_of(target)) {
                    // `STATUSMSG`: to some of the channel's members, live and unkept.
                    (Some((audience, channel)), _) => {
                        let room = channel.trim_start_matches('#').to_owned();
                        Command::SayTo { room, audience, kind, text: text.clone() }
                    }
                    (None, Some(room)) => Command::Say { room: Some(room), kind, text: text.clone(), meta },
                    (None, None) => Command::Whisper { to: target.to_owned(), kind, text: text.clone(), meta },
                };
                out.command(context, command).await?;
            }
        }
        "JOIN" => {
            let Some(channels) = param(0) else {
                return out.need_more("JOIN").await.map(|()| Flow::Go);
            };
            // `JOIN 0` parts every channel, as PART would.
            if channels == "0" {
                for room in link.channels() {
                    let context = Context::Part { channel: format!("#{room}"), reason: None };
                    out.command(context, Command::Part { room: Some(room.to_string()), reason: None }).await?;
                }
                return Ok(Flow::Go);
            }
            let channels = list(channels);
            if let Some(flow) = within(out, pacing, &channels, link.server.max_join_targets).await? {
                return Ok(flow);
            }
            let mut keys = param(1).unwrap_or("").split(',');
            for channel in channels {
                let key = keys.next().filter(|k| !k.is_empty()).map(str::to_owned);
                match room_of(channel) {
                    // In it already: nothing to do, nothing said.
                    Some(room) if link.in_channel(&room) => {}
                    Some(room) => {
                        let context = Context::Join { channel: channel.to_owned() };
                        out.command(context, Command::Join { room, exclusive: false, key }).await?;
                    }
                    None => out.numeric("476", &[&wire_param(channel)], "Invalid channel name").await?,
                }
            }
        }
        "PART" => {
            let Some(channels) = param(0) else {
                return out.need_more("PART").await.map(|()| Flow::Go);
            };
            let channels = list(channels);
            if let Some(flow) = within(out, pacing, &channels, link.server.max_join_targets).await? {
                return Ok(flow);
            }
            let reason = param(1).map(str::to_owned);
            for channel in channels {
                match room_of(channel) {
                    Some(room) => {
                        let context = Context::Part { channel: channel.to_owned(), reason: reason.clone() };
                        out.command(context, Command::Part { room: Some(room), reason: reason.clone() }).await?;
                    }
                    None => out.numeric("403", &[&wire_param(channel)], "No such channel").await?,
                }
            }
        }
        "TOPIC" => {
            let Some(channel) = param(0) else {
                return out.need_more("TOPIC").await.map(|()| Flow::Go);
            };
            let Some(room) = room_of(channel) else {
                return out.numeric("403", &[&wire_param(channel)], "No such channel").await.map(|()| Flow::Go);
            };
            let text = message.param(1).map(str::to_owned);
            out.command(Context::Topic { channel: channel.to_owned() }, Command::Topic { room: Some(room), text })
                .await?;
        }
        "NAMES" => match param(0) {
            None => out.numeric("366", &["*"], "End of /NAMES list.").await?,
            Some(channels) => {
                let channels = list(channels);
                if let Some(flow) = within(out, pacing, &channels, MAX_NAMES).await? {
                    return Ok(flow);
                }
                for channel in channels {
                    let context = Context::Names { channel: channel.to_owned() };
                    match room_of(channel) {
                        Some(room) => out.command(context, Command::Who { room: Some(room) }).await?,
                        None => out.numeric("366", &[&wire_param(channel)], "End of /NAMES list.").await?,
                    }
                }
            }
        },
        "WHO" => {
            let Some(mask) = param(0) else {
                return out.need_more("WHO").await.map(|()| Flow::Go);
            };
            let whox = param(1).and_then(Whox::parse);
            match room_of(mask) {
                Some(room) => {
                    let context = Context::Who { mask: mask.to_owned(), whox };
                    out.command(context, Command::Who { room: Some(room) }).await?;
                }
                // Everyone is invisible: a mask finds those in the client's channels.
                None if mask.contains(['*', '?']) || mask == "0" => {
                    let opers = param(1).is_some_and(|flags| flags.contains('o') && !flags.starts_with('%'));
                    let channels = link.channels();
                    if channels.is_empty() {
                        let mask = if mask == "0" { "*" } else { mask };
                        out.numeric("315", &[&wire_param(mask)], "End of /WHO list.").await?;
                    }
                    for (i, room) in channels.iter().enumerate() {
                        let last = i + 1 == channels.len();
                        let whox = whox.clone();
                        let context = Context::WhoMask { mask: mask.to_owned(), opers, whox, last };
                        out.command(context, Command::Who { room: Some(room.to_string()) }).await?;
                    }
                }
                None => {
                    let context = Context::WhoNick { mask: mask.to_owned(), whox };
                    out.command(context, Command::Whois { nick: mask.to_owned() }).await?;
                }
            }
        }
        "WHOIS" => {
            // `WHOIS server nick` asks a given server; there is one.
            let Some(nicks) = param(1).or_else(|| param(0)) else {
                return out.need_more("WHOIS").await.map(|()| Flow::Go);
            };
            let nicks = list(nicks);
            if let Some(flow) = within(out, pacing, &nicks, MAX_TARGETS).await? {
                return Ok(flow);
            }
            for nick in nicks {
                let nick = nick.to_owned();
                out.command(Context::Whois { nick: nick.clone() }, Command::Whois { nick }).await?;
            }
        }
        "WHOWAS" => {
            let Some(nick) = param(0) else {
                return out.need_more("WHOWAS").await.map(|()| Flow::Go);
            };
            let mut lines = out.lines();
            lines.numeric("406", &[&wire_param(nick)], "There was no such nickname");
            lines.numeric("369", &[&wire_param(nick)], "End of WHOWAS");
            out.relay(lines).await?;
        }
        "LIST" => {
            let filter = ListFilter::parse(param(0).unwrap_or(""));
            out.command(Context::List { filter }, Command::Rooms).await?;
        }
        "MODE" => {
            let Some(target) = param(0) else {
                return out.need_more("MODE").await.map(|()| Flow::Go);
            };
            match room_of(target) {
                Some(room) => channel_mode(out, target, &room, &message.params[1..]).await?,
                None => user_mode(out, target, param(1)).await?,
            }
        }
        "KICK" => {
            let (Some(channel), Some(nicks)) = (param(0), param(1)) else {
                return out.need_more("KICK").await.map(|()| Flow::Go);
            };
            let Some(room) = room_of(channel) else {
                return out.numeric("403", &[&wire_param(channel)], "No such channel").await.map(|()| Flow::Go);
            };
            let nicks = list(nicks);
            if let Some(flow) = within(out, pacing, &nicks, MAX_KICKS).await? {
                return Ok(flow);
            }
            // Without a reason, the kicker's nick is the reason, as servers give it.
            let reason = Some(param(2).map_or_else(|| link.me(), str::to_owned));
            for nick in nicks {
                let action = Action::Kick { nick: nick.to_owned(), reason: reason.clone() };
                let context = Context::Kick { channel: channel.to_owned() };
                out.command(context, Command::Moderate { room: Some(room.clone()), action }).await?;
            }
        }
        "INVITE" => {
            // Without a channel: the channels one is invited into.
            let (Some(nick), Some(channel)) = (param(0), param(1)) else {
                return out.command(Context::None, Command::Invitations).await.map(|()| Flow::Go);
            };
            let Some(room) = room_of(channel) else {
                return out.numeric("403", &[&wire_param(channel)], "No such channel").await.map(|()| Flow::Go);
            };
            let context = Context::Invite { channel: channel.to_owned() };
            out.command(context, Command::Invite { nick: nick.to_owned(), room: Some(room) }).await?;
        }
        "AWAY" => {
            let text = param(0).map(str::to_owned);
            out.command(Context::Away, Command::Away { text }).await?;
        }
        "NICK" => match param(0) {
            None => out.numeric("431", &[], "No nickname given").await?,
            // The nick it has already, exactly: nothing changes, nothing is said.
            Some(nick) if nick == link.me() => {}
            Some(nick) => out.command(Context::Nick, Command::Nick { nick: nick.to_owned() }).await?,
        },
        "USERHOST" | "ISON" => {
            let ison = command == "ISON";
            let nicks: Vec<&str> = message.params.iter().flat_map(|p| p.split_whitespace()).collect();
            if nicks.is_empty() {
                return out.need_more(&command).await.map(|()| Flow::Go);
            }
            let nicks = &nicks[..nicks.len().min(if ison { MAX_ISON } else { MAX_USERHOST })];
            if let Some(flow) = pacing.targets(nicks.len()).await {
                return Ok(flow);
            }
            for (i, nick) in nicks.iter().enumerate() {
                let context = Context::Presence { ison, last: i + 1 == nicks.len() };
                out.command(context, Command::Whois { nick: (*nick).to_owned() }).await?;
            }
        }
        "MONITOR" => monitor(out, &message.params).await?,
        "SETNAME" => {
            let realname = message.param(0).unwrap_or("").trim();
            if realname.is_empty() || realname.len() > parley_hub::MAX_REASON {
                let mut lines = out.lines();
                let why = format!("The real name must be 1 to {} bytes", parley_hub::MAX_REASON);
                lines.from(&link.server.name.clone(), "FAIL", &["SETNAME", "INVALID_REALNAME"], Some(&why), "");
                return out.relay(lines).await.map(|()| Flow::Go);
            }
            link.set_realname(realname);
            let context = Context::Setname { realname: realname.to_owned() };
            out.command(context, Command::Describe { realname: realname.to_owned() }).await?;
        }
        "LUSERS" => out.command(Context::Lusers, Command::Stats).await?,
        "MOTD" => {
            let mut lines = out.lines();
            lines.motd();
            out.relay(lines).await?;
        }
        "VERSION" => {
            let mut lines = out.lines();
            let name = link.server.name.clone();
            lines.numeric("351", &[super::VERSION, &name], "Parley chat server");
            for tokens in &link.server.isupport {
                let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
                lines.numeric("005", &tokens, "are supported by this server");
            }
            out.relay(lines).await?;
        }
        "ADMIN" => {
            let mut lines = out.lines();
            let server = link.server.clone();
            lines.numeric("256", &[&server.name], "Administrative info");
            lines.numeric("257", &[], &format!("{} chat server", server.name));
            lines.numeric("258", &[], &format!("on the {} network", server.network));
            let contact = server.admin.as_deref().unwrap_or("No contact is configured");
            lines.numeric("259", &[], contact);
            out.relay(lines).await?;
        }
        "TIME" => {
            let now = chrono::Utc::now().format("%A %B %d %Y -- %H:%M:%S +00:00").to_string();
            out.numeric("391", &[&link.server.name.clone()], &now).await?;
        }
        "LINKS" => {
            let mut lines = out.lines();
            let (name, network) = (link.server.name.clone(), link.server.network.clone());
            lines.numeric("364", &[&name, &name], &format!("0 {network}"));
            lines.numeric("365", &["*"], "End of /LINKS list.");
            out.relay(lines).await?;
        }
        "OPER" => {
            let (Some(name), Some(password)) = (param(0), param(1)) else {
                return out.need_more("OPER").await.map(|()| Flow::Go);
            };
            let server = &out.link.server;
            let oper = pacing.oper.get_or_insert_with(|| {
                Box::new(OperPacing::new(out.link.address(), server.max_oper_failures, server.oper_retry))
            });
            return handle_oper(out, oper, name, password).await;
        }
        "CHATHISTORY" => chathistory(out, &message.params).await?,
        "REDACT" => redact(out, &message.params).await?,
        "MARKREAD" => markread(out, &message.params).await?,
        "PING" => {
            let Some(token) = message.param(0) else {
                return out.need_more("PING").await.map(|()| Flow::Go);
            };
            let mut lines = out.lines();
            let name = link.server.name.clone();
            lines.from(&name, "PONG", &[&name], Some(token), "");
            out.relay(lines).await?;
        }
        "PONG" => {}
        "CAP" => {
            let mut lines = out.lines();
            let mut negotiating = false;
            cap(message, link, &mut lines, &mut negotiating);
            out.relay(lines).await?;
        }
        "USER" | "PASS" => out.numeric("462", &[], "You may not reregister").await?,
        "AUTHENTICATE" => out.numeric("907", &[], "You have already registered; SASL is only before that").await?,
        // A client that did not ask for message-tags has no tags to send.
        "TAGMSG" if !link.caps.has(Cap::MessageTags) => {}
        "TAGMSG" => {
            let Some(targets) = param(0) else {
                return out.numeric("411", &[], "No recipient given (TAGMSG)").await.map(|()| Flow::Go);
            };
            if !message.tags.iter().any(|(key, _)| key.starts_with('+')) {
                return out.numeric("412", &[], "No text to send").await.map(|()| Flow::Go);
            }
            let targets = list(targets);
            if let Some(flow) = within(out, pacing, &targets, MAX_TARGETS).await? {
                return Ok(flow);
            }
            for target in targets {
                let (signal, tags) = match tags::signal(message, target) {
                    Ok(Some(signal)) => signal,
                    // Nothing the server relays: no answer, as for an empty TAGMSG elsewhere.
                    Ok(None) => continue,
                    Err(e) => return out.refuse_tags(&e).await.map(|()| Flow::Go),
                };
                let target_of = match room_of(target) {
                    Some(room) => Marked::Room(room),
                    None => Marked::With(target.to_owned()),
                };
                let context = Context::Privmsg { target: target.to_owned() };
                out.command(context, Command::Signal { target: target_of, signal, tags }).await?;
            }
        }
        "QUIT" => {
            // `QUIT :` is a reason, empty: others see `Quit: `.
            let reason = message.param(0).map(str::to_owned);
            // The answer (the closing ERROR) is the whole answer, sent now.
            let framing = out.labeled.as_ref().map(|labeled| labeled.whole(link));
            let req = link.expect_framed(Context::Quit { reason: reason.clone() }, framing);
            return session.quit(req, reason).await.map(|()| Flow::Quit).map_err(|_| Gone);
        }
        other => out.numeric("421", &[&wire_param(other)], "Unknown command").await?,
    }
    Ok(Flow::Go)
}

/// WHOX (`WHO mask %fields[,token]`): which fields a `354` reply carries, in the
/// fixed order `tcuihsnfdlaor`, and the client's token for them.
#[derive(Debug, Clone)]
pub(crate) struct Whox {
    pub(crate) fields: String,
    pub(crate) token: String,
}

impl Whox {
    /// `%fields[,token]`; `None` for anything else (a plain WHO's flags, such as `o`).
    fn parse(text: &str) -> Option<Whox> {
        let rest = text.strip_prefix('%')?;
        let (fields, token) = rest.split_once(',').unwrap_or((rest, ""));
        // A token is 1 to 3 digits, as the WHOX specification has it.
        let token = if (1..=3).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_digit()) {
            token.to_owned()
        } else {
            String::new()
        };
        Some(Whox { fields: fields.to_owned(), token })
    }

    pub(crate) fn has(&self, field: char) -> bool {
        self.fields.contains(field)
    }
}

/// What `LIST` asks for (`ELIST=MNU`): channels by name or mask (`#a`, `*dev*`), not
/// matching a mask (`!*test*`), with more (`>N`) or fewer (`<N`) users; every condition
/// must hold, and one of the names or masks match when there are any.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListFilter {
    masks: Vec<String>,
    not: Vec<String>,
    more_than: Option<usize>,
    fewer_than: Option<usize>,
}

impl ListFilter {
    pub(crate) fn parse(list: &str) -> ListFilter {
        let mut filter = ListFilter::default();
        for item in list.split(',').filter(|i| !i.is_empty()) {
            if let Some(n) = item.strip_prefix('>').and_then(|n| n.parse().ok()) {
                filter.more_than = Some(n);
            } else if let Some(n) = item.strip_prefix('<').and_then(|n| n.parse().ok()) {
                filter.fewer_than = Some(n);
            } else if let Some(mask) = item.strip_prefix('!') {
                filter.not.push(mask.to_owned());
            } else {
                filter.masks.push(item.to_owned());
            }
        }
        filter
    }

    pub(crate) fn admits(&self, channel: &str, users: usize) -> bool {
        use parley_proto::irc::mask_matches;
        self.more_than.is_none_or(|n| users > n)
            && self.fewer_than.is_none_or(|n| users < n)
            && (self.masks.is_empty() || self.masks.iter().any(|m| mask_matches(m, channel)))
            && !self.not.iter().any(|m| mask_matches(m, channel))
    }
}

/// The services a server answers for itself, as ergo's are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    /// Room registration.
    Chan,
    /// Accounts.
    Nick,
}

fn service_named(target: &str) -> Option<Service> {
    match target.to_ascii_lowercase().as_str() {
        "chanserv" => Some(Service::Chan),
        "nickserv" => Some(Service::Nick),
        _ => None,
    }
}

/// A services command (`CS REGISTER #room`, `NS IDENTIFY password`, ...): Parley's own
/// room registration and accounts, in the words IRC users know from ergo and Atheme.
async fn services(out: &Out<'_>, service: Service, words: &[&str]) -> Result<Flow, Gone> {
    let sub = words.first().map(|w| w.to_ascii_uppercase()).unwrap_or_default();
    let room = |i: usize| words.get(i).and_then(|c| room_of(c));
    let (context, command) = match (service, sub.as_str(), words.len()) {
        (Service::Chan, "REGISTER", 2) if room(1).is_some() => {
            (Context::None, Command::Moderate { room: room(1), action: Action::Register })
        }
        (Service::Chan, "UNREGISTER" | "DROP", 2) if room(1).is_some() => {
            (Context::None, Command::Moderate { room: room(1), action: Action::Unregister })
        }
        (Service::Nick, "REGISTER", 2 | 3) => (Context::None, Command::Register { password: words[1].to_owned() }),
        (Service::Nick, "IDENTIFY" | "LOGIN", 2) => {
            (Context::None, Command::Login { name: None, password: words[1].to_owned() })
        }
        (Service::Nick, "IDENTIFY" | "LOGIN", 3) => {
            (Context::None, Command::Login { name: Some(words[1].to_owned()), password: words[2].to_owned() })
        }
        (Service::Nick, "UNREGISTER" | "DROP", 2) => {
            (Context::None, Command::Unregister { password: words[1].to_owned() })
        }
        (Service::Chan, ..) => {
            let usage = "Usage: CS REGISTER #channel, CS UNREGISTER #channel";
            return service_notice(out, "ChanServ", usage).await;
        }
        (Service::Nick, ..) => {
            let usage = "Usage: NS REGISTER password, NS IDENTIFY [account] password, NS UNREGISTER password";
            return service_notice(out, "NickServ", usage).await;
        }
    };
    out.command(context, command).await.map(|()| Flow::Go)
}

async fn service_notice(out: &Out<'_>, service: &str, text: &str) -> Result<Flow, Gone> {
    let mut lines = out.lines();
    let me = out.link.me();
    lines.from(&format!("{service}!{service}@services"), "NOTICE", &[&me], Some(text), "");
    out.relay(lines).await.map(|()| Flow::Go)
}

/// `KLINE mask [duration [:reason]]` and `DLINE address ...` (InspIRCd's form: a
/// duration as `30m`, `2h`, `7d` or seconds, 0 for until lifted), and `UNKLINE mask`,
/// `UNDLINE address`: server bans, for server administrators.
async fn server_ban(out: &Out<'_>, command: &str, params: &[String]) -> Result<Flow, Gone> {
    let Some(mask) = params.first().filter(|m| !m.is_empty()) else {
        return out.need_more(command).await.map(|()| Flow::Go);
    };
    // `user@host` names a host (a nick ban is `nick!*@*`, or the nick alone).
    let mask = words::bare_mask(mask);
    let action = if command.starts_with("UN") {
        ServerAction::Unban { mask }
    } else {
        let duration = match params.get(1).map(String::as_str) {
            None | Some("0") => None,
            Some(text) => match text.parse::<u64>().ok().map(Duration::from_secs).or_else(|| line_duration(text)) {
                Some(duration) => Some(duration),
                None => {
                    let mut lines = out.lines();
                    lines.from(
                        &out.link.server.name.clone(),
                        "FAIL",
                        &[command, "INVALID_PARAMS"],
                        Some("the duration is like 30m, 2h, 7d, or seconds"),
                        "",
                    );
                    return out.relay(lines).await.map(|()| Flow::Go);
                }
            },
        };
        let reason = params.get(2).filter(|r| !r.is_empty()).cloned();
        ServerAction::Ban { mask, duration, reason }
    };
    out.command(Context::None, Command::ServerModerate { action }).await.map(|()| Flow::Go)
}

/// `OPER name password`. Every failure reads the same, whether the name is unknown or
/// the password wrong (InspIRCd's `491 Invalid oper credentials`), is logged with the
/// client's address, and makes the next attempt on this connection wait longer; too
/// many close the connection.
async fn handle_oper(out: &Out<'_>, pacing: &mut OperPacing, name: &str, password: &str) -> Result<Flow, Gone> {
    if let Some(at) = pacing.ready_at() {
        tokio::time::sleep_until(at).await;
    }
    // Every configured password is compared, so that the time taken does not tell
    // whether the name exists.
    let matched = out.link.server.opers.iter().fold(false, |matched, oper| {
        let right = super::same_secret(&oper.password, password);
        matched | (oper.name == name && right)
    });
    if matched {
        out.command(Context::Oper, Command::Oper).await?;
        return Ok(Flow::Go);
    }
    let goes_on = pacing.failed(Instant::now());
    tracing::warn!(peer = ?pacing.peer, name = ?name, failures = pacing.failures(), "failed OPER attempt");
    out.numeric("491", &[], "Invalid oper credentials").await?;
    if goes_on {
        Ok(Flow::Go)
    } else {
        Ok(Flow::Close { told: "Too many failed OPER attempts", others: "too many failed OPER attempts" })
    }
}

async fn user_mode(out: &Out<'_>, target: &str, changes: Option<&str>) -> Result<(), Gone> {
    let me = out.link.me();
    if !target.eq_ignore_ascii_case(&me) {
        // 401 for nobody, 502 for someone else: the hub knows which.
        let context = Context::UserMode { nick: target.to_owned() };
        return out.command(context, Command::Whois { nick: target.to_owned() }).await;
    }
    let Some(changes) = changes else {
        let mut lines = out.lines();
        lines.data("221", &[out.link.user_modes()]);
        return out.relay(lines).await;
    };
    // Users are invisible already: nobody outside a shared channel can list them. So `+i`
    // is always on, `+o` comes with OPER, and other user modes are not offered.
    let unknown = changes.chars().find(|c| !matches!(c, '+' | '-' | 'i' | 'o'));
    match unknown {
        Some(letter) => out.numeric("501", &[&letter.to_string()], "is not a recognised user mode.").await,
        None => Ok(()),
    }
}

/// `MODE #channel [changes [arguments]]`: a query, the ban list, or changes. Operator
/// and ban changes are moderation (durable, audited); the rest one hub command.
async fn channel_mode(out: &Out<'_>, channel: &str, room: &str, rest: &[String]) -> Result<(), Gone> {
    let Some(changes) = rest.first().filter(|c| !c.is_empty()) else {
        let context = Context::Mode { channel: channel.to_owned(), letter: '?', target: String::new() };
        return out.command(context, Command::Modes { room: room.to_owned() }).await;
    };
    let mut arguments = rest[1..].iter();
    let mut set = true;
    let mut settings = Vec::new();
    let mut with_argument = 0;
    for letter in changes.chars() {
        let context = |target: &str| Context::Mode { channel: channel.to_owned(), letter, target: target.to_owned() };
        match letter {
            '+' => set = true,
            '-' => set = false,
            'o' | 'v' | 'b' | 'k' | 'l' => {
                let needs = letter != 'l' || set;
                let argument = if needs { arguments.next().cloned() } else { None };
                if needs {
                    with_argument += 1;
                    if with_argument > MAX_MODES {
                        break;
                    }
                }
                match (letter, argument) {
                    ('b', None) => {
                        out.command(context(""), Command::Bans { room: room.to_owned() }).await?;
                    }
                    ('o', Some(nick)) => {
                        let action =
                            if set { Action::Op { nick: nick.clone() } } else { Action::Deop { nick: nick.clone() } };
                        out.command(context(&nick), Command::Moderate { room: Some(room.to_owned()), action }).await?;
                    }
                    ('b', Some(mask)) => {
                        let action = if set {
                            Action::Ban { mask: words::bare_mask(&mask), duration: None, reason: None }
                        } else {
                            Action::Unban { mask: words::bare_mask(&mask) }
                        };
                        out.command(context(&mask), Command::Moderate { room: Some(room.to_owned()), action }).await?;
                    }
                    ('v', Some(nick)) => match Nick::parse(&nick, usize::MAX) {
                        Ok(nick) => settings.push(ModeChange { set, mode: RoomMode::Voice(nick) }),
                        Err(_) => out.numeric("401", &[&wire_param(&nick)], "No such nick/channel").await?,
                    },
                    ('k', key) if !set => {
                        settings.push(ModeChange { set, mode: RoomMode::Key(key.unwrap_or_default()) })
                    }
                    ('k', Some(key)) => settings.push(ModeChange { set, mode: RoomMode::Key(key) }),
                    ('l', None) if !set => settings.push(ModeChange { set, mode: RoomMode::Limit(0) }),
                    ('l', Some(limit)) => match limit.parse::<usize>() {
                        Ok(limit) if limit > 0 => settings.push(ModeChange { set, mode: RoomMode::Limit(limit) }),
                        _ => {
                            let params = [channel, "l", &wire_param(&limit)];
                            out.numeric("696", &params, "The limit must be a number above 0").await?;
                        }
                    },
                    (letter, None) => {
                        let params = [channel, &letter.to_string(), "*"];
                        out.numeric("696", &params, "This mode needs a parameter").await?;
                    }
                    _ => {}
                }
            }
            'm' => settings.push(ModeChange { set, mode: RoomMode::Moderated }),
            's' => settings.push(ModeChange { set, mode: RoomMode::Secret }),
            'p' => settings.push(ModeChange { set, mode: RoomMode::Private }),
            't' => settings.push(ModeChange { set, mode: RoomMode::TopicLocked }),
            'i' => settings.push(ModeChange { set, mode: RoomMode::InviteOnly }),
            // Messages only come from members: +n is always on.
            'n' if set => {}
            'n' => out.numeric("472", &["n"], "is always set: only members may send to a channel").await?,
            other => out.numeric("472", &[&other.to_string()], "is an unknown mode char to me").await?,
        }
    }
    if !settings.is_empty() {
        let context = Context::Mode { channel: channel.to_owned(), letter: '*', target: String::new() };
        out.command(context, Command::Mode { room: room.to_owned(), changes: settings }).await?;
    }
    Ok(())
}

/// `MARKREAD target [timestamp=…]` (draft/read-marker): moves the read marker of a
/// channel or a conversation forward, or asks where it is.
async fn markread(out: &Out<'_>, params: &[String]) -> Result<(), Gone> {
    let Some(target) = params.first() else {
        return out.need_more("MARKREAD").await;
    };
    let at = match params.get(1) {
        None => None,
        Some(marker) => {
            let at = marker.strip_prefix("timestamp=").and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            let Some(at) = at else {
                let mut lines = out.lines();
                let server = out.link.server.name.clone();
                let params = ["MARKREAD", "INVALID_PARAMS", &wire_param(target)];
                lines.from(&server, "FAIL", &params, Some("The marker must be timestamp=YYYY-MM-DDThh:mm:ss.sssZ"), "");
                return out.relay(lines).await;
            };
            Some(at.with_timezone(&chrono::Utc))
        }
    };
    let marked = match room_of(target) {
        Some(room) => Marked::Room(room),
        None => Marked::With(target.clone()),
    };
    out.command(Context::MarkRead { target: target.clone() }, Command::MarkRead { target: marked, at }).await
}

/// `MONITOR + nick,nick…`, `MONITOR - nick,nick…`, `MONITOR C`, `MONITOR L` and
/// `MONITOR S` (IRCv3 monitor): the session's watch list, which the hub keeps and
/// answers from (`730`–`734`); its size is `MONITOR=` in `005`.
async fn monitor(out: &Out<'_>, params: &[String]) -> Result<(), Gone> {
    let Some(sub) = params.first().filter(|s| !s.is_empty()) else {
        return out.need_more("MONITOR").await;
    };
    let nicks = params.get(1).filter(|t| !t.is_empty()).map(|t| list(t).into_iter().map(str::to_owned).collect());
    let watch = match (sub.to_ascii_uppercase().as_str(), nicks) {
        ("+", Some(nicks)) => Watch::Add(nicks),
        ("-", Some(nicks)) => Watch::Remove(nicks),
        ("+" | "-", None) => return out.need_more("MONITOR").await,
        ("C", _) => Watch::Clear,
        ("L", _) => Watch::List,
        ("S", _) => Watch::Status,
        _ => return out.numeric("400", &["MONITOR", &wire_param(sub)], "Unknown subcommand").await,
    };
    out.command(Context::None, Command::Watch(watch)).await
}

/// `REDACT #channel msgid [:reason]` (draft/message-redaction): deletes a message of a
/// channel by its msgid (`room/seq`, as the server tagged it).
async fn redact(out: &Out<'_>, params: &[String]) -> Result<(), Gone> {
    let [target, msgid, rest @ ..] = params else {
        return out.need_more("REDACT").await;
    };
    let fail = |code: &str, text: &str| {
        let mut lines = out.lines();
        let server = out.link.server.name.clone();
        lines.from(&server, "FAIL", &["REDACT", code, &wire_param(target), &wire_param(msgid)], Some(text), "");
        lines
    };
    let Some(room) = room_of(target) else {
        return out.relay(fail("INVALID_TARGET", "Only channel messages can be deleted")).await;
    };
    // A msgid names its room: one of another channel is unknown in this one.
    let seq = msgid
        .rsplit_once('/')
        .filter(|(of, _)| of.eq_ignore_ascii_case(&room))
        .and_then(|(_, seq)| seq.parse::<u64>().ok());
    let Some(seq) = seq else {
        return out.relay(fail("UNKNOWN_MSGID", "This channel has no such message")).await;
    };
    let reason = rest.first().filter(|r| !r.is_empty()).cloned();
    let context = Context::Redact { channel: target.clone(), msgid: msgid.clone() };
    out.command(context, Command::Delete { room: Some(room), seq, reason }).await
}

/// `CHATHISTORY LATEST|BEFORE|AFTER|AROUND target ref limit`, `BETWEEN target ref ref
/// limit` and `TARGETS timestamp= timestamp= limit`, with `msgid=` (this server's
/// `room/seq`, `pm/seq`) and `timestamp=` references (`MSGREFTYPES=msgid,timestamp`).
async fn chathistory(out: &Out<'_>, params: &[String]) -> Result<(), Gone> {
    let fail = |code: &str, sub: &str, target: &str, text: &str| {
        let mut lines = out.lines();
        let server = out.link.server.name.clone();
        lines.from(&server, "FAIL", &["CHATHISTORY", code, sub, &wire_param(target)], Some(text), "");
        lines
    };
    let [sub, target, rest @ ..] = params else {
        return out.need_more("CHATHISTORY").await;
    };
    let sub = sub.to_ascii_uppercase();
    let wanted = match sub.as_str() {
        // TARGETS's "target" is its window's first timestamp.
        "BETWEEN" => 2,
        "LATEST" | "BEFORE" | "AFTER" | "AROUND" | "TARGETS" => 1,
        _ => {
            let why = "LATEST, BEFORE, AFTER, AROUND, BETWEEN and TARGETS are supported";
            return out.relay(fail("INVALID_PARAMS", &sub, target, why)).await;
        }
    };
    let (Some(references), Some(limit)) = (rest.get(..wanted), rest.get(wanted)) else {
        return out.need_more("CHATHISTORY").await;
    };
    let Ok(limit) = limit.parse::<usize>() else {
        return out.relay(fail("INVALID_PARAMS", &sub, target, "the limit must be a number")).await;
    };
    if sub == "TARGETS" {
        let window = [target, &references[0]].map(|r| point(r, None));
        let (Some(Some(Point::Time(a))), Some(Some(Point::Time(b)))) = (window[0], window[1]) else {
            return out.relay(fail("INVALID_PARAMS", &sub, target, "TARGETS takes two timestamp= references")).await;
        };
        let (from, to) = if a <= b { (a, b) } else { (b, a) };
        let context = Context::ChatHistory { sub, target: target.clone() };
        return out.command(context, Command::ChatTargets { from, to, limit }).await;
    }
    let room = room_of(target);
    // A msgid names its room (or `pm`): one of another target is not a reference here.
    let scope = room.as_deref().unwrap_or("pm");
    let mut points = Vec::with_capacity(wanted);
    for reference in references {
        match point(reference, Some(scope)) {
            Some(found) => points.push(found),
            None => {
                let why = "references are * (LATEST only), msgid= of this target, or timestamp=";
                return out.relay(fail("INVALID_PARAMS", &sub, target, why)).await;
            }
        }
    }
    let query = match (sub.as_str(), points.as_slice()) {
        ("LATEST", [latest]) => HistoryQuery::Latest(*latest),
        ("BEFORE", [Some(p)]) => HistoryQuery::Before(*p),
        ("AFTER", [Some(p)]) => HistoryQuery::After(*p),
        ("AROUND", [Some(p)]) => HistoryQuery::Around(*p),
        ("BETWEEN", [Some(a), Some(b)]) => HistoryQuery::Between(*a, *b),
        _ => return out.relay(fail("INVALID_PARAMS", &sub, target, "* is a reference for LATEST only")).await,
    };
    let marked = match room {
        Some(room) => Marked::Room(room),
        None => Marked::With(target.clone()),
    };
    let context = Context::ChatHistory { sub, target: target.clone() };
    out.command(context, Command::ChatHistory { target: marked, query, limit }).await
}

/// A CHATHISTORY reference: `Some(None)` for `*`, a message of `scope` (a room, or
/// `pm`) by `msgid=`, or an instant by `timestamp=`; `None` when it is none of these.
fn point(reference: &str, scope: Option<&str>) -> Option<Option<Point>> {
    if reference == "*" {
        return Some(None);
    }
    if let Some(at) = reference.strip_prefix("timestamp=") {
        let at = chrono::DateTime::parse_from_rfc3339(at).ok()?;
        return Some(Some(Point::Time(at.with_timezone(&chrono::Utc))));
    }
    let (of, seq) = reference.strip_prefix("msgid=")?.rsplit_once('/')?;
    let same = match scope? {
        "pm" => of == "pm",
        room => RoomName::parse(of, usize::MAX).is_ok_and(|of| RoomName::parse(room, usize::MAX).ok() == Some(of)),
    };
    same.then(|| seq.parse::<u64>().ok().map(|seq| Some(Point::Seq(seq))))?
}
