//! Compares the two servers' normalised answers, exchange by exchange, and writes the
//! report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::normalise::{normalise, whox_idle, Context, Options};
use super::run::Observed;
use super::script::{Script, Step};

pub enum Verdict {
    Agree,
    /// Different, and the script says why.
    Deliberate(String),
    /// Different, and nothing says why.
    Differs,
    /// Marked as a deliberate difference, yet the same: the mark is stale.
    Stale(String),
}

pub struct Outcome {
    pub script: String,
    pub at: String,
    pub sent: String,
    /// The documents are the reference, not InspIRCd: why.
    pub reference: Option<String>,
    pub verdict: Verdict,
    /// Per client: the reference's lines and Parley's, where they differ.
    pub sides: Vec<(String, Vec<String>, Vec<String>)>,
}

/// Compares Parley's answers with the reference's (InspIRCd's, or the documents' where
/// the script gives them), or with `parley`'s own run on another configuration when
/// `consistency` (then the scripts' marks and expected lines do not apply).
pub fn compare(
    scripts: &[Script],
    reference: &[Vec<Observed>],
    parley: &[Vec<Observed>],
    cx: (&Context<'_>, &Context<'_>),
    consistency: bool,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for ((script, theirs), ours) in scripts.iter().zip(reference).zip(parley) {
        let exchanges = script.steps.iter().filter_map(|s| match s {
            Step::Exchange(e) => Some(e),
            _ => None,
        });
        for ((exchange, theirs), ours) in exchanges.zip(theirs).zip(ours) {
            let options = Options { hosts: exchange.hosts, text: exchange.text, whox_idle: whox_idle(&exchange.line) };
            let mut names: Vec<&String> = theirs.iter().map(|(n, _)| n).collect();
            for (name, _) in ours {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            let lines_of = |observed: &Observed, name: &str, cx: &Context<'_>| {
                observed.iter().find(|(n, _)| n == name).map(|(_, l)| normalise(l, cx, options)).unwrap_or_default()
            };
            let mut sides = Vec::new();
            for name in names {
                let expected = match exchange.reference.as_ref().filter(|_| !consistency) {
                    Some(r) => r.expected.iter().filter(|(c, _)| c == name).map(|(_, l)| l.clone()).collect(),
                    None => lines_of(theirs, name, cx.0),
                };
                let got = lines_of(ours, name, cx.1);
                if expected != got {
                    sides.push((name.clone(), expected, got));
                }
            }
            let differs = exchange.differs.as_ref().filter(|_| !consistency);
            let verdict = match (differs, sides.is_empty()) {
                (None, true) => Verdict::Agree,
                (None, false) => Verdict::Differs,
                (Some(why), false) => Verdict::Deliberate(why.clone()),
                (Some(why), true) => Verdict::Stale(why.clone()),
            };
            outcomes.push(Outcome {
                script: script.name.clone(),
                at: exchange.at.clone(),
                sent: format!("{}> {}", exchange.client, exchange.line),
                reference: exchange.reference.as_ref().filter(|_| !consistency).map(|r| r.why.clone()),
                verdict,
                sides,
            });
        }
    }
    outcomes
}

pub struct Summary {
    pub exchanges: usize,
    pub agree: usize,
    pub differs: usize,
    pub stale: usize,
    /// Exchanges that Parley answers otherwise with its store on.
    pub unsteady: usize,
}

impl Summary {
    /// At least 95% agree, every other one is a deliberate difference, and Parley
    /// answers the same with its store on.
    pub fn passes(&self) -> bool {
        self.differs == 0 && self.stale == 0 && self.unsteady == 0 && self.agree * 100 >= self.exchanges * 95
    }
}

