//! `parley log`: chat logs out of the history database (SQLite in the data directory, or
//! the server's PostgreSQL database), while the server runs or not.

use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Local, NaiveDate, TimeZone as _, Utc};
use clap::{Args, Subcommand, ValueEnum};
use parley_proto::text::printable_line;
use parley_store::{PostgresStore, Retention, SqliteStore};

/// What `parley log` does.
#[derive(Args, Debug)]
pub(crate) struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Subcommand, Debug)]
enum LogCommand {
    /// Write a room's history to standard output.
    Export(ExportArgs),
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// The room.
    #[arg(long)]
    room: String,
    /// Only messages from this day on (YYYY-MM-DD, local time) or this instant (RFC 3339).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// `text`: the classic `[HH:MM:SS] name: text` lines under a line per day;
    /// `jsonl`: one JSON object per message.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The server's data directory. Default: ./parley-data.
    #[arg(long, value_name = "DIR", default_value = "parley-data")]
    data_dir: PathBuf,
    /// The server's PostgreSQL database, when it runs with one (`parley serve
    /// --database`), instead of the data directory's.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Jsonl,
}

pub(crate) fn run(args: LogArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        LogCommand::Export(args) => export(&args),
    }
}

fn parse_since(since: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(since) {
        return Ok(at.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(since, "%Y-%m-%d")
        .with_context(|| format!("--since takes YYYY-MM-DD or an RFC 3339 time, not {since:?}"))?;
    let midnight = day.and_hms_opt(0, 0, 0).context("midnight exists")?;
    let local = Local.from_local_datetime(&midnight).earliest().context("that day has no midnight here")?;
    Ok(local.with_timezone(&Utc))
}

fn export(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut day = None;
    let format = args.format;
    let write = |message: &parley_hub::Record| {
        let local = message.at.with_timezone(&Local);
        match format {
            Format::Text => {
                if day != Some(local.date_naive()) {
                    day = Some(local.date_naive());
                    writeln!(out, "--- {} ---", local.format("%A %Y-%m-%d"))?;
                }
                // Others' words, for a terminal or a pager: printable, one line each.
                for part in message.text.lines() {
                    let line = format!("[{}] {}: {part}", local.format("%H:%M:%S"), message.from);
                    writeln!(out, "{}", printable_line(&line))?;
                }
            }
            // JSON escapes every control character: the text stays exactly as said.
            Format::Jsonl => {
                let line = serde_json::json!({
                    "room": message.room.as_ref().map(|r| r.as_str()),
                    "seq": message.seq,
                    "from": message.from.as_str(),
                    "ts": message.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "text": &*message.text,
                });
                writeln!(out, "{line}")?;
            }
        }
        Ok(())
    };
    match &args.database {
        Some(url) => PostgresStore::open(url, Retention::default())?.export(&args.room, since, write)?,
        None => SqliteStore::open_read_only(&args.data_dir)?.export(&args.room, since, write)?,
    };
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
