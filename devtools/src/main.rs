//! `xos-dev`: the programs of the benchmarks and the soak test (`make bench`, `make soak`),
//! kept out of the production binary and library.

mod bench;
mod soak;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "xos-dev", about = "XOS benchmarks and soak test")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmark ceiling: serve a file's bytes behind the same cached basic-auth check, no database.
    BenchCeiling {
        #[arg(long)]
        body: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8099")]
        addr: String,
        #[arg(long, default_value = "padmin@vicci.org")]
        email: String,
        #[arg(long, default_value = "letmein")]
        password: String,
    },
    /// Mixed API traffic against a running server for a long time (`make soak`): per minute,
    /// requests, errors, p50/p99 latency and the server's RSS.
    Soak {
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        url: String,
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Requests per second (default: half the capacity measured first).
        #[arg(long)]
        rate: Option<f64>,
        /// The server's pid, for its RSS.
        #[arg(long)]
        server_pid: Option<u32>,
        #[arg(long, default_value = "padmin@vicci.org")]
        email: String,
        #[arg(long, default_value = "letmein")]
        password: String,
    },
    /// Synchronizer benchmark on a fresh database (latency, throughput, idle pass).
    BenchSync {
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = 10_000)]
        throughput: usize,
        #[arg(long, default_value_t = 1_000)]
        small: usize,
        #[arg(long, default_value_t = 100_000)]
        large: usize,
    },
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    if let Command::BenchCeiling {
        body,
        addr,
        email,
        password,
    } = &cli.command
    {
        let bytes = std::fs::read(body).map_err(|e| format!("{}: {e}", body.display()))?;
        return bench::serve_ceiling(addr, bytes, email, password)
            .await
            .map_err(|e| e.to_string());
    }
    if let Command::Soak {
        url,
        minutes,
        rate,
        server_pid,
        email,
        password,
    } = &cli.command
    {
        let report = soak::run(soak::SoakOptions {
            base: url.clone(),
            email: email.clone(),
            password: password.clone(),
            minutes: *minutes,
            rate: *rate,
            server_pid: *server_pid,
        })
        .await?;
        if let Some(g) = report.rss_growth_pct {
            println!("server RSS growth over the run: {g:.1} %");
        }
        if report.errors > 0 {
            return Err(format!(
                "{} of {} requests failed",
                report.errors, report.requests
            ));
        }
        return Ok(());
    }
    if let Command::BenchSync {
        database_url,
        throughput,
        small,
        large,
    } = &cli.command
    {
        let f = bench::sync_benchmark(database_url, *throughput, *small, *large).await?;
        println!(
            "latency_p50_ms={:.2} latency_p99_ms={:.2} throughput_per_s={:.0} idle_{}_ms={:.2} idle_{}_ms={:.2}",
            f.latency_p50_ms,
            f.latency_p99_ms,
            f.throughput_per_s,
            f.small,
            f.idle_small_ms,
            f.large,
            f.idle_large_ms
        );
        return Ok(());
    }
    Ok(())
}
