//! The `parley` binary: a thin command line over the server and client libraries.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, CommandFactory as _, Parser, Subcommand};
use parley_server::{Config, Listener, Server};
use tracing_subscriber::EnvFilter;

mod admin;
mod bench;
mod chat;
mod log;

/// jemalloc: an idle server gives back what its busy moments took (a registration
/// storm's tasks, a fan-out's buffers), where glibc's malloc keeps most of it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Parley: a self-hosted chat server and its clients.
#[derive(Parser, Debug)]
#[command(name = "parley", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a chat server.
    Serve(ServeArgs),
    /// Chat with a server over the native protocol (TLS by default).
    Chat(chat::ChatArgs),
    /// Measure a server on this machine: fan-out throughput and latency, idle memory.
    Bench(bench::BenchArgs),
    /// Chat logs from a server's history (works while the server runs).
    Log(log::LogArgs),
    /// The server owner's commands on the data directory: accounts, the audit log,
    /// backups, restores and checks.
    Admin(admin::AdminArgs),
    /// Print the completion script of a shell for parley's commands and flags, e.g.
    /// `parley completions bash > /etc/bash_completion.d/parley`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write parley's manual pages (parley.1 and one per command) into DIR; packages
    /// run it at build time, so the pages are the command line's own help.
    #[command(hide = true)]
    Man {
        /// Where the pages go.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// A listener, as KIND=ADDR where KIND is `line`, `native`, `irc` or `web`, plain or
    /// with `+tls` (e.g. native+tls=0.0.0.0:7780); repeat for several. Replaces the
    /// configured listeners. Default: line=127.0.0.1:7777, native=127.0.0.1:7778,
    /// irc=127.0.0.1:6667, web=127.0.0.1:8080, line+tls=0.0.0.0:7779,
    /// native+tls=0.0.0.0:7780, irc+tls=0.0.0.0:6697, web+tls=0.0.0.0:8443. KIND=ADDR,proxy
    /// is a listener behind a proxy that sends the PROXY protocol (v1 or v2).
    #[arg(long = "listen", value_name = "KIND=ADDR")]
    listen: Vec<Listener>,
    /// The TLS certificate chain (PEM). Default: a self-signed certificate generated in
    /// the data directory on the first start.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM), with --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Allow plain-text listeners on non-loopback addresses (traffic readable by anyone
    /// on the network).
    #[arg(long)]
    allow_plain_remote: bool,
    /// Where the server keeps what it writes. Default: ./parley-data.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep no history on disk: rooms remember their latest messages only while the
    /// server runs.
    #[arg(long, conflicts_with = "database")]
    no_history: bool,
    /// Keep history, accounts and moderation in this PostgreSQL database
    /// (postgres://USER:PASSWORD@HOST:PORT/DATABASE) instead of SQLite in the data
    /// directory. A password is better kept in the configuration file ([database] url),
    /// where other users of the machine cannot read it from the process list.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Run as a node of a cluster: the NATS servers (with JetStream) the nodes share,
    /// comma-separated (nats://HOST:4222,nats://HOST2:4222); needs --database. See the
    /// README, "A cluster".
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    cluster: Vec<String>,
    /// This node's name in the cluster, unique among its nodes. Default: the host name.
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// A TOML configuration file; flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log level or filter when RUST_LOG is not set (error, warn, info, debug, trace).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// How log lines look: text (coloured only on a terminal) or json (one object per
    /// line). Default: text.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<parley_server::LogFormat>,
    /// The server's name, as IRC clients see it (the source of server messages, 004,
    /// WHOIS). Default: parley.local.
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// An IRC operator, as NAME:PASSWORD (`OPER NAME PASSWORD` makes the session a
    /// server administrator); repeat for several. Adds to the configured ones.
    #[arg(long = "oper", value_name = "NAME:PASSWORD")]
    opers: Vec<parley_server::Oper>,
    /// A channel every IRC client joins once registered (`#lobby` to meet the line
    /// protocol's users); repeat for several. Replaces the configured ones.
    #[arg(long = "irc-autojoin", value_name = "#CHANNEL")]
    irc_autojoin: Vec<String>,
    /// Threads running connections and the hub; 0 is one per CPU core (the default).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Print the effective configuration, every default included, and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => report(serve(args)),
        Command::Chat(args) => report(chat::run(args)),
        Command::Bench(args) => report(bench::run(args)),
        Command::Log(args) => report(log::run(args)),
        Command::Admin(args) => report(admin::run(args)),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "parley", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { dir } => report(man(&dir)),
    }
}

