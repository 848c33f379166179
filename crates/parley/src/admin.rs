//! `parley admin`: the server owner's commands on the data directory, while the server
//! runs or not.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use parley_hub::{Nick, Store as _, MAX_PASSWORD, MIN_PASSWORD};
use parley_proto::text::printable_line;
use parley_store::{Retention, SqliteStore};

/// What `parley admin` does.
#[derive(Args, Debug)]
pub(crate) struct AdminArgs {
    /// The server's data directory. Default: ./parley-data.
    #[arg(long, value_name = "DIR", default_value = "parley-data", global = true)]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Manage accounts.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Show the latest moderation actions and role changes, newest first.
    Audit {
        /// How many lines.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// List every account.
    List,
    /// Create an account; the password is read from standard input.
    Add {
        /// The account's name (the nick it protects).
        name: String,
    },
    /// Delete an account; its messages stay in the history.
    Delete {
        /// The account's name.
        name: String,
    },
    /// Set a new password; it is read from standard input.
    ResetPassword {
        /// The account's name.
        name: String,
    },
    /// Give a role to an account: `admin` (a server administrator: moderates every
    /// room, and the lobby, whose bans keep people off the server).
    Grant {
        /// The account's name.
        name: String,
        /// The role.
        #[arg(value_parser = ["admin"])]
        role: String,
    },
    /// Take a role away.
    Revoke {
        /// The account's name.
        name: String,
        /// The role.
        #[arg(value_parser = ["admin"])]
        role: String,
    },
}

pub(crate) fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let store = SqliteStore::open(&args.data_dir, Retention::default())?;
    match args.command {
        AdminCommand::Users(UsersCommand::List) => {
            let accounts = store.list_accounts()?;
            let mut out = std::io::stdout().lock();
            for account in &accounts {
                let text = format!("{}\tregistered {}", account.name, account.created.format("%Y-%m-%d %H:%M:%S UTC"));
                writeln!(out, "{}", printable_line(&text))?;
            }
            if accounts.is_empty() {
                eprintln!("No accounts.");
            }
        }
        AdminCommand::Users(UsersCommand::Add { name }) => {
            let name = nick(&name)?;
            let password = read_password()?;
            if !store.register(&name, &password)? {
                bail!("the account {name} exists already; use reset-password to change its password");
            }
            eprintln!("Created the account {name}.");
        }
        AdminCommand::Users(UsersCommand::Delete { name }) => {
            let name = nick(&name)?;
            if !store.delete_account(&name)? {
                bail!("there is no account called {name}");
            }
            eprintln!("Deleted the account {name}.");
        }
        AdminCommand::Users(UsersCommand::Grant { name, .. }) => {
            let name = nick(&name)?;
            if !store.list_accounts()?.iter().any(|a| a.name.eq_ignore_ascii_case(name.as_str())) {
                bail!("there is no account called {name}");
            }
            if store.set_admin(&name, true)? {
                eprintln!("{name} is now a server admin (from their next login).");
            } else {
                eprintln!("{name} was a server admin already.");
            }
        }
        AdminCommand::Users(UsersCommand::Revoke { name, .. }) => {
            let name = nick(&name)?;
            if store.set_admin(&name, false)? {
                eprintln!("{name} is no longer a server admin (from their next login).");
            } else {
                bail!("{name} is not a server admin");
            }
        }
        AdminCommand::Audit { limit } => {
            let mut out = std::io::stdout().lock();
            for line in store.audit(limit)? {
                let place = line.room.map(|r| format!(" in {r}")).unwrap_or_default();
                let target = line.target.map(|t| format!(" {t}")).unwrap_or_default();
                let detail = line.detail.map(|d| format!(" ({d})")).unwrap_or_default();
                let at = line.at.format("%Y-%m-%d %H:%M:%S UTC");
                // Targets and reasons are others' words: printable, one line each.
                let text = format!("{at}\t{}\t{}{target}{place}{detail}", line.actor, line.action);
                writeln!(out, "{}", printable_line(&text))?;
            }
        }
        AdminCommand::Users(UsersCommand::ResetPassword { name }) => {
            let name = nick(&name)?;
            let password = read_password()?;
            if !store.set_password(&name, &password)? {
                bail!("there is no account called {name}");
            }
            eprintln!("Changed the password of {name}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn nick(name: &str) -> anyhow::Result<Nick> {
    Ok(Nick::parse(name, usize::MAX)?)
}

/// One line from standard input, so scripts can pipe it; a prompt when it is a terminal.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (shown as you type): ");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.chars().count() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        bail!("a password has at least {MIN_PASSWORD} characters and at most {MAX_PASSWORD} bytes");
    }
    Ok(password)
}
