//! `parley admin`: the server owner's commands on the data directory (or the server's
//! PostgreSQL database), while the server runs or not; and moving a data directory's
//! SQLite database into PostgreSQL.

mod backup;
mod check;

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use parley_hub::{Account, Nick, Store, StoreError, MAX_PASSWORD, MIN_PASSWORD};
use parley_proto::text::printable_line;
use parley_server::Config;
use parley_store::{AccountEntry, PostgresStore, Retention, SqliteStore};

/// What `parley admin` does.
#[derive(Args, Debug)]
pub(crate) struct AdminArgs {
    /// The server's data directory. Default: the configuration's `data_dir` with
    /// --config, else ./parley-data.
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// The server's configuration file: its data directory, its database and how it
    /// compares names, and for `check` its retention rules.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// The server's PostgreSQL database, when it runs with one (`parley serve
    /// --database`); accounts and the audit log are there, shared files still in the
    /// data directory. Default: the configuration's `[database] url` with --config.
    #[arg(long, value_name = "URL", global = true)]
    database: Option<String>,
    /// How names compare, as the server's `[names] casemapping` says. Default: the
    /// configuration's with --config, else precis.
    #[arg(long, value_name = "MAPPING", value_parser = ["precis", "ascii"], global = true)]
    casemapping: Option<String>,
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
    /// Copy the data directory (database, shared files, generated TLS certificate and
    /// key) into the new directory DEST, with a manifest of checksums; safe while the
    /// server runs.
    Backup {
        /// Where the backup goes: a directory that does not exist yet, or is empty.
        #[arg(value_name = "DEST")]
        dest: PathBuf,
    },
    /// Put a backup in place as the data directory (which must not exist, or be empty),
    /// after checking every file against its manifest.
    Restore {
        /// The backup: a directory written by `parley admin backup`.
        #[arg(value_name = "SRC")]
        src: PathBuf,
    },
    /// Inspect the data directory without changing it: schema version, sizes, the
    /// database's integrity, every shared file against its hash and its messages, and
    /// what the retention rules would delete. Exit status: 0 no problem, 2 problems
    /// (listed), 1 the check could not run.
    Check,
    /// Move the data directory's SQLite database (history, accounts, roles, registered
    /// rooms, bans, the audit log) into an empty PostgreSQL database, in one
    /// transaction; a database that holds anything already is refused. Stop the server
    /// first; then start it with `--database URL`. Shared files stay in the data
    /// directory, where the server keeps reading them.
    Migrate {
        /// The PostgreSQL database (postgres://USER:PASSWORD@HOST:PORT/DATABASE).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

/// The database `parley admin` works on.
enum Db {
    Sqlite(Box<SqliteStore>),
    Postgres(Box<PostgresStore>),
}

impl Db {
    fn store(&self) -> &dyn Store {
        match self {
            Db::Sqlite(db) => &**db,
            Db::Postgres(db) => &**db,
        }
    }

    fn list_accounts(&self) -> Result<Vec<AccountEntry>, StoreError> {
        match self {
            Db::Sqlite(db) => db.list_accounts(),
            Db::Postgres(db) => db.list_accounts(),
        }
    }

    fn account_named(&self, name: &Nick) -> Result<Option<Account>, StoreError> {
        match self {
            Db::Sqlite(db) => db.account_named(name),
            Db::Postgres(db) => db.account_named(name),
        }
    }

    fn set_admin(&self, account: &Account, admin: bool) -> Result<bool, StoreError> {
        match self {
            Db::Sqlite(db) => db.set_admin(account, admin),
            Db::Postgres(db) => db.set_admin(account, admin),
        }
    }
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
    let config = args.config.as_deref().map(Config::load).transpose()?;
    let data_dir = match (args.data_dir, &config) {
        (Some(dir), _) => dir,
        (None, Some(config)) => config.data_dir.clone(),
        (None, None) => PathBuf::from("parley-data"),
    };
    let mapping = match (args.casemapping.as_deref(), &config) {
        (Some("ascii"), _) => parley_hub::CaseMapping::Ascii,
        (Some(_), _) => parley_hub::CaseMapping::Precis,
        (None, Some(config)) => config.names.casemapping.hub(),
        (None, None) => parley_hub::CaseMapping::Precis,
    };
    if let Err(fixed) = parley_hub::set_case_mapping(mapping) {
        bail!("names are compared as {fixed:?} already");
    }
    let database = args.database.or_else(|| config.as_ref().and_then(|c| c.database.url.clone()));
    match args.command {
        AdminCommand::Backup { dest } => backup::backup(&data_dir, &dest).map(|()| ExitCode::SUCCESS),
        AdminCommand::Restore { src } => backup::restore(&src, &data_dir).map(|()| ExitCode::SUCCESS),
        AdminCommand::Check => {
            let retention = config.map(|c| c.history.retention()).unwrap_or_default();
            check::check(&data_dir, &retention)
        }
        AdminCommand::Migrate { to } => migrate(&data_dir, &to),
        AdminCommand::Users(users) => self::users(&open(&data_dir, database.as_deref())?, &data_dir, users),
        AdminCommand::Audit { limit } => audit(&open(&data_dir, database.as_deref())?, limit),
    }
}

/// The database, for the commands that work through the store (which creates and
/// migrates it): the server's PostgreSQL database when it has one, else the data
/// directory's SQLite file.
fn open(data_dir: &Path, database: Option<&str>) -> anyhow::Result<Db> {
    Ok(match database {
        Some(url) => Db::Postgres(Box::new(PostgresStore::open(url, Retention::default())?)),
        None => Db::Sqlite(Box::new(SqliteStore::open(data_dir, Retention::default())?)),
    })
}

fn users(db: &Db, data_dir: &Path, command: UsersCommand) -> anyhow::Result<ExitCode> {
    let store = db.store();
    match command {
        UsersCommand::List => {
            let accounts = db.list_accounts()?;
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
        UsersCommand::Add { name } => {
            let name = nick(&name)?;
            let password = read_password()?;
            if store.register(&name, &password)?.is_none() {
                bail!("the account {name} exists already; use reset-password to change its password");
            }
            eprintln!("Created the account {name}.");
        }
        UsersCommand::Delete { name } => {
            let account = account(db, &name)?;
            store.delete_account(account.id, "parley admin")?;
            let files =
                parley_server::forget_account_files(data_dir, account.id).context("deleting the account's files")?;
            eprintln!(
                "Deleted the account {} ({files} shared files). A running server applies it at its next start;",
                account.name
            );
            eprintln!("until then, anyone logged in to it stays logged in.");
        }
        UsersCommand::Grant { name, .. } => {
            let account = account(db, &name)?;
            let name = &account.name;
            if db.set_admin(&account, true)? {
                eprintln!("{name} is now a server admin (from their next login).");
            } else {
                eprintln!("{name} was a server admin already.");
            }
        }
        UsersCommand::Revoke { name, .. } => {
            let account = account(db, &name)?;
            let name = &account.name;
            if db.set_admin(&account, false)? {
                eprintln!("{name} is no longer a server admin (from their next login).");
            } else {
                bail!("{name} is not a server admin");
            }
        }
        UsersCommand::ResetPassword { name } => {
            let account = account(db, &name)?;
            let password = read_password()?;
            if !store.set_password(account.id, &password)? {
                bail!("there is no account called {}", account.name);
            }
            eprintln!("Changed the password of {}.", account.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn audit(db: &Db, limit: usize) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    for line in db.store().audit(limit)? {
        let place = line.room.map(|r| format!(" in {r}")).unwrap_or_default();
        let target = line.target.map(|t| format!(" {t}")).unwrap_or_default();
        let detail = line.detail.map(|d| format!(" ({d})")).unwrap_or_default();
        let at = line.at.format("%Y-%m-%d %H:%M:%S UTC");
        // Targets and reasons are others' words: printable, one line each.
        let text = format!("{at}\t{}\t{}{target}{place}{detail}", line.actor, line.action);
        writeln!(out, "{}", printable_line(&text))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `parley admin migrate --to URL`.
fn migrate(data_dir: &Path, url: &str) -> anyhow::Result<ExitCode> {
    if !data_dir.join(parley_store::DB_FILE).exists() {
        bail!("there is no database in {} to migrate", data_dir.display());
    }
    let from = SqliteStore::open(data_dir, Retention::default())?;
    let to = PostgresStore::open(url, Retention::default())?;
    eprintln!("Moving {} into {} ...", data_dir.join(parley_store::DB_FILE).display(), to.target());
    let moved = to.import(&from)?;
    let count = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    eprintln!(
        "Moved {}, {}, {}, {} and {} into {}.",
        count(moved.messages, "message"),
        count(moved.accounts, "account"),
        count(moved.rooms, "registered room"),
        count(moved.server_bans, "server ban"),
        count(moved.audit, "audit line"),
        to.target()
    );
    eprintln!("Start the server with --database (or [database] url); shared files stay in {}.", data_dir.display());
    Ok(ExitCode::SUCCESS)
}

fn nick(name: &str) -> anyhow::Result<Nick> {
    Ok(Nick::parse(name, usize::MAX)?)
}

fn account(db: &Db, name: &str) -> anyhow::Result<Account> {
    let name = nick(name)?;
    db.account_named(&name)?.with_context(|| format!("there is no account called {name}"))
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
