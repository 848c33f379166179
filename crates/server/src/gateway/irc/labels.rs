//! IRCv3 `labeled-response`: a client that enabled it (and `batch`) may tag a line with
//! `@label=…`, and the answer to that line carries the label: on its one line, on the
//! opening `BATCH` of a `labeled-response` batch around its lines, or on an `ACK` when
//! the line is answered by nothing.
//!
//! A line is answered in parts: the hub's answers to the commands it became (each under
//! its [`RequestId`](parley_hub::RequestId)) and lines the reader wrote itself. The
//! reader holds a labeled line's latest part back until it knows whether another
//! follows ([`Labeled`]), so every part is sent knowing how it is framed:
//!
//! - a part that is the whole answer is framed where its lines are written
//!   ([`Framing::Alone`]: by the wire for a hub answer, by the reader for its own lines);
//! - parts of an answer in several parts are all answers of the hub, so that the wire
//!   writes each in order ([`Framing::Part`]; the reader's own lines ride on a `Ping`'s
//!   answer). The batch opens with the first part that has a line, and the last part
//!   closes it; when no part before the last had a line, the last frames the whole
//!   answer alone (an `ACK`, its one line tagged). Which batches are open is what the
//!   session was told, so [`super::wire::IrcWire`] records it in `told`;
//! - no part at all is an `ACK`.
//!
//! Only the lines of the answers are framed, so whatever else reaches the session
//! meanwhile (others' messages, events its own command caused for everyone, such as the
//! `MODE` line of a mode change) arrives untagged and outside the batch. Framing is
//! applied to an answer's finished lines, never inside the encoding of shared events,
//! which stays the same for every session of a capability profile.

use std::sync::Mutex;

use parley_hub::Command;
use parley_proto::irc::{escape_tag_value, Message};

use super::caps::Cap;
use super::{lock, Context, Link};

/// The longest label accepted, in bytes (the specification's limit). A longer or empty
/// one is ignored and the line answered as if it had none, as InspIRCd does.
const MAX_LABEL: usize = 64;

/// The label a line carries, when its client asked for labeled responses (which need
/// `batch` too, as the specification says and InspIRCd requires).
pub(super) fn label_of(message: &Message, link: &Link) -> Option<String> {
    if !link.caps.has(Cap::LabeledResponse) || !link.caps.has(Cap::Batch) {
        return None;
    }
    let (_, value) = message.tags.iter().find(|(key, _)| key == "label")?;
    value.as_ref().filter(|label| !label.is_empty() && label.len() <= MAX_LABEL).cloned()
}

/// How the lines of one part of a labeled answer are framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Framing {
    /// The whole answer: an `ACK` when it has no line, the label on its line when it has
    /// one, else a `labeled-response` batch named `batch` (or, when the lines are one
    /// batch already, as a CHATHISTORY answer is, the label on its opening line).
    Alone { label: String, batch: String },
    /// One part of an answer in several, whose batch is `batch`; `own` holds the lines
    /// the reader wrote for it (the part is then a `Ping`, whose answer says nothing).
    Part { label: String, batch: String, last: bool, own: String },
}

/// One part of the answer to a line: a hub command (answered later, in order) or lines
/// the reader wrote itself.
pub(super) enum Piece {
    Command(Context, Command),
    Relay(String),
}

/// A labeled line being turned into parts: the reader gives each part to [`Labeled::take`]
/// and sends what it returns, in order, then what [`Labeled::finish`] returns.
pub(super) struct Labeled {
    label: String,
    /// What has been decided so far. A mutex only because the reader's future must be
    /// `Send`; one task uses it, and never across an `.await`.
    held: Mutex<Held>,
}

enum Held {
    /// No part yet.
    Nothing,
    /// One part, held until the next part or the end says whether it is the whole answer.
    One(Piece),
    /// Several parts, named `batch`: the latest is held until the next or the end says
    /// whether it is the last.
    Group(String, Piece),
    /// Answered already (a QUIT, whose answer ends the session).
    Done,
}

/// A part to send now and how to frame it (`None`: as it is).
pub(super) type Outgoing = (Piece, Option<Framing>);

