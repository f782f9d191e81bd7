//! The command line: `xos <command>` and its arguments.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "xos", version, about = "XOS: a service-orchestration control plane")]
pub(crate) struct Cli {
    /// Configuration file (e.g. configurations/devel/xos.toml); defaults apply without one.
    #[arg(long, short, global = true, env = "XOS_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Migrate the database, create the first admin if none exists, and serve the API and UI.
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Migrate, create the first admin if none exists, and apply the configuration's recipes
    /// (what `serve` does before serving).
    Setup,
    /// List objects of a model: `xos list slices site__login_base=mysite` (the REST API's
    /// filters), as id, name and backend status.
    List {
        /// The collection (`sites`, `slices`, `instances`, …).
        plural: String,
        /// Filters and options as the REST API takes them (`name=x`, `ordering=-id`).
        filters: Vec<String>,
    },
    /// Run the synchronizer alone (several may share one Postgres database).
    Sync {
        /// Run one pass and exit.
        #[arg(long)]
        once: bool,
        /// Run only this service's synchronizer (`core`: the core's backends and model
        /// policies; `helloworld`, …): one instance per service may run side by side.
        #[arg(long)]
        service: Option<String>,
        /// Serve /healthz, /readyz and /metrics of this worker at this address (e.g.
        /// 127.0.0.1:9101) for a Prometheus scraper.
        #[arg(long, env = "XOS_METRICS_ADDR")]
        metrics_addr: Option<String>,
    },
    /// Print the model dependency graph the synchronizer orders its steps by.
    Dmdot {
        /// Graphviz instead of text.
        #[arg(long)]
        dot: bool,
        /// Only this service's models (`core`, `helloworld`, …) and what they depend on.
        #[arg(long)]
        service: Option<String>,
    },
    /// The small long-running program local instances run by default.
    Workload {
        /// Take this much memory at start (shows a flavor's memory limit at work).
        #[arg(long, default_value_t = 0)]
        allocate_mb: usize,
    },
    /// Stop every process the local backend runs for this configuration (instances, tenants).
    BackendStop,
    /// Create an admin user.
    Createsuperuser {
        #[arg(long)]
        email: String,
        /// The password (else read from XOS_PASSWORD).
        #[arg(long, env = "XOS_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, default_value = "XOS")]
        firstname: String,
        #[arg(long, default_value = "admin")]
        lastname: String,
        /// login_base of the user's site (created if missing; default: the configuration's).
        #[arg(long)]
        site: Option<String>,
    },
    /// Apply or delete TOSCA recipes (one unit of work; nothing is written if any node fails).
    Tosca {
        #[command(subcommand)]
        action: ToscaCommand,
    },
    /// Write the next SQLite and Postgres migrations for changes in the model registry.
    Makemigrations {
        /// A short name for the migration.
        #[arg(long, default_value = "auto")]
        name: String,
        /// Write nothing; fail if the registry has changes no migration covers.
        #[arg(long)]
        check: bool,
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum ToscaCommand {
    /// Create what the recipes describe and update what differs from them.
    Apply(ToscaArgs),
    /// Delete what the recipes describe, dependents first.
    Delete(ToscaArgs),
}

#[derive(clap::Args)]
pub(crate) struct ToscaArgs {
    /// Recipe files (TOSCA Simple Profile YAML); together they form one recipe.
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// Print the plan (create / update / unchanged per node) without writing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Act as this user, whose permissions apply (default: the system).
    #[arg(long)]
    pub(crate) user: Option<String>,
}
