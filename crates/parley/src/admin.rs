//! `parley admin`: the server owner's commands on the data directory, while the server
//! runs or not.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use parley_hub::{Account, AccountStore as _, ModerationStore as _, Nick, MAX_PASSWORD, MIN_PASSWORD};
use parley_proto::text::printable_line;
use parley_store::{Retention, SqliteStore};

/// What `parley admin` does.
#[derive(Args, Debug)]
pub(crate) struct AdminArgs {
    /// The server's data directory. Default: ./parley-data.
    #[arg(long, value_name = "DIR", default_value = "parley-data", global = true)]
    data_dir: PathBuf,
    /// How names compare, as the server's `[names] casemapping` says.
    #[arg(long, value_name = "MAPPING", value_parser = ["precis", "ascii"], default_value = "precis", global = true)]
    casemapping: String,
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
    /// Delete an account, with its roles, the registrations of the rooms it founded, its
    /// private messages and its files; its room messages stay in the history, and the
    /// name is free again (a new account of that name is a new account).
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
    /// room, and sets server bans).
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
    let mapping =
        if args.casemapping == "ascii" { parley_hub::CaseMapping::Ascii } else { parley_hub::CaseMapping::Precis };
    if let Err(fixed) = parley_hub::set_case_mapping(mapping) {
        bail!("names are compared as {fixed:?} already");
    }
    let store = SqliteStore::open(&args.data_dir, Retention::default())?;
    match args.command {
        AdminCommand::Users(UsersCommand::List) => {
            let accounts = store.list_accounts()?;
            let mut out = std::io::stdout().lock();
            for entry in &accounts {
                let role = if entry.admin { "\tadmin" } else { "" };
                let created = entry.created.format("%Y-%m-%d %H:%M:%S UTC");
                let text = format!("{}\tregistered {created}{role}", entry.account.name);
                writeln!(out, "{}", printable_line(&text))?;
            }
            if accounts.is_empty() {
                eprintln!("No accounts.");
            }
        }
        AdminCommand::Users(UsersCommand::Add { name }) => {
            let name = nick(&name)?;
            let password = read_password()?;
            if store.register(&name, &password)?.is_none() {
                bail!("the account {name} exists already; use reset-password to change its password");
            }
            eprintln!("Created the account {name}.");
        }
        AdminCommand::Users(UsersCommand::Delete { name }) => {
            let account = account(&store, &name)?;
            store.delete_account(account.id, "parley admin")?;
            let files = parley_server::forget_account_files(&args.data_dir, account.id)
                .context("deleting the account's files")?;
            eprintln!(
                "Deleted the account {} ({files} shared files). A running server applies it at its next start;",
                account.name
            );
            eprintln!("until then, anyone logged in to it stays logged in.");
        }
        AdminCommand::Users(UsersCommand::Grant { name, .. }) => {
            let account = account(&store, &name)?;
            let name = &account.name;
            if store.set_admin(&account, true)? {
                eprintln!("{name} is now a server admin (from their next login).");
            } else {
                eprintln!("{name} was a server admin already.");
            }
        }
        AdminCommand::Users(UsersCommand::Revoke { name, .. }) => {
            let account = account(&store, &name)?;
            let name = &account.name;
            if store.set_admin(&account, false)? {
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
            let account = account(&store, &name)?;
            let password = read_password()?;
            if !store.set_password(account.id, &password)? {
                bail!("there is no account called {}", account.name);
            }
            eprintln!("Changed the password of {}.", account.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn nick(name: &str) -> anyhow::Result<Nick> {
    Ok(Nick::parse(name, usize::MAX)?)
}

fn account(store: &SqliteStore, name: &str) -> anyhow::Result<Account> {
    let name = nick(name)?;
    store.account_named(&name)?.with_context(|| format!("there is no account called {name}"))
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
