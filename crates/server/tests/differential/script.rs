//! The scripts: plain text files in this folder, ending in `.irc`.
//!
//! ```text
//! # A comment (a line starting with `#` and a space, or only `#`).
//! == JOIN and PART                   a new script: every client of the one before quits
//! connect alice bob                  clients that register before anything is compared
//! connect carol +multi-prefix        ... asking for capabilities first
//! open dave                          a connection that registers in the script itself
//! alice> JOIN #join                  one exchange: alice sends the line, then every open
//!                                    client's replies up to a PING round trip are compared
//!     differs: why Parley answers otherwise, on purpose
//!     until 376 422                  read the sender's lines up to one of these first
//!     closes                         the server closes the sender's connection
//!     hosts                          compare user names and hosts too
//!     text                           compare numerics' trailing text too
//!     reference: why the documents are the reference here (InspIRCd lacks it)
//!     = alice :<server> 421 alice FOO :<text>
//!                                    with `reference`, what the documents say each
//!                                    client gets, in normalised form (normalise.rs)
//! ```
//!
//! A client's nick is its name; `connect` registers it with `USER u 0 * :Real <name>`.
//! In a sent line, `\x01` is the byte 1 (CTCP) and `$repeat(N,text)` is `text` N times
//! (for lines over the limits).

use std::fmt;
use std::path::Path;

/// One script: a few clients and the exchanges between them and the server.
pub struct Script {
    pub name: String,
    pub steps: Vec<Step>,
}

pub enum Step {
    /// Clients that register before anything is compared, asking for `caps`.
    Connect(Vec<Spec>),
    /// Connections that register in the script itself.
    Open(Vec<String>),
    Exchange(Exchange),
}

pub struct Spec {
    pub name: String,
    pub caps: Vec<String>,
}

/// One client line and what comes back to every open client.
pub struct Exchange {
    /// `file:line`, to find it in the report.
    pub at: String,
    pub client: String,
    pub line: String,
    /// Why Parley answers otherwise on purpose; the report says so, and an exchange
    /// marked so that agrees is an error (the mark is stale).
    pub differs: Option<String>,
    /// Where InspIRCd lacks what is tested: why, and what the documents say each client
    /// gets (normalised), which Parley is compared with instead.
    pub reference: Option<Reference>,
    /// Commands (numerics) to read up to before the PING round trip: for lines after
    /// which a server answers later than a PING (InspIRCd completes registrations on a
    /// timer once a second).
    pub until: Vec<String>,
    /// The server closes the sender's connection: its lines are read to the end.
    pub closes: bool,
    /// Compare user names and hosts, which are otherwise normalised.
    pub hosts: bool,
    /// Compare numerics' trailing text, which is otherwise only checked for presence.
    pub text: bool,
}

pub struct Reference {
    pub why: String,
    pub expected: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct ParseError {
    at: String,
    what: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.what)
    }
}

/// Every script of every `.irc` file in `dir`, files in name order.
pub fn load(dir: &Path) -> Result<Vec<Script>, ParseError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| ParseError { at: dir.display().to_string(), what: e.to_string() })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "irc"))
        .collect();
    files.sort();
    let mut scripts = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ParseError { at: path.display().to_string(), what: e.to_string() })?;
        let file = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        scripts.extend(parse(&file, &text)?);
    }
    Ok(scripts)
}

