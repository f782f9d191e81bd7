//! What each command does.

use crate::cli::{Cli, Command, ToscaCommand};
use app::registry::fields::common;
use serde_json::json;
use server::config::SynchronizerMode;
use server::migrations::{Outcome, make_migrations};
use server::state::Config;
use server::store::{Actor, StoreError};

pub(crate) async fn run(cli: Cli) -> Result<(), String> {
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
            + server::services::process_kinds()
                .into_iter()
                .map(|kind| server::sync::local::running_of(&dir, kind).len())
                .sum::<usize>();
        server::sync::local::stop_all(&dir);
        let caches = server::services::stop_all(&dir);
        println!("stopped the local backend's processes of {running} object(s) and {caches} cache(s)");
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
    let run = tokio::spawn(engine.run(hub.subscribe(), stopped));
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
            r.opt(common::BACKEND_STATUS).unwrap_or_default()
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
    let engine = match config.synchronizer {
        SynchronizerMode::None => None,
        SynchronizerMode::Embedded | SynchronizerMode::External => Some(
            server::synchronizer(&store, &config)
                .await
                .map_err(|e| e.to_string())?,
        ),
    };
    let embedded = config.synchronizer == SynchronizerMode::Embedded;
    let state = server::app_state(store, config).map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    if let Some(engine) = engine.filter(|_| embedded) {
        tracing::info!(steps = ?engine.order(), "synchronizer running in this process");
        state.metrics.set_engine(engine.clone());

        tokio::spawn(engine.run(state.events.subscribe(), stopped));
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
