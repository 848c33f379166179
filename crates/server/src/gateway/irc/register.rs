//! Registration: `CAP` negotiation, `PASS`, `NICK`, `USER` and SASL PLAIN, until the hub
//! accepts the session. Until then there is no outbox writer: the driver writes the
//! answers straight to the socket.

use base64::Engine as _;
use bytes::BytesMut;
use parley_hub::{HubError, Nick, Verified};
use parley_proto::irc::Message;

use super::caps::{self, Cap};
use super::commands::{closing, Read};
use super::wire::Lines;
use super::{Context, Link};
use crate::gateway::{Connect, Dialogue, Ending};
use crate::server::Shared;

/// SASL payloads come in chunks of this many base64 characters; a shorter chunk (or
/// `+`) ends the payload.
const SASL_CHUNK: usize = 400;

/// The most a SASL PLAIN payload may be, base64 included: a nick, an account and a
/// password with room to spare.
const SASL_MAX: usize = 2048;

/// What the client has told us so far.
#[derive(Default)]
pub(super) struct Pending {
    nick: Option<String>,
    realname: Option<String>,
    password: Option<String>,
    /// In `CAP` negotiation: registration waits for `CAP END`.
    negotiating: bool,
    /// SASL: the mechanism chosen, and the payload gathered so far.
    sasl: Option<String>,
    verified: Option<Verified>,
}

impl Pending {
    /// The real name given with `USER`, once registered.
    pub(super) fn take_realname(&mut self) -> String {
        self.realname.take().unwrap_or_default()
    }
}

/// One line of registration; what to answer goes into `out`.
pub(super) async fn step(
    read: Read,
    pending: &mut Pending,
    link: &Link,
    out: &mut BytesMut,
    shared: &Shared,
) -> Dialogue {
    let server = link.server.clone();
    let message = match read {
        Read::Message(message) => message,
        Read::Refused(bytes) => {
            out.extend_from_slice(&bytes);
            return Dialogue::Continue;
        }
    };
    let mut lines = Lines::new(link);
    let command = message.command.to_ascii_uppercase();
    match command.as_str() {
        "CAP" => cap(&message, link, &mut lines, &mut pending.negotiating),
        "PASS" => match message.param(0) {
            Some(password) => pending.password = Some(password.to_owned()),
            None => lines.numeric("461", &["PASS"], "Not enough parameters"),
        },
        "NICK" => match message.param(0).filter(|n| !n.is_empty()) {
            None => lines.numeric("431", &[], "No nickname given"),
            Some(nick) => match Nick::parse(nick, server.max_nick) {
                // Taken now is told now, as servers do (registering checks again); but
                // a client logging in with SASL takes its account's nick from whoever
                // has it, so it is told only if registering fails.
                Ok(_) => match shared.hub.nick_free(nick).await {
                    Err(HubError::NickTaken(_)) if !link.caps.has(Cap::Sasl) => {
                        lines.numeric("433", &[&super::wire_param(nick)], "Nickname is already in use");
                    }
                    _ => {
                        link.set_me(nick);
                        pending.nick = Some(nick.to_owned());
                    }
                },
                Err(_) => lines.numeric("432", &[&super::wire_param(nick)], "Erroneous nickname"),
            },
        },
        // `USER username mode unused :real name`: the user name as servers show it
        // (`~`-prefixed, cut to USERLEN, see `hosts::username`), and a real name that
        // must not be empty.
        "USER" => match (message.params.first(), message.params.get(3).map(|r| r.trim())) {
            (Some(username), Some(realname)) if !realname.is_empty() => {
                link.set_user(&crate::hosts::username(username));
                link.set_realname(realname);
                pending.realname = Some(realname.to_owned());
            }
            _ => lines.numeric("461", &["USER"], "Not enough parameters"),
        },
        "AUTHENTICATE" => {
            if let Some(verified) = authenticate(&message, link, &mut lines, pending, shared).await {
                pending.verified = Some(verified);
            }
        }
        "PING" => {
            let token = message.param(0).unwrap_or("");
            let name = server.name.clone();
            lines.from(&name, "PONG", &[&name], Some(token), "");
        }
        "PONG" => {}
        "QUIT" => {
            out.extend_from_slice(&closing(link, "Client quit"));
            return Dialogue::End(Ending::Quit);
        }
        other => lines.numeric("451", &[&super::wire_param(other)], "You have not registered"),
    }
    out.extend_from_slice(lines.text.as_bytes());

    let (Some(nick), Some(_), false) = (&pending.nick, &pending.realname, pending.negotiating) else {
        return Dialogue::Continue;
    };
    if let Some(expected) = &server.password {
        if !pending.password.as_deref().is_some_and(|given| super::same_secret(expected, given)) {
            let mut lines = Lines::new(link);
            lines.numeric("464", &[], "Password incorrect");
            out.extend_from_slice(lines.text.as_bytes());
            out.extend_from_slice(&closing(link, "Bad password"));
            return Dialogue::End(Ending::ServerClosed);
        }
    }
    let req = link.expect(Context::None);
    Dialogue::Connect(match pending.verified.take() {
        Some(verified) => Connect::Verified { verified, req },
        None => Connect::Nick { nick: nick.clone(), password: None, req },
    })
}