fn man(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir).with_context(|| format!("writing the pages in {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        // An error may quote the server or a file; it reaches a terminal printable.
        eprintln!("parley: {}", parley_proto::text::printable(&format!("{e:#}")));
        ExitCode::FAILURE
    })
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if !args.listen.is_empty() {
        config.listeners = args.listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(name) = args.server_name {
        config.irc.server_name = name;
    }
    config.irc.opers.extend(args.opers);
    if !args.irc_autojoin.is_empty() {
        config.irc.autojoin = args.irc_autojoin;
    }
    if let Some(threads) = args.threads {
        config.threads = threads;
    }
    if let Some(level) = args.log_level {
        config.log_level = level;
    }
    if let Some(format) = args.log_format {
        config.log_format = format;
    }
    if args.tls_cert.is_some() {
        config.tls.cert = args.tls_cert;
        config.tls.key = args.tls_key;
    }
    if args.allow_plain_remote {
        config.allow_plain_remote = true;
    }
    if args.no_history {
        config.history.store = false;
    }
    if let Some(url) = args.database {
        config.database.url = Some(url);
    }
    if !args.cluster.is_empty() {
        config.cluster.servers = args.cluster;
    }
    if let Some(node) = args.node {
        config.cluster.node = node;
    }
    config.validate()?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    init_logging(&config.log_level, config.log_format)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.threads > 0 {
        runtime.worker_threads(config.threads);
    }
    let runtime = runtime.enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let stopped = stop_signal();
        let server = Server::bind(config).await?;
        let mut stdout = std::io::stdout().lock();
        for bound in server.local_addrs() {
            let proxy = if bound.proxy_protocol { ",proxy" } else { "" };
            writeln!(stdout, "listening {}={}{proxy}", bound.label(), bound.addr)?;
        }
        if let Some(tls) = server.tls() {
            writeln!(stdout, "tls fingerprint sha256={}", tls.fingerprint())?;
            tokio::spawn(reload_on_hangup(tls));
        }
        stdout.flush()?;
        drop(stdout);
        server.run(stopped).await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn init_logging(level: &str, format: parley_server::LogFormat) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let filter = match std::env::var("RUST_LOG") {
        Ok(filter) if !filter.is_empty() => EnvFilter::try_new(filter).context("invalid RUST_LOG")?,
        _ => EnvFilter::try_new(level).with_context(|| format!("invalid log level {level:?}"))?,
    };
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        // Colours are escape sequences: only a terminal shows them as colours.
        parley_server::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        parley_server::LogFormat::Json => logs.json().with_ansi(false).init(),
    }
    Ok(())
}

/// Reloads the TLS certificate on every SIGHUP; open connections are not touched.
async fn reload_on_hangup(tls: parley_server::Tls) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot watch SIGHUP; the TLS certificate will not be reloaded");
            return;
        };
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(fingerprint) => tracing::info!(%fingerprint, "reloaded the TLS certificate"),
                Err(e) => tracing::error!("cannot reload the TLS certificate, keeping the old one: {e}"),
            }
        }
    }
    #[cfg(not(unix))]
    drop(tls);
}

/// Watches for SIGINT and SIGTERM from now on; the future completes on the first.
///
/// The handlers are installed before the server says it is listening: a signal that
/// arrived between a client being served and the first poll of a lazily installed
/// handler would kill the process without telling anyone.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let watched = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
        async move {
            match watched {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                (term, int) => {
                    let e = term.err().or(int.err()).map(|e| e.to_string()).unwrap_or_default();
                    tracing::warn!("cannot watch SIGTERM and SIGINT ({e}); stopping on Ctrl-C only");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
