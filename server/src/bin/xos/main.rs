//! The `xos` command: serve the API and UI, apply migrations, create users, write migrations.

mod cli;
mod commands;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

/// mimalloc: the API builds and frees many small strings per request; glibc's allocator spent a
/// third of the time of a list request (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc keeps freed pages for a second before giving them back, and only a thread that
/// allocates again gives them back at all: the 19 MB of an argon2 run (the bootstrap's hash, a
/// login) on a blocking thread that then idles stayed resident for good. Purging at once brings
/// the idle devel server from ~47 to ~21 MB of anonymous memory (with the first arena committed
/// on demand: `.cargo/config.toml`); `make bench` shows no cost. `MIMALLOC_PURGE_DELAY` still
/// overrides it.
fn return_freed_memory_promptly() {
    unsafe extern "C" {
        fn mi_option_get(option: std::os::raw::c_int) -> std::os::raw::c_long;
        fn mi_option_set(option: std::os::raw::c_int, value: std::os::raw::c_long);
    }
    /// `mi_option_purge_delay` in mimalloc 3's `mimalloc.h`; its default is 1000 (ms), which
    /// also tells that the index is right and that no environment variable set it.
    const PURGE_DELAY: std::os::raw::c_int = 15;
    // SAFETY: plain option accessors of the linked allocator, with a valid option index.
    unsafe {
        if mi_option_get(PURGE_DELAY) == 1000 {
            mi_option_set(PURGE_DELAY, 0);
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,tower_sessions=warn".into());
    // Logs go to standard error; standard output is for command results.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colours only on a terminal: logs written to files stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    return_freed_memory_promptly();
    init_logging();
    // A service's own subcommand (`xos helloworld-serve`): the server its tenants run.
    if let Some(name) = std::env::args().nth(1)
        && let Some(command) = server::services::catalog()
            .iter()
            .flat_map(|s| s.commands())
            .find(|c| c.name == name)
    {
        (command.run)();
    }
    let cli = Cli::parse();
    // The workload is what local instances run, often under a small memory limit: it starts no
    // async runtime (no worker threads, stacks or allocator arenas to fit in the limit).
    if let Command::Workload { allocate_mb } = &cli.command {
        server::sync::local::workload(*allocate_mb);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xos: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xos: {e}");
            ExitCode::FAILURE
        }
    }
}