/// The hub refused the session: words why; true when the client may try another nick.
pub(super) fn refused(error: &HubError, pending: &mut Pending, link: &Link, out: &mut BytesMut) -> bool {
    let mut lines = Lines::new(link);
    match error {
        HubError::ServerBanned { reason } => {
            let why = reason.as_ref().map_or_else(|| "K-lined".to_owned(), |r| format!("K-lined: {r}"));
            lines.numeric("465", &[], &format!("You are banned from this server ({why})"));
            out.extend_from_slice(lines.text.as_bytes());
            out.extend_from_slice(&closing(link, &why));
            false
        }
        HubError::NickTaken(nick) | HubError::NickRegistered(nick) => {
            lines.numeric("433", &[nick], "Nickname is already in use");
            out.extend_from_slice(lines.text.as_bytes());
            pending.nick = None;
            true
        }
        HubError::InvalidNick { nick, .. } => {
            lines.numeric("432", &[&super::wire_param(nick)], "Erroneous nickname");
            out.extend_from_slice(lines.text.as_bytes());
            pending.nick = None;
            true
        }
        e => {
            out.extend_from_slice(&closing(link, &crate::gateway::words::error(e)));
            false
        }
    }
}

/// `CAP LS|LIST|REQ|END`, before or after registration.
pub(super) fn cap(message: &Message, link: &Link, lines: &mut Lines<'_>, negotiating: &mut bool) {
    let me = link.me();
    let server = link.server.name.clone();
    let sub = message.param(0).unwrap_or("").to_ascii_uppercase();
    match sub.as_str() {
        "LS" => {
            *negotiating = true;
            let values = message.param(1).and_then(|v| v.parse::<u32>().ok()).is_some_and(|v| v >= 302);
            if values {
                link.caps.set(Cap::Notify, true);
            }
            let list: Vec<String> =
                Cap::ALL.iter().map(|cap| if values { cap.advertised() } else { cap.name().to_owned() }).collect();
            lines.from(&server, "CAP", &[&me, "LS"], Some(&list.join(" ")), "");
        }
        "LIST" => {
            let list: Vec<&str> = Cap::ALL.iter().filter(|cap| link.caps.has(**cap)).map(|cap| cap.name()).collect();
            lines.from(&server, "CAP", &[&me, "LIST"], Some(&list.join(" ")), "");
        }
        "REQ" => {
            *negotiating = true;
            let list = message.param(1).unwrap_or("");
            let verdict = if caps::request(&link.caps, list) { "ACK" } else { "NAK" };
            lines.from(&server, "CAP", &[&me, verdict], Some(list), "");
        }
        "END" => *negotiating = false,
        "" => lines.numeric("461", &["CAP"], "Not enough parameters"),
        _ => lines.numeric("410", &[&super::wire_param(&sub)], "Invalid CAP command"),
    }
}

/// One `AUTHENTICATE` line: choosing PLAIN, a chunk of its payload, or `*` to abort.
/// Returns the verified account once a whole payload checks out.
async fn authenticate(
    message: &Message,
    link: &Link,
    lines: &mut Lines<'_>,
    pending: &mut Pending,
    shared: &Shared,
) -> Option<Verified> {
    let argument = message.param(0).unwrap_or("");
    if !link.caps.has(Cap::Sasl) {
        lines.numeric("904", &[], "SASL authentication failed: request the sasl capability first");
        return None;
    }
    if pending.verified.is_some() {
        lines.numeric("907", &[], "You have already authenticated using SASL");
        return None;
    }
    if argument == "*" {
        pending.sasl = None;
        lines.numeric("906", &[], "SASL authentication aborted");
        return None;
    }
    let Some(gathered) = pending.sasl.as_mut() else {
        if argument.eq_ignore_ascii_case("PLAIN") {
            pending.sasl = Some(String::new());
            lines.text.push_str("AUTHENTICATE +\r\n");
        } else {
            lines.numeric("908", &["PLAIN"], "are available SASL mechanisms");
            lines.numeric("904", &[], "SASL authentication failed");
        }
        return None;
    };
    if argument != "+" {
        gathered.push_str(argument);
    }
    if gathered.len() > SASL_MAX {
        pending.sasl = None;
        lines.numeric("905", &[], "SASL message too long");
        return None;
    }
    if argument.len() == SASL_CHUNK {
        return None;
    }
    let payload = pending.sasl.take().unwrap_or_default();
    let Some((account, password)) = plain_credentials(&payload) else {
        lines.numeric("904", &[], "SASL authentication failed");
        return None;
    };
    match shared.hub.verify(&account, password, link.address()).await {
        Ok(verified) => {
            let account = verified.account().to_string();
            link.set_account(verified.account().clone().into());
            let who = link.source();
            lines.numeric("900", &[&who, &account], &format!("You are now logged in as {account}"));
            lines.numeric("903", &[], "SASL authentication successful");
            Some(verified)
        }
        Err(e @ (HubError::TooManyAttempts { .. } | HubError::ServerBanned { .. } | HubError::Busy)) => {
            lines.numeric("904", &[], &format!("SASL authentication failed: {}", crate::gateway::words::error(&e)));
            None
        }
        Err(_) => {
            lines.numeric("904", &[], "SASL authentication failed");
            None
        }
    }
}

/// The account and password in a SASL PLAIN payload (`authzid\0authcid\0password`,
/// base64); the authorization identity, when given, must be the account.
fn plain_credentials(payload: &str) -> Option<(String, String)> {
    let decoded = base64::engine::general_purpose::STANDARD.decode(payload).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let mut parts = text.split('\0');
    let (authzid, authcid, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || authcid.is_empty() || password.is_empty() {
        return None;
    }
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(authcid) {
        return None;
    }
    Some((authcid.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_payloads_are_read_and_checked() {
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        assert_eq!(plain_credentials(&encode("\0alice\0secret")), Some(("alice".into(), "secret".into())));
        assert_eq!(plain_credentials(&encode("alice\0alice\0secret")), Some(("alice".into(), "secret".into())));
        assert_eq!(plain_credentials(&encode("bob\0alice\0secret")), None, "no acting as someone else");
        assert_eq!(plain_credentials(&encode("\0alice\0")), None);
        assert_eq!(plain_credentials("not base64!"), None);
    }
}