/// The report on `outcomes`; `stored` is Parley with its store on against Parley
/// without.
pub fn write(outcomes: &[Outcome], stored: &[Outcome], scripts: usize, peer: &str, seconds: f64) -> (String, Summary) {
    let count = |f: fn(&Verdict) -> bool| outcomes.iter().filter(|o| f(&o.verdict)).count();
    let summary = Summary {
        exchanges: outcomes.len(),
        agree: count(|v| matches!(v, Verdict::Agree)),
        differs: count(|v| matches!(v, Verdict::Differs)),
        stale: count(|v| matches!(v, Verdict::Stale(_))),
        unsteady: stored.iter().filter(|o| !o.sides.is_empty()).count(),
    };
    let deliberate = outcomes.len() - summary.agree - summary.differs - summary.stale;
    let on_documents = outcomes.iter().filter(|o| o.reference.is_some()).count();
    let percent = |n: usize| if outcomes.is_empty() { 0.0 } else { n as f64 * 100.0 / outcomes.len() as f64 };
    let mut out = String::new();
    let _ = writeln!(out, "IRC differential test: Parley against {peer}, {scripts} scripts, {seconds:.1} s");
    let _ = writeln!(out, "  exchanges:                  {}", summary.exchanges);
    let _ = writeln!(out, "  agree:                      {} ({:.1}%)", summary.agree, percent(summary.agree));
    let _ = writeln!(out, "  deliberate differences:     {deliberate} ({:.1}%)", percent(deliberate));
    let _ = writeln!(out, "  undocumented differences:   {} ({:.1}%)", summary.differs, percent(summary.differs));
    let _ = writeln!(out, "  stale `differs` marks:      {}", summary.stale);
    let _ = writeln!(out, "  with the documents as the reference (InspIRCd lacks it): {on_documents}");
    let _ = writeln!(out, "  answered otherwise with Parley's store on: {}", summary.unsteady);
    let _ = writeln!(
        out,
        "  verdict: {}",
        if summary.passes() { "PASS" } else { "FAIL (needs 95% agreeing, none undocumented)" }
    );

    let mut reasons: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for o in outcomes {
        if let Verdict::Deliberate(why) = &o.verdict {
            reasons.entry(why).or_default().push(&o.at);
        }
    }
    if !reasons.is_empty() {
        let _ = writeln!(out, "\nDeliberate differences, by reason:");
        for (why, places) in &reasons {
            let _ = writeln!(out, "  {} × {why}\n      at {}", places.len(), places.join(", "));
        }
    }
    let stale: Vec<&Outcome> = outcomes.iter().filter(|o| matches!(o.verdict, Verdict::Stale(_))).collect();
    if !stale.is_empty() {
        let _ = writeln!(out, "\nMarked `differs` but agreeing (remove the mark):");
        for o in stale {
            let why = if let Verdict::Stale(why) = &o.verdict { why.as_str() } else { "" };
            let _ = writeln!(out, "  {} [{}] {}  (marked: {why})", o.at, o.script, o.sent);
        }
    }
    let differs: Vec<&Outcome> = outcomes.iter().filter(|o| matches!(o.verdict, Verdict::Differs)).collect();
    if !differs.is_empty() {
        let _ = writeln!(out, "\nUndocumented differences ({}), reference first:", differs.len());
        for o in differs {
            let _ = writeln!(out, "\n{} [{}]  {}", o.at, o.script, o.sent);
            if let Some(why) = &o.reference {
                let _ = writeln!(out, "  (reference: the documents; {why})");
            }
            for (client, expected, got) in &o.sides {
                let _ = writeln!(out, "  to {client}:");
                let name = if o.reference.is_some() { "documents" } else { "InspIRCd" };
                side(&mut out, name, expected);
                side(&mut out, "Parley", got);
            }
        }
    }
    let unsteady: Vec<&Outcome> = stored.iter().filter(|o| !o.sides.is_empty()).collect();
    if !unsteady.is_empty() {
        let _ = writeln!(
            out,
            "\nAnswered otherwise with Parley's store on ({}): replies that come after the PONG of a later PING",
            unsteady.len()
        );
        for o in unsteady {
            let _ = writeln!(out, "\n{} [{}]  {}", o.at, o.script, o.sent);
            for (client, expected, got) in &o.sides {
                let _ = writeln!(out, "  to {client}:");
                side(&mut out, "no store", expected);
                side(&mut out, "store", got);
            }
        }
    }
    (out, summary)
}

fn side(out: &mut String, name: &str, lines: &[String]) {
    if lines.is_empty() {
        let _ = writeln!(out, "    {name:<9} (nothing)");
    }
    for line in lines {
        // Lines made long on purpose are cut short here (and compared whole).
        if line.len() > 200 {
            let cut = (0..=120).rev().find(|i| line.is_char_boundary(*i)).unwrap_or(0);
            let _ = writeln!(out, "    {name:<9} {}… ({} bytes)", &line[..cut], line.len());
        } else {
            let _ = writeln!(out, "    {name:<9} {line}");
        }
    }
}