impl Labeled {
    pub(super) fn new(label: String) -> Labeled {
        Labeled { label, held: Mutex::new(Held::Nothing) }
    }

    /// What to send now that the line has produced `piece`.
    pub(super) fn take(&self, piece: Piece, link: &Link) -> Vec<Outgoing> {
        // A part that never writes a line (a USERHOST nick but the last) is no part of
        // the answer: its place among the held ones cannot show.
        if let Piece::Command(context, _) = &piece {
            if silent(context) {
                return vec![(piece, None)];
            }
        }
        let mut held = lock(&self.held);
        match std::mem::replace(&mut *held, Held::Nothing) {
            Held::Nothing => {
                *held = Held::One(piece);
                Vec::new()
            }
            Held::One(earlier) => {
                let batch = link.batch_ref();
                let part = self.part(&batch, false);
                *held = Held::Group(batch, piece);
                vec![(earlier, Some(part))]
            }
            Held::Group(batch, earlier) => {
                let part = self.part(&batch, false);
                *held = Held::Group(batch, piece);
                vec![(earlier, Some(part))]
            }
            Held::Done => {
                *held = Held::Done;
                vec![(piece, None)]
            }
        }
    }

    /// What ends the answer once the line has produced all its parts.
    pub(super) fn finish(&self, link: &Link) -> Vec<Outgoing> {
        match std::mem::replace(&mut *lock(&self.held), Held::Done) {
            Held::Nothing => vec![(Piece::Relay(ack(&self.label, &link.server.name)), None)],
            Held::One(piece) => vec![(piece, Some(self.alone(link)))],
            Held::Group(batch, last) => vec![(last, Some(self.part(&batch, true)))],
            Held::Done => Vec::new(),
        }
    }

    /// The framing of a part that is the whole answer, sent at once (a QUIT's); nothing
    /// more is framed after it.
    pub(super) fn whole(&self, link: &Link) -> Framing {
        *lock(&self.held) = Held::Done;
        self.alone(link)
    }

    fn alone(&self, link: &Link) -> Framing {
        Framing::Alone { label: self.label.clone(), batch: link.batch_ref() }
    }

    fn part(&self, batch: &str, last: bool) -> Framing {
        Framing::Part { label: self.label.clone(), batch: batch.to_owned(), last, own: String::new() }
    }
}

/// Parts whose answer is never a line: the gathering ones of a `USERHOST`, `ISON` or
/// `WHO mask`, whose last part answers for all.
fn silent(context: &Context) -> bool {
    matches!(context, Context::Presence { last: false, .. } | Context::WhoMask { last: false, .. })
}

/// `lines` (whole IRC lines, each ending in CRLF) framed as `framing` says; for a part
/// of an answer in several, `opened` says whether its batch is open already.
pub(super) fn frame(lines: &str, framing: &Framing, opened: bool, server: &str) -> String {
    let lines: Vec<&str> = lines.split_terminator("\r\n").collect();
    let mut out = String::new();
    match framing {
        Framing::Part { label, batch, last, .. } if !opened => {
            if *last {
                return frame_alone(&lines, label, batch, server);
            }
            if !lines.is_empty() {
                out.push_str(&open(label, batch, server));
                for line in &lines {
                    out.push_str(&in_batch(line, batch));
                }
            }
        }
        Framing::Part { batch, last, .. } => {
            for line in &lines {
                out.push_str(&in_batch(line, batch));
            }
            if *last {
                out.push_str(&close(batch, server));
            }
        }
        Framing::Alone { label, batch } => return frame_alone(&lines, label, batch, server),
    }
    out
}

/// A whole answer: `ACK`, one labeled line, or a batch.
fn frame_alone(lines: &[&str], label: &str, batch: &str, server: &str) -> String {
    let mut out = String::new();
    if lines.is_empty() {
        return ack(label, server);
    }
    if lines.len() == 1 || is_one_batch(lines) {
        out.push_str(&tagged(lines[0], "label", label));
        for line in &lines[1..] {
            out.push_str(line);
            out.push_str("\r\n");
        }
        return out;
    }
    out.push_str(&open(label, batch, server));
    for line in lines {
        out.push_str(&in_batch(line, batch));
    }
    out.push_str(&close(batch, server));
    out
}

