//! The behaviour of services beyond the core, one module each: its synchronizer steps (its
//! models, with their TOSCA types, are declared in `registry::services`). Registered here, once:
//! a service is loaded when the configuration lists it (`services` in `xos.toml`), and each can
//! run as its own synchronizer (`xos sync --service NAME`).

pub mod dns;
pub mod helloworld;
pub mod hpc;
pub mod requestrouter;

use crate::sync::{Step, StepContext};
use std::sync::Arc;

/// The head of an HTTP request on `stream` (up to 8 KiB, until the blank line), with read and
/// write timeouts set: what the small servers of services (a HelloWorld tenant, the sample
/// origin) read before they answer.
pub(crate) fn read_request_head(stream: &mut std::net::TcpStream, timeout: std::time::Duration) -> String {
    use std::io::Read;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let mut buf = [0u8; 8192];
    let mut seen = 0;
    while seen < buf.len() {
        match stream.read(&mut buf[seen..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen += n;
                if buf[..seen].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&buf[..seen]).into_owned()
}

/// A server program services run (nginx, knotd): `$var` when set, else the first of the
/// system directories that has it (Debian installs them in /usr/sbin, which a cleared `PATH`
/// lacks), else the bare name for the `PATH` to find.
pub fn sbin_binary(name: &str, var: &str) -> std::path::PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return p.into();
    }
    ["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/local/nginx/sbin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| name.into())
}

/// Stop what services run on this host that the local backend cannot find by its markers (the
/// HPC caches: nginx rewrites its environment); the number stopped.
pub fn stop_all(state_dir: &std::path::Path) -> usize {
    hpc::nginx::stop_all(&state_dir.join("hpc"))
}

/// The synchronizer steps of the service `name` (none for a service without behaviour).
pub fn steps(name: &str, ctx: &StepContext) -> Vec<Arc<dyn Step>> {
    match name {
        "helloworld" => helloworld::steps(ctx),
        "hpc" => hpc::steps(ctx),
        "requestrouter" => requestrouter::steps(ctx),
        _ => Vec::new(),
    }
}
