//! HelloWorld's synchronizer step: each tenant runs on the local backend as a small HTTP server
//! on a loopback port, answering every request with the tenant's `display_message`.
//!
//! The server is this binary (`xos helloworld-serve`), told its port and message through its
//! environment. The port is kept across changes (a new message restarts the server on the same
//! port), written back to the tenant with the pid. Deleting the tenant stops the server.

use crate::fields::hello_world_tenant;
use backend_local::{self as local, LocalBackend, Spec};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;
use store::Record;
use store::db::Value;
use synchronizer::{Enacted, Step, StepContext, SyncError};

/// The environment variables `xos helloworld-serve` reads.
const PORT_VAR: &str = "XOS_HELLO_PORT";
const MESSAGE_VAR: &str = "XOS_HELLO_MESSAGE";

pub fn steps(ctx: &StepContext) -> Vec<Arc<dyn Step>> {
    vec![Arc::new(HelloWorldTenants {
        backend: Arc::new(
            LocalBackend::with_kind(&ctx.state_dir, "helloworld")
                .xos_binary(&ctx.xos_binary)
                .limits(&ctx.setting::<local::LocalBackendConfig>()),
        ),
    })]
}

/// Enacts HelloWorld tenants.
pub struct HelloWorldTenants {
    backend: Arc<LocalBackend>,
}

fn spec(message: &str, port: u16) -> Spec {
    Spec {
        argv: vec!["xos".into(), "helloworld-serve".into()],
        env: vec![
            (PORT_VAR.into(), port.to_string()),
            (MESSAGE_VAR.into(), message.to_string()),
        ],
        ..Spec::default()
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> Result<u16, SyncError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| SyncError::Failed(format!("no free loopback port: {e}")))
}

fn enacted(pid: i32, port: u16, what: &str) -> Enacted {
    Enacted::with_status(format!(
        "{what}, serving on http://127.0.0.1:{port}/ as pid {pid}"
    ))
    .field("port", Value::Int(i64::from(port)))
    .field("pid", Value::Int(i64::from(pid)))
}

#[async_trait::async_trait]
impl Step for HelloWorldTenants {
    fn name(&self) -> &'static str {
        "helloworld_tenants"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["HelloWorldTenant"]
    }
    fn observes(&self) -> &'static str {
        "HelloWorldTenant"
    }
    fn concurrency(&self) -> usize {
        4
    }
    async fn sync_record(&self, _ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let id = obj.id();
        let message = obj.req(hello_world_tenant::DISPLAY_MESSAGE)?.to_string();
        // Unset until the first enactment.
        let recorded = obj
            .opt(hello_world_tenant::PORT)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0);
        let backend = self.backend.clone();
        tokio::task::spawn_blocking(move || {
            let running = backend.scan().remove(&id).unwrap_or_default();
            if let Some(port) = recorded {
                let wanted = spec(&message, port).fingerprint();
                if let Some(f) = running.iter().find(|f| f.spec == wanted) {
                    // Already serving this message on this port (e.g. before a restart).
                    let others: Vec<i32> = running.iter().filter(|o| o.pid != f.pid).map(|o| o.pid).collect();
                    backend.stop(&others);
                    return Ok(enacted(f.pid, port, "OK"));
                }
            }
            let restarted = !running.is_empty();
            backend.stop(&running.iter().map(|f| f.pid).collect::<Vec<_>>());
            let port = match recorded {
                Some(p) => p,
                None => free_port()?,
            };
            let pid = match backend.spawn(id, &spec(&message, port)) {
                Ok(pid) => pid,
                // The recorded port was taken meanwhile: move to a free one.
                Err(_) if recorded.is_some() => {
                    let port = free_port()?;
                    let pid = backend.spawn(id, &spec(&message, port))?;
                    return Ok(enacted(pid, port, "OK, moved to a new port"));
                }
                Err(e) => return Err(e),
            };
            Ok(enacted(
                pid,
                port,
                if restarted {
                    "OK, restarted with the new message"
                } else {
                    "OK"
                },
            ))
        })
        .await
        .map_err(|e| SyncError::Failed(e.to_string()))?
    }
    async fn delete_record(&self, _ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        let id = obj.id();
        let backend = self.backend.clone();
        tokio::task::spawn_blocking(move || {
            let pids: Vec<i32> = backend
                .scan()
                .remove(&id)
                .unwrap_or_default()
                .iter()
                .map(|f| f.pid)
                .collect();
            backend.stop(&pids);
        })
        .await
        .map_err(|e| SyncError::Failed(e.to_string()))
    }
}

/// `xos helloworld-serve`: answer every HTTP request on `127.0.0.1:$XOS_HELLO_PORT` with
/// `$XOS_HELLO_MESSAGE`. Runs without an async runtime (it is what tenants run).
pub fn serve() -> ! {
    let port = std::env::var(PORT_VAR).unwrap_or_default();
    let message = std::env::var(MESSAGE_VAR).unwrap_or_else(|_| "Hello World!".into());
    let listener = match TcpListener::bind(format!("127.0.0.1:{port}")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "helloworld serving on http://{}/ (pid {})",
        listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        std::process::id()
    );
    let body = format!("{message}\n");
    for stream in listener.incoming().flatten() {
        answer(stream, &body);
    }
    std::process::exit(0)
}

fn answer(mut stream: TcpStream, body: &str) {
    // The answer does not depend on the request.
    xos_service::read_request_head(&mut stream, Duration::from_secs(2));
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
}