/// `:server ACK` with the label.
fn ack(label: &str, server: &str) -> String {
    tagged(&format!(":{server} ACK"), "label", label)
}

/// The opening of a `labeled-response` batch, with the label.
fn open(label: &str, batch: &str, server: &str) -> String {
    tagged(&format!(":{server} BATCH +{batch} labeled-response"), "label", label)
}

fn close(batch: &str, server: &str) -> String {
    format!(":{server} BATCH -{batch}\r\n")
}

/// `line` (without its CRLF) with the tag `key=value` first among its tags, and CRLF.
fn tagged(line: &str, key: &str, value: &str) -> String {
    let mut out = String::with_capacity(line.len() + key.len() + value.len() + 5);
    out.push('@');
    out.push_str(key);
    out.push('=');
    escape_tag_value(value, &mut out);
    match line.strip_prefix('@') {
        Some(rest) => {
            out.push(';');
            out.push_str(rest);
        }
        None => {
            out.push(' ');
            out.push_str(line);
        }
    }
    out.push_str("\r\n");
    out
}

/// A line of a batch `batch`: tagged with it, unless it belongs to a batch nested in it
/// already (a CHATHISTORY answer's messages keep their own batch; its opening and
/// closing lines, untagged, are tagged with the outer one, as batches nest).
fn in_batch(line: &str, batch: &str) -> String {
    if tag_keys(line).any(|key| key == "batch") {
        return format!("{line}\r\n");
    }
    tagged(line, "batch", batch)
}

/// The names of a line's tags.
fn tag_keys(line: &str) -> impl Iterator<Item = &str> {
    let tags = line.strip_prefix('@').and_then(|rest| rest.split_once(' ')).map_or("", |(tags, _)| tags);
    tags.split(';').filter(|tag| !tag.is_empty()).map(|tag| tag.split_once('=').map_or(tag, |(key, _)| key))
}

/// Whether `lines` are one batch from its opening to its closing line, every line
/// between in it (or in one nested in it): then the opening line can carry the label.
fn is_one_batch(lines: &[&str]) -> bool {
    let [first, middle @ .., last] = lines else { return false };
    match (batch_line(first), batch_line(last)) {
        (Some(('+', opened)), Some(('-', closed))) if opened == closed => {
            middle.iter().all(|line| tag_keys(line).any(|key| key == "batch"))
        }
        _ => false,
    }
}

