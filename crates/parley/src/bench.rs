//! `parley bench`: the load generator's command line.

use std::process::ExitCode;

use anyhow::Context as _;
use parley_bench::Mode;

/// Options of `parley bench`.
#[derive(clap::Args, Debug)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    mode: Mode,
    /// Worker threads of the generator; 1 leaves the other core to the server.
    #[arg(long, default_value_t = 1, global = true)]
    threads: usize,
    /// Print one JSON line instead of the table.
    #[arg(long, global = true)]
    json: bool,
}

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()
    }
    .context("async runtime")?;
    let (report, ok) = runtime.block_on(async {
        Ok::<_, anyhow::Error>(match args.mode {
            Mode::Fanout(fanout) if fanout.repeat > 1 => {
                let json = args.json;
                let series = parley_bench::fanout_series(fanout, |report| {
                    let line = if json { serde_json::to_string(report).unwrap_or_default() } else { report.line() };
                    println!("{line}");
                })
                .await?;
                let ok = series.clean_runs == series.runs;
                let text = if args.json { serde_json::to_string(&series)? } else { series.to_string() };
                (text, ok)
            }
            Mode::Fanout(fanout) => {
                let report = parley_bench::fanout(fanout).await?;
                let ok = report.clean();
                let text = if args.json { serde_json::to_string(&report)? } else { report.to_string() };
                (text, ok)
            }
            Mode::Idle(idle) => match parley_bench::idle(idle).await? {
                Some(report) => {
                    let text = if args.json { serde_json::to_string(&report)? } else { report.to_string() };
                    (text, true)
                }
                // A child of `--processes`: it has already reported to its parent.
                None => (String::new(), true),
            },
            Mode::Churn(churn) => {
                let report = parley_bench::churn(churn).await?;
                let ok = report.errors == 0 && report.skipped == 0;
                let text = if args.json { serde_json::to_string(&report)? } else { report.to_string() };
                (text, ok)
            }
        })
    })?;
    runtime.shutdown_background();
    if !report.is_empty() {
        println!("{}", report.trim_end());
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
