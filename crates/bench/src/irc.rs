//! The IRC side of the benchmark's peer: the few lines it sends and a parser for the few
//! it reads. The parser runs once per delivery, so it only slices the line: no
//! allocation, no full RFC 1459 message model, and everything it does not need (tags,
//! the source, most commands) is skipped rather than understood.

use bytes::BufMut;

/// The most bytes one IRC line may have, CR LF included (RFC 1459 §2.3).
pub(crate) const MAX_LINE: usize = 512;

/// What one line from an IRC server means to the benchmark.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// `PING <token>`: must be answered with `PONG <token>`, at any time, or the
    /// server drops us. The token is everything after the command, as sent.
    Ping(&'a [u8]),
    /// `001`: registration is complete.
    Welcome,
    /// `366 <me> <channel> :End of /NAMES list`: the join of that channel is complete.
    EndOfNames(&'a [u8]),
    /// `PRIVMSG <target> :<text>` from someone.
    Privmsg {
        /// The channel (or our nick).
        target: &'a [u8],
        /// The message text.
        text: &'a [u8],
    },
    /// A refusal that ends registration or a join: `ERROR`, or a numeric such as 433
    /// (nickname in use), 465 (banned) or 471 (channel full). Holds the whole line.
    Refused(&'a [u8]),
    /// Anything else (notices, other numerics, JOIN and QUIT of other clients, …).
    Other,
}

/// Numerics that mean our registration or join failed. Others in the 4xx range (say,
/// 421 unknown command) are answers to something we did not need and are ignored.
const REFUSALS: &[&[u8]] = &[
    b"263", // RPL_TRYAGAIN: the server is throttling
    b"403", // ERR_NOSUCHCHANNEL
    b"405", // ERR_TOOMANYCHANNELS
    b"432", // ERR_ERRONEUSNICKNAME
    b"433", // ERR_NICKNAMEINUSE
    b"436", // ERR_NICKCOLLISION
    b"437", // ERR_UNAVAILRESOURCE
    b"451", // ERR_NOTREGISTERED
    b"465", // ERR_YOUREBANNEDCREEP
    b"471", // ERR_CHANNELISFULL
    b"473", // ERR_INVITEONLYCHAN
    b"474", // ERR_BANNEDFROMCHAN
    b"475", // ERR_BADCHANNELKEY
    b"477", // ERR_NEEDREGGEDNICK
];

/// Splits off the first space-separated word; the rest starts after the spaces.
fn word(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().position(|b| *b == b' ') {
        Some(at) => {
            let rest = &s[at..];
            let skip = rest.iter().take_while(|b| **b == b' ').count();
            (&s[..at], &rest[skip..])
        }
        None => (s, &[]),
    }
}

/// Reads one line (without its `\n`; a trailing `\r` is ignored).
pub(crate) fn parse(line: &[u8]) -> Line<'_> {
    let mut rest = line.strip_suffix(b"\r").unwrap_or(line);
    // IRCv3 message tags, then the source: neither matters here.
    if rest.first() == Some(&b'@') {
        rest = word(rest).1;
    }
    if rest.first() == Some(&b':') {
        rest = word(rest).1;
    }
    let (command, params) = word(rest);
    match command {
        b"PRIVMSG" => {
            let (target, text) = word(params);
            Line::Privmsg { target, text: text.strip_prefix(b":").unwrap_or(text) }
        }
        b"PING" => Line::Ping(params),
        b"001" => Line::Welcome,
        b"366" => Line::EndOfNames(word(word(params).1).0),
        b"ERROR" => Line::Refused(line),
        _ if REFUSALS.contains(&command) => Line::Refused(line),
        _ => Line::Other,
    }
}

/// `NICK` and `USER`: the whole registration of a client without a password or CAP.
/// The user name is the same for every client: servers judge user names by rules of
/// their own (ircd-hybrid refuses the `_` of the generator's nicks), and need not keep
/// them distinct.
pub(crate) fn register(nick: &str, out: &mut impl BufMut) {
    out.put_slice(format!("NICK {nick}\r\nUSER bench 0 * :parley bench\r\n").as_bytes());
}

/// `PRIVMSG <channel> :<text>`.
pub(crate) fn privmsg(channel: &str, text: &str, out: &mut impl BufMut) {
    out.put_slice(b"PRIVMSG ");
    out.put_slice(channel.as_bytes());
    out.put_slice(b" :");
    out.put_slice(text.as_bytes());
    out.put_slice(b"\r\n");
}

/// Bytes a `PRIVMSG` to `channel` adds around its text.
pub(crate) fn privmsg_overhead(channel: &str) -> usize {
    "PRIVMSG  :\r\n".len() + channel.len()
}

#[cfg(test)]
mod tests {
    use super::{parse, privmsg, privmsg_overhead, register, Line};

    #[test]
    fn privmsgs_parse_with_and_without_tags_and_source() {
        let text = Line::Privmsg { target: b"#lobby", text: b"bench 1 2 3" };
        assert_eq!(parse(b":b1x2!b1x2@127.0.0.1 PRIVMSG #lobby :bench 1 2 3\r"), text);
        assert_eq!(parse(b"@time=2026-01-01T00:00:00Z :b1!u@h PRIVMSG #lobby :bench 1 2 3"), text);
        assert_eq!(parse(b"PRIVMSG #lobby :bench 1 2 3"), text);
        assert_eq!(parse(b":n!u@h PRIVMSG #lobby word"), Line::Privmsg { target: b"#lobby", text: b"word" });
    }

    #[test]
    fn registration_lines_parse() {
        assert_eq!(parse(b":irc.local 001 b1 :Welcome to the network\r"), Line::Welcome);
        assert_eq!(parse(b"PING :irc.local\r"), Line::Ping(b":irc.local"));
        assert_eq!(parse(b":srv PING 12345"), Line::Ping(b"12345"));
        assert_eq!(parse(b":srv 366 b1 #lobby :End of /NAMES list."), Line::EndOfNames(b"#lobby"));
        assert!(matches!(parse(b":srv 433 * b1 :Nickname is already in use"), Line::Refused(_)));
        assert!(matches!(parse(b"ERROR :Closing link: (b1@127.0.0.1) [Registration timeout]"), Line::Refused(_)));
        assert_eq!(parse(b":srv 421 b1 FOO :Unknown command"), Line::Other);
        assert_eq!(parse(b":b2!u@h JOIN :#lobby"), Line::Other);
    }

    #[test]
    fn odd_lines_do_not_panic() {
        for line in [&b""[..], b"@", b":", b"@tags", b": ", b"PRIVMSG", b"366", b"  ", b"\r", b"@a :b"] {
            let _ = parse(line);
        }
    }

    #[test]
    fn lines_are_built_as_the_server_expects() {
        let mut out = Vec::new();
        register("b1", &mut out);
        privmsg("#lobby", "hi", &mut out);
        assert_eq!(out, b"NICK b1\r\nUSER bench 0 * :parley bench\r\nPRIVMSG #lobby :hi\r\n");
        assert_eq!(privmsg_overhead("#lobby") + 2, "PRIVMSG #lobby :hi\r\n".len());
    }
}