/// The sign and reference of a `BATCH` line (`+ref`, `-ref`).
fn batch_line(line: &str) -> Option<(char, &str)> {
    let rest = if line.starts_with('@') { line.split_once(' ')?.1 } else { line };
    let rest = if rest.starts_with(':') { rest.split_once(' ')?.1 } else { rest };
    let mut words = rest.split(' ');
    if words.next()? != "BATCH" {
        return None;
    }
    let reference = words.next()?;
    let sign = reference.chars().next().filter(|c| matches!(c, '+' | '-'))?;
    Some((sign, &reference[1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "irc.test";

    fn alone(lines: &str) -> String {
        frame(lines, &Framing::Alone { label: "L1".into(), batch: "l7".into() }, false, SERVER)
    }

    #[test]
    fn no_line_is_an_ack() {
        assert_eq!(alone(""), "@label=L1 :irc.test ACK\r\n");
    }

    #[test]
    fn one_line_carries_the_label_first_among_its_tags() {
        assert_eq!(alone(":irc.test PONG irc.test :x\r\n"), "@label=L1 :irc.test PONG irc.test :x\r\n");
        assert_eq!(
            alone("@time=2026-01-01T00:00:00.000Z;msgid=a/1 :n!u@h PRIVMSG #a :hi\r\n"),
            "@label=L1;time=2026-01-01T00:00:00.000Z;msgid=a/1 :n!u@h PRIVMSG #a :hi\r\n"
        );
        let odd = frame("x\r\n", &Framing::Alone { label: "a b;c\\".into(), batch: "l1".into() }, false, SERVER);
        assert_eq!(odd, "@label=a\\sb\\:c\\\\ x\r\n", "the label is escaped as a tag value");
    }

    #[test]
    fn several_lines_are_a_labeled_batch() {
        assert_eq!(
            alone(":irc.test 311 me bob u h * :Bob\r\n:irc.test 318 me bob :End\r\n"),
            "@label=L1 :irc.test BATCH +l7 labeled-response\r\n\
             @batch=l7 :irc.test 311 me bob u h * :Bob\r\n\
             @batch=l7 :irc.test 318 me bob :End\r\n\
             :irc.test BATCH -l7\r\n"
        );
    }

    #[test]
    fn a_batch_already_takes_the_label_on_its_opening_line() {
        let history = ":irc.test BATCH +h3 chathistory #a\r\n\
                       @batch=h3;msgid=a/1 :n!*@* PRIVMSG #a :one\r\n\
                       :irc.test BATCH -h3\r\n";
        assert_eq!(
            alone(history),
            "@label=L1 :irc.test BATCH +h3 chathistory #a\r\n\
             @batch=h3;msgid=a/1 :n!*@* PRIVMSG #a :one\r\n\
             :irc.test BATCH -h3\r\n"
        );
    }

    #[test]
    fn nested_batches_keep_their_lines() {
        let joined = ":n!u@h JOIN #a\r\n\
                      :irc.test BATCH +h3 chathistory #a\r\n\
                      @batch=h3 :m!*@* PRIVMSG #a :one\r\n\
                      :irc.test BATCH -h3\r\n";
        assert_eq!(
            alone(joined),
            "@label=L1 :irc.test BATCH +l7 labeled-response\r\n\
             @batch=l7 :n!u@h JOIN #a\r\n\
             @batch=l7 :irc.test BATCH +h3 chathistory #a\r\n\
             @batch=h3 :m!*@* PRIVMSG #a :one\r\n\
             @batch=l7 :irc.test BATCH -h3\r\n\
             :irc.test BATCH -l7\r\n"
        );
    }

    fn part(lines: &str, last: bool, opened: bool) -> String {
        let framing = Framing::Part { label: "L1".into(), batch: "l2".into(), last, own: String::new() };
        frame(lines, &framing, opened, SERVER)
    }

    #[test]
    fn the_first_part_with_a_line_opens_the_batch() {
        let joined = "@time=t :n!u@h JOIN #a\r\n:irc.test 366 n #a :End\r\n";
        assert_eq!(part("", false, false), "", "nothing to say opens nothing");
        assert_eq!(
            part(joined, false, false),
            "@label=L1 :irc.test BATCH +l2 labeled-response\r\n\
             @batch=l2;time=t :n!u@h JOIN #a\r\n@batch=l2 :irc.test 366 n #a :End\r\n"
        );
        assert_eq!(
            part(joined, false, true),
            "@batch=l2;time=t :n!u@h JOIN #a\r\n@batch=l2 :irc.test 366 n #a :End\r\n"
        );
        assert_eq!(part("", false, true), "");
    }

    #[test]
    fn the_last_part_closes_the_batch_or_is_the_whole_answer() {
        assert_eq!(
            part(":irc.test 401 n x :No\r\n", true, true),
            "@batch=l2 :irc.test 401 n x :No\r\n:irc.test BATCH -l2\r\n"
        );
        assert_eq!(part("", true, true), ":irc.test BATCH -l2\r\n");
        // Nothing said before it: as if it were the only part.
        assert_eq!(part("", true, false), "@label=L1 :irc.test ACK\r\n");
        assert_eq!(part(":irc.test 401 n x :No\r\n", true, false), "@label=L1 :irc.test 401 n x :No\r\n");
    }

    #[test]
    fn batch_lines_are_recognised() {
        assert_eq!(batch_line(":s BATCH +x chathistory #a"), Some(('+', "x")));
        assert_eq!(batch_line("@batch=o :s BATCH -x"), Some(('-', "x")));
        assert_eq!(batch_line(":s PRIVMSG #a :BATCH +x"), None);
        assert!(!is_one_batch(&[":s BATCH +x t", ":s 401 me n :No", ":s BATCH -x"]), "a line outside it");
        assert!(!is_one_batch(&[":s BATCH +x t", ":s BATCH -y"]));
        assert!(is_one_batch(&[":s BATCH +x t", ":s BATCH -x"]), "an empty batch");
    }
}