/// The scripts of one file.
pub fn parse(file: &str, text: &str) -> Result<Vec<Script>, ParseError> {
    let mut scripts: Vec<Script> = Vec::new();
    let mut clients: Vec<String> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let at = format!("{file}:{}", n + 1);
        let fail = |what: String| ParseError { at: at.clone(), what };
        let line = raw.trim_end();
        if line.is_empty() || line == "#" || line.starts_with("# ") {
            continue;
        }
        if let Some(name) = line.strip_prefix("== ") {
            scripts.push(Script { name: name.trim().to_owned(), steps: Vec::new() });
            clients.clear();
            continue;
        }
        let Some(script) = scripts.last_mut() else {
            return Err(fail("a step before the first `== name`".into()));
        };
        if line.starts_with(char::is_whitespace) {
            let Some(Step::Exchange(exchange)) = script.steps.last_mut() else {
                return Err(fail("an option that follows no exchange".into()));
            };
            option(exchange, line.trim(), &clients).map_err(fail)?;
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "connect" => {
                let mut specs: Vec<Spec> = Vec::new();
                for item in rest.split_whitespace() {
                    if let Some(cap) = item.strip_prefix('+') {
                        let Some(spec) = specs.last_mut() else {
                            return Err(fail(format!("capability {cap} before any client")));
                        };
                        spec.caps.push(cap.to_owned());
                    } else {
                        specs.push(Spec { name: item.to_owned(), caps: Vec::new() });
                    }
                }
                for spec in &specs {
                    new_client(&mut clients, &spec.name).map_err(&fail)?;
                }
                script.steps.push(Step::Connect(specs));
            }
            "open" => {
                let names: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
                for name in &names {
                    new_client(&mut clients, name).map_err(&fail)?;
                }
                script.steps.push(Step::Open(names));
            }
            _ => {
                let line_sent = expand(line).map_err(&fail)?;
                let Some((client, sent)) = line_sent.split_once("> ") else {
                    return Err(fail(format!("not a step: {line:?}")));
                };
                if !clients.iter().any(|c| c == client) {
                    return Err(fail(format!("no client {client:?} in this script")));
                }
                script.steps.push(Step::Exchange(Exchange {
                    at,
                    client: client.to_owned(),
                    line: sent.to_owned(),
                    differs: None,
                    reference: None,
                    until: Vec::new(),
                    closes: false,
                    hosts: false,
                    text: false,
                }));
            }
        }
    }
    for script in &scripts {
        for step in &script.steps {
            if let Step::Exchange(Exchange { reference: Some(r), at, .. }) = step {
                if r.why.is_empty() {
                    return Err(ParseError { at: at.clone(), what: "expected lines without `reference: why`".into() });
                }
            }
        }
    }
    Ok(scripts)
}

fn new_client(clients: &mut Vec<String>, name: &str) -> Result<(), String> {
    if clients.iter().any(|c| c == name) {
        return Err(format!("client {name} twice in one script"));
    }
    clients.push(name.to_owned());
    Ok(())
}

fn option(exchange: &mut Exchange, text: &str, clients: &[String]) -> Result<(), String> {
    if let Some(why) = text.strip_prefix("differs:") {
        if exchange.reference.is_some() {
            return Err("`differs` with `reference`: say which reference Parley differs from".into());
        }
        exchange.differs = Some(why.trim().to_owned());
    } else if let Some(why) = text.strip_prefix("reference:") {
        exchange.reference.get_or_insert_with(|| Reference { why: String::new(), expected: Vec::new() }).why =
            why.trim().to_owned();
    } else if let Some(expected) = text.strip_prefix("= ") {
        let (client, line) = expected.split_once(' ').ok_or("`= client line`")?;
        if !clients.iter().any(|c| c == client) {
            return Err(format!("no client {client:?} in this script"));
        }
        exchange
            .reference
            .get_or_insert_with(|| Reference { why: String::new(), expected: Vec::new() })
            .expected
            .push((client.to_owned(), line.to_owned()));
    } else if let Some(commands) = text.strip_prefix("until ") {
        exchange.until = commands.split_whitespace().map(str::to_owned).collect();
    } else if text == "closes" {
        exchange.closes = true;
    } else if text == "hosts" {
        exchange.hosts = true;
    } else if text == "text" {
        exchange.text = true;
    } else {
        return Err(format!("unknown option {text:?}"));
    }
    Ok(())
}

/// `\x01` and `$repeat(N,text)` in a sent line.
fn expand(line: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = line.replace("\\x01", "\u{1}");
    while let Some(start) = rest.find("$repeat(") {
        out.push_str(&rest[..start]);
        let args = &rest[start + "$repeat(".len()..];
        let end = args.find(')').ok_or("`$repeat(` without `)`")?;
        let (count, text) = args[..end].split_once(',').ok_or("`$repeat(N,text)`")?;
        let count: usize = count.parse().map_err(|_| format!("not a count: {count:?}"))?;
        out.push_str(&text.repeat(count));
        rest = args[end + 1..].to_owned();
    }
    out.push_str(&rest);
    Ok(out)
}
