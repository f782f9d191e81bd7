//! The `xos` command: serve the API and UI, apply migrations, create users, write migrations.

use clap::{Parser, Subcommand};
use serde_json::json;
use server::migrations::{Outcome, make_migrations};
use server::state::Config;
use server::store::{Actor, StoreError};
use std::path::PathBuf;
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

#[derive(Parser)]
#[command(name = "xos", version, about = "XOS: a service-orchestration control plane")]
struct Cli {
    /// Configuration file (e.g. configurations/devel/xos.toml); defaults apply without one.
    #[arg(long, short, global = true, env = "XOS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// What a HelloWorld tenant runs: answer HTTP on 127.0.0.1:$XOS_HELLO_PORT with
    /// $XOS_HELLO_MESSAGE.
    #[command(hide = true)]
    HelloworldServe,
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
enum ToscaCommand {
    /// Create what the recipes describe and update what differs from them.
    Apply(ToscaArgs),
    /// Delete what the recipes describe, dependents first.
    Delete(ToscaArgs),
}

#[derive(clap::Args)]
struct ToscaArgs {
    /// Recipe files (TOSCA Simple Profile YAML); together they form one recipe.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print the plan (create / update / unchanged per node) without writing.
    #[arg(long)]
    dry_run: bool,
    /// Act as this user, whose permissions apply (default: the system).
    #[arg(long)]
    user: Option<String>,
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
    let cli = Cli::parse();
    // The workload is what local instances run, often under a small memory limit: it starts no
    // async runtime (no worker threads, stacks or allocator arenas to fit in the limit).
    if let Command::Workload { allocate_mb } = &cli.command {
        server::sync::local::workload(*allocate_mb);
    }
    if let Command::HelloworldServe = &cli.command {
        server::services::helloworld::serve();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xos: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xos: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    if let Command::Makemigrations { name, check, dir } = &cli.command {
        return match make_migrations(app::registry::registry(), dir, name, *check)
            .map_err(|e| e.to_string())?
        {
            Outcome::NoChanges => {
                println!("No changes detected");
                Ok(())
            }
            Outcome::Written(files) => {
                for f in files {
                    println!("wrote {}", f.display());
                }
                Ok(())
            }
        };
    }
    if let Command::Dmdot { dot, service } = &cli.command {
        let reg = app::registry::registry();
        if let Some(s) = service
            && !reg.services().contains(&s.as_str())
        {
            eprintln!(
                "error: unknown service {s:?}; this build has: {}",
                reg.services().join(", ")
            );
            std::process::exit(2);
        }
        let only = service.as_deref();
        let text = if *dot {
            server::sync::graph::dmdot_graphviz(reg, only)
        } else {
            server::sync::graph::dmdot_text(reg, only)
        };
        print!("{text}");
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
    if let Command::BackendStop = &cli.command {
        let dir = std::path::absolute(&config.state_dir).unwrap_or_else(|_| config.state_dir.clone());
        let running = server::sync::local::running_of(&dir, "instances").len()
            + server::sync::local::running_of(&dir, "helloworld").len();
        server::sync::local::stop_all(&dir);
        println!("stopped the local backend's processes of {running} object(s)");
        return Ok(());
    }
    // A recipe is checked before the database is opened: a typo needs no database.
    let recipe = match &cli.command {
        Command::Tosca { action } => {
            let args = match action {
                ToscaCommand::Apply(a) | ToscaCommand::Delete(a) => a,
            };
            let sources = server::tosca::read_sources(&args.files).map_err(|e| e.to_string())?;
            Some(
                server::tosca::parse(app::registry::registry(), &sources)
                    .map_err(|p| server::tosca::ToscaError::Problems(p).to_string())?,
            )
        }
        _ => None,
    };
    // A production configuration with a well-known password is refused before the database is
    // touched.
    if matches!(cli.command, Command::Setup | Command::Serve) {
        config.check_production()?;
    }
    let store = server::open_store(&config).await.map_err(|e| e.to_string())?;
    match cli.command {
        Command::Tosca { action } => {
            let (mode, args) = match action {
                ToscaCommand::Apply(a) => (server::tosca::Mode::Apply, a),
                ToscaCommand::Delete(a) => (server::tosca::Mode::Delete, a),
            };
            let actor = match &args.user {
                Some(email) => server::tosca::actor_for(&store, email)
                    .await
                    .map_err(|e| e.to_string())?,
                None => Actor::System,
            };
            server::seed::initial_data(&store)
                .await
                .map_err(|e| e.to_string())?;
            let recipe = recipe.expect("parsed above");
            let entries = server::tosca::run(&store, actor, &recipe, mode, args.dry_run)
                .await
                .map_err(|e| e.to_string())?;
            print!("{}", server::tosca::format_plan(&entries, args.dry_run));
            Ok(())
        }
        Command::Migrate => {
            println!("database migrated ({})", redact(&config.database_url));
            Ok(())
        }
        Command::Setup => {
            setup(&store, &config).await?;
            println!("database ready ({})", redact(&config.database_url));
            Ok(())
        }
        Command::List { plural, filters } => list(&store, &plural, &filters).await,
        Command::Createsuperuser {
            email,
            password,
            firstname,
            lastname,
            site,
        } => {
            let login_base = site.unwrap_or_else(|| config.bootstrap.site_login_base.clone());
            create_superuser(&store, &email, &password, &firstname, &lastname, &login_base)
                .await
                .map_err(|e| match e {
                    StoreError::Invalid(fields) => fields
                        .iter()
                        .map(|(f, m)| format!("{f}: {}", m.join(" ")))
                        .collect::<Vec<_>>()
                        .join("; "),
                    e => e.to_string(),
                })?;
            println!("created admin {email}");
            Ok(())
        }
        Command::Serve => serve(store, config).await,
        Command::Sync {
            once,
            service,
            metrics_addr,
        } => sync(store, config, once, service, metrics_addr).await,
        Command::Makemigrations { .. }
        | Command::Dmdot { .. }
        | Command::Workload { .. }
        | Command::HelloworldServe
        | Command::BackendStop => {
            unreachable!("handled above")
        }
    }
}

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

async fn create_superuser(
    store: &server::store::Store,
    email: &str,
    password: &str,
    firstname: &str,
    lastname: &str,
    login_base: &str,
) -> Result<(), StoreError> {
    let mut unit = store.begin(Actor::System).await?;
    let site_model = store.model("Site");
    let sites = store
        .find(
            &Actor::System,
            site_model,
            "login_base",
            server::db::Value::Text(login_base.into()),
        )
        .await?;
    let site = match sites.first() {
        Some(s) => s.id(),
        None => {
            let input = json!({"name": login_base, "login_base": login_base, "abbreviated_name": login_base});
            unit.create(site_model, input.as_object().expect("object"))
                .await?
                .id()
        }
    };
    let input = json!({
        "email": email, "password": password, "firstname": firstname, "lastname": lastname,
        "site": site, "is_admin": true,
    });
    unit.create(store.model("User"), input.as_object().expect("object"))
        .await?;
    unit.commit().await?;
    Ok(())
}

/// `xos sync`: the synchronizer without the API.
async fn sync(
    store: server::store::Store,
    config: Config,
    once: bool,
    service: Option<String>,
    metrics_addr: Option<String>,
) -> Result<(), String> {
    let engine = server::synchronizer_for(&store, &config, service.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    if once {
        let r = engine.run_once().await.map_err(|e| e.to_string())?;
        println!(
            "one pass: {} enacted, {} failed, {} deleted, {} policed, {} skipped",
            r.enacted, r.failed, r.deleted, r.policed, r.skipped
        );
        return Ok(());
    }
    let hub = std::sync::Arc::new(server::events::EventHub::default());
    server::events::start(&store, hub.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    if let Some(addr) = metrics_addr {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
        let mut hosts = config.clone();
        hosts.bind = addr
            .rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or_default();
        let app = server::ops::worker_router(store.clone(), engine.clone(), hosts)
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        let mut stopped = stop.subscribe();
        tracing::info!(%addr, "worker metrics at http://{addr}/metrics");
        tokio::spawn(async move {
            let quit = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(quit).await {
                tracing::warn!(error = %e, "worker metrics server stopped");
            }
        });
    }
    tracing::info!(steps = ?engine.order(), "synchronizer running");
    let run = tokio::spawn(engine.run(hub, stopped));
    shutdown_signal().await;
    let _ = stop.send(true);
    let _ = run.await;
    Ok(())
}

/// Ctrl-C or SIGTERM (what `make stop`, service managers and containers send).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}

/// The first data of a configuration: the admin, the recipes, the sample slices.
async fn setup(store: &server::store::Store, config: &Config) -> Result<(), String> {
    config.check_production()?;
    server::seed::bootstrap(store, &config.bootstrap)
        .await
        .map_err(|e| e.to_string())?;
    server::seed::apply_recipes(store, &config.recipes, &config.bootstrap.admin_email)
        .await
        .map_err(|e| e.to_string())?;
    server::seed::sample_data(store, &config.bootstrap)
        .await
        .map_err(|e| e.to_string())
}

/// `xos list`: a model's objects as a table (as the system: every object).
async fn list(store: &server::store::Store, plural: &str, filters: &[String]) -> Result<(), String> {
    let reg = app::registry::registry();
    let Some(model) = reg.by_plural(plural) else {
        let mut known: Vec<&str> = reg.models.iter().map(|m| m.plural.as_str()).collect();
        known.sort_unstable();
        return Err(format!("no collection '{plural}' (known: {})", known.join(", ")));
    };
    let mut params = Vec::new();
    for f in filters {
        let Some((k, v)) = f.split_once('=') else {
            return Err(format!("'{f}' is not a filter of the form field=value"));
        };
        params.push((k.to_string(), v.to_string()));
    }
    let unknown = server::store::ListQuery::unknown_params(model, &params);
    if let Some(first) = unknown.first() {
        let mut fields: Vec<&str> = model.readable_fields().map(|f| f.name.as_str()).collect();
        fields.sort_unstable();
        return Err(format!(
            "'{first}' is not a field of {} (filter on one of: {})",
            model.plural,
            fields.join(", ")
        ));
    }
    let query = server::store::ListQuery::parse(model, &params).map_err(|errors| {
        errors
            .iter()
            .map(|(f, m)| format!("{f}: {}", m.join(" ")))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let (rows, _) = store
        .list(&Actor::System, model, &query)
        .await
        .map_err(|e| e.to_string())?;
    let status = model.field_named("backend_status").is_some();
    let names: Vec<String> = rows.iter().map(server::api::json::human_readable_name).collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(4).max(4);
    println!(
        "{:>5}  {:<width$}{}",
        "id",
        "name",
        if status { "  backend_status" } else { "" }
    );
    for (r, name) in rows.iter().zip(&names) {
        let s = if status {
            r.get_str("backend_status").unwrap_or_default()
        } else {
            ""
        };
        println!("{:>5}  {:<width$}  {s}", r.id(), name);
    }
    println!(
        "({} {})",
        rows.len(),
        if rows.len() == 1 {
            &model.verbose_name
        } else {
            &model.verbose_name_plural
        }
    );
    Ok(())
}

async fn serve(store: server::store::Store, config: Config) -> Result<(), String> {
    setup(&store, &config).await?;
    let addr = format!("{}:{}", config.bind, config.port);
    let name = config.name.clone();
    let db = redact(&config.database_url);
    let engine = match config.synchronizer.as_str() {
        "none" => None,
        _ => Some(
            server::synchronizer(&store, &config)
                .await
                .map_err(|e| e.to_string())?,
        ),
    };
    let embedded = config.synchronizer == "embedded";
    let state = server::app_state(store, config).map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    if let Some(engine) = engine.filter(|_| embedded) {
        tracing::info!(steps = ?engine.order(), "synchronizer running in this process");
        state.metrics.set_engine(engine.clone());

        tokio::spawn(engine.run(state.events.clone(), stopped));
    }
    let pruned = state.store.clone();
    let days = state.config.change_log_days;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match server::store::changelog::prune(&pruned, days).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(entries = n, days, "pruned the change log"),
                Err(e) => tracing::warn!(error = %e, "could not prune the change log"),
            }
        }
    });
    let app = server::router(state).await.map_err(|e| e.to_string())?;

    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(configuration = %name, database = %db, "XOS is ready at http://{addr}/");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    })
    .await
    .map_err(|e| e.to_string())
}
