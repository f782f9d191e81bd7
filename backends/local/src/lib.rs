//! The `local` backend: an Instance whose deployment has a Controller of `backend_type` `local`
//! runs as a supervised process on this host.
//!
//! - The Image's `path` is the command line (`xos workload` when empty; a first word `xos` is
//!   this binary). The Flavor's `memory_mb` becomes the address-space limit (setrlimit) and its
//!   `vcpus` the CPUs the process may run on (affinity).
//! - Each process carries markers in its environment (`XOS_LOCAL_BACKEND`, `XOS_LOCAL_KIND`,
//!   `XOS_OBJECT_ID`, `XOS_OBJECT_SPEC`), so a restarted synchronizer finds and adopts what runs
//!   instead of starting it twice, and finds orphans (processes of deleted instances) to stop.
//!   The kind separates what different steps run (instances, a service's tenants).
//! - Output goes to `<state_dir>/instances/<id>.log`; the pid is recorded in `instance_id`.
//! - `XOS_SLICE_DIR` names the slice's directory on this host (`<state_dir>/slices/<id>`), where
//!   services deliver what the slice's instances need (Syndicate storage's credentials).
//! - A process that dies at start fails the sync with its reason (e.g. the memory limit); one
//!   that dies later is restarted by the drift step, which says so in `backend_status`.

use backend_kit::{Link, LinkStep};
use registry::fields::{common, controller_slice, instance};
use registry::{BackendStatus, SqlType};
use serde::Deserialize;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use store::db::{Sql, Value};
use store::{Record, select_sql, types};
use synchronizer::{Enacted, Step, StepContext, SyncError, and_where, default_fetch_pending};

/// The `backend_type` that selects this backend.
pub const BACKEND: &str = "local";

/// What the local backend may run and within which limits (`[local_backend]`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LocalBackendConfig {
    /// The command lines an Image's `path` may start with, word by word (`xos` is this
    /// binary). Anything else is refused: an image is a command run on this host.
    pub commands: Vec<String>,
    /// Limits of every process it starts (besides the flavor's memory and CPUs): open files,
    /// the size of a file it writes, processes of its user (0: no limit).
    pub max_open_files: u64,
    pub max_file_size_mb: u64,
    pub max_processes: u64,
    /// Instances one site may run on this host at once (0: no cap): a site's PIs create slices
    /// and instances at will, and each is a process here.
    pub max_instances_per_site: u64,
    /// The user workloads run as when XOS runs as root (its primary group too): an image is a
    /// command a tenant chose, and root's is the whole host. Caches (nginx's workers) and the
    /// DNS server drop to it themselves. Ignored when XOS is not root: it cannot switch users,
    /// and runs everything as itself.
    pub run_as: String,
}

impl Default for LocalBackendConfig {
    fn default() -> Self {
        LocalBackendConfig {
            commands: vec!["xos workload".into()],
            max_open_files: 1024,
            max_file_size_mb: 1024,
            max_processes: 4096,
            max_instances_per_site: 50,
            run_as: "nobody".into(),
        }
    }
}

/// Instances of deployments with a local controller.
const LOCAL: &str =
    "t.deployment_id IN (SELECT deployment_id FROM core_controller WHERE NOT deleted AND backend_type = ";

/// How long a new process must survive to count as started.
const START_GRACE: Duration = Duration::from_millis(400);

/// What the local backend runs for an object.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Spec {
    /// The command line; a first word `xos` is this binary.
    pub argv: Vec<String>,
    /// Extra environment (a tenant's message and port).
    pub env: Vec<(String, String)>,
    /// Address-space limit (0: none).
    pub memory_mb: i64,
    /// CPUs it may run on (0: all).
    pub vcpus: i64,
    /// The program switches to the unprivileged user itself once it has set up (nginx's `user`,
    /// Knot's `server.user`), so it starts as XOS's user.
    pub drops_privileges: bool,
    /// Directories the process writes besides its home (a server's state), handed to the user
    /// it runs as.
    pub writable: Vec<PathBuf>,
}

/// The unprivileged user workloads run as when XOS is root.
#[derive(Clone, Debug, PartialEq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    /// The name of its primary group.
    pub group: String,
}

/// The user processes are switched to: `None` unless XOS runs as root; an error when the
/// configured user does not exist (nothing runs as root in its place).
pub fn run_as(config: &LocalBackendConfig) -> Result<Option<RunAs>, SyncError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    lookup_user(&config.run_as).map(Some).ok_or_else(|| {
        SyncError::Failed(format!(
            "the user {:?} to run workloads as (local_backend.run_as) does not exist",
            config.run_as
        ))
    })
}

/// Whether two paths name the same file.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// The uid, gid and group name of user `name`, from the system's user database.
fn lookup_user(name: &str) -> Option<RunAs> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: getpwnam_r writes the entry into `pw` and the strings it points to into `buf`,
    // both owned here and larger than it is told; `out` is null or `&mut pw` afterwards.
    let (uid, gid) = unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(cname.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out);
        if rc != 0 || out.is_null() {
            return None;
        }
        (pw.pw_uid, pw.pw_gid)
    };
    // SAFETY: as above, for the group entry; its name is copied out before `buf` is reused.
    let group = unsafe {
        let mut gr: libc::group = std::mem::zeroed();
        let mut out: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr(), buf.len(), &mut out);
        if rc != 0 || out.is_null() {
            gid.to_string()
        } else {
            std::ffi::CStr::from_ptr(gr.gr_name)
                .to_string_lossy()
                .into_owned()
        }
    };
    Some(RunAs {
        uid,
        gid,
        user: name.to_string(),
        group,
    })
}

impl Spec {
    /// A short fingerprint of the spec (in the process's environment).
    pub fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in format!("{:?}|{:?}|{}|{}", self.argv, self.env, self.memory_mb, self.vcpus).bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// A process of ours found running.
#[derive(Clone, Debug)]
pub struct Found {
    pub pid: i32,
    /// The fingerprint of the spec it was started with.
    pub spec: String,
}

/// The processes and children of one backend directory and kind.
pub struct LocalBackend {
    dir: PathBuf,
    kind: &'static str,
    /// Limits of every process (the allow-list is checked where image commands are read).
    limits: LocalBackendConfig,
    /// What a command's first word `xos` runs: this binary, unless told otherwise (tests run
    /// from a test binary).
    xos: PathBuf,
    children: Mutex<HashMap<i32, Child>>,
}

impl LocalBackend {
    /// The backend of instances.
    pub fn new(state_dir: &Path) -> LocalBackend {
        LocalBackend::with_kind(state_dir, "instances")
    }

    /// The backend of another kind of object (a service's tenants).
    pub fn with_kind(state_dir: &Path, kind: &'static str) -> LocalBackend {
        LocalBackend {
            dir: state_dir.to_path_buf(),
            kind,
            limits: Default::default(),
            xos: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("xos")),
            children: Mutex::new(HashMap::new()),
        }
    }

    /// Start processes within these limits.
    pub fn limits(mut self, limits: &LocalBackendConfig) -> LocalBackend {
        self.limits = limits.clone();
        self
    }

    /// Run `path` for commands whose first word is `xos`.
    pub fn xos_binary(mut self, path: &Path) -> LocalBackend {
        self.xos = path.to_path_buf();
        self
    }

    fn marker(&self) -> String {
        self.dir.display().to_string()
    }

    /// Where the process of object `id` writes its output.
    pub fn log_path(&self, id: i64) -> PathBuf {
        self.dir.join(self.kind).join(format!("{id}.log"))
    }

    /// Collect exited children (no zombies) and forget them.
    fn reap(&self) {
        self.children
            .lock()
            .expect("children lock")
            .retain(|_, c| matches!(c.try_wait(), Ok(None)));
    }

    /// Our running processes of this kind, by object id.
    pub fn scan(&self) -> HashMap<i64, Vec<Found>> {
        self.scan_kinds(false)
    }

    /// Our running processes (of every kind with `all_kinds`), by object id.
    fn scan_kinds(&self, all_kinds: bool) -> HashMap<i64, Vec<Found>> {
        self.reap();
        let marker = format!("XOS_LOCAL_BACKEND={}", self.marker());
        let kind = format!("XOS_LOCAL_KIND={}", self.kind);
        let mut out: HashMap<i64, Vec<Found>> = HashMap::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return out;
        };
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(env) = std::fs::read(e.path().join("environ")) else {
                continue;
            };
            let vars: Vec<&[u8]> = env.split(|b| *b == 0).collect();
            if !vars.contains(&marker.as_bytes())
                || (!all_kinds && !vars.contains(&kind.as_bytes()))
                || is_zombie(pid)
            {
                continue;
            }
            let get = |key: &str| {
                vars.iter()
                    .find_map(|v| std::str::from_utf8(v).ok()?.strip_prefix(key).map(str::to_string))
            };
            if let Some(id) = get("XOS_OBJECT_ID=").and_then(|s| s.parse::<i64>().ok()) {
                out.entry(id).or_default().push(Found {
                    pid,
                    spec: get("XOS_OBJECT_SPEC=").unwrap_or_default(),
                });
            }
        }
        out
    }

    /// Start the process of object `id`; `Ok(pid)` once it survived its first moments.
    pub fn spawn(&self, id: i64, spec: &Spec) -> Result<i32, SyncError> {
        let log_path = self.log_path(id);
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| SyncError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        }
        // Output is for XOS to read, not for the other workloads.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .map_err(|e| SyncError::Failed(format!("cannot open {}: {e}", log_path.display())))?;
        let err_log = log.try_clone().map_err(|e| SyncError::Failed(e.to_string()))?;
        let start = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let (program, args) = spec
            .argv
            .split_first()
            .ok_or_else(|| SyncError::Failed("the image has no command".into()))?;
        // As root, a workload runs as the unprivileged user, in a home it owns, from a copy of
        // this binary it can reach (ours may sit in a home only root may enter).
        let user = if spec.drops_privileges {
            None
        } else {
            run_as(&self.limits)?
        };
        let home = self.dir.join(self.kind);
        // `xos`, or this binary named by its path.
        let is_xos = program == "xos" || same_file(Path::new(program), &self.xos);
        let program = match (is_xos, &user) {
            (true, Some(_)) => self.reachable_xos()?,
            (true, None) => self.xos.clone(),
            (false, _) => PathBuf::from(program),
        };
        let mut cmd = Command::new(&program);
        if let Some(u) = &user {
            self.enterable_by(u)?;
            for dir in std::iter::once(&home).chain(&spec.writable) {
                std::os::unix::fs::chown(dir, Some(u.uid), Some(u.gid)).map_err(|e| {
                    SyncError::Failed(format!("cannot hand {} to {}: {e}", dir.display(), u.user))
                })?;
            }
            // (std drops the supplementary groups too when root switches.)
            cmd.uid(u.uid).gid(u.gid);
        }
        // A cleared environment: the workload gets what it needs, never the server's own
        // (database URL, passwords, tokens).
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .env("HOME", &home)
            .current_dir(&home)
            .env("XOS_LOCAL_BACKEND", self.marker())
            .env("XOS_LOCAL_KIND", self.kind)
            .env("XOS_OBJECT_ID", id.to_string())
            .env("XOS_OBJECT_SPEC", spec.fingerprint())
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        let (memory, vcpus) = (spec.memory_mb, spec.vcpus);
        let limits: [(libc::__rlimit_resource_t, u64); 5] = [
            (
                libc::RLIMIT_AS,
                (memory.max(0) as u64).saturating_mul(1024 * 1024),
            ),
            (libc::RLIMIT_NOFILE, self.limits.max_open_files),
            (
                libc::RLIMIT_FSIZE,
                self.limits.max_file_size_mb.saturating_mul(1024 * 1024),
            ),
            (libc::RLIMIT_NPROC, self.limits.max_processes),
            // No core dumps of workloads in the state directory.
            (libc::RLIMIT_CORE, u64::MAX),
        ];
        // SAFETY: between fork and exec only async-signal-safe calls (setsid, setrlimit,
        // sched_setaffinity) on values computed before the fork.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                for (resource, value) in limits {
                    // 0: no limit (the core dump entry: none at all).
                    let value = match (resource, value) {
                        (libc::RLIMIT_CORE, _) => 0,
                        (_, 0) => continue,
                        (_, v) => v as libc::rlim_t,
                    };
                    let lim = libc::rlimit {
                        rlim_cur: value,
                        rlim_max: value,
                    };
                    if libc::setrlimit(resource, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if vcpus > 0 {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    let ncpu = libc::sysconf(libc::_SC_NPROCESSORS_ONLN).max(1);
                    for cpu in 0..vcpus.min(ncpu as i64) {
                        libc::CPU_SET(cpu as usize, &mut set);
                    }
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| SyncError::Failed(format!("cannot start {}: {e}", program.display())))?;
        let pid = child.id() as i32;
        std::thread::sleep(START_GRACE);
        if let Ok(Some(status)) = child.try_wait() {
            return Err(SyncError::Failed(format!(
                "the process exited at start ({}): {}",
                describe_exit(status),
                self.reason(&log_path, start, spec)
            )));
        }
        self.children.lock().expect("children lock").insert(pid, child);
        Ok(pid)
    }

    /// Whether `user` can reach the state directory: XOS's own is opened to it (search only,
    /// not listing: `o+x`); a directory above it that is closed is an error saying which.
    fn enterable_by(&self, user: &RunAs) -> Result<(), SyncError> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone());
        if let Ok(m) = std::fs::metadata(&dir)
            && m.mode() & 0o001 == 0
        {
            let _ =
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode((m.mode() | 0o001) & 0o7777));
        }
        for d in dir.ancestors() {
            let m = std::fs::metadata(d)
                .map_err(|e| SyncError::Failed(format!("cannot read {}: {e}", d.display())))?;
            if m.mode() & 0o001 == 0 && m.uid() != user.uid {
                return Err(SyncError::Failed(format!(
                    "{} (mode {:o}) cannot be entered by {}, who runs the workloads: allow it (chmod o+x) \
                     or set local_backend.run_as",
                    d.display(),
                    m.mode() & 0o7777,
                    user.user
                )));
            }
        }
        Ok(())
    }

    /// This binary at `<state_dir>/bin/xos`, where the unprivileged user can run it: a hard
    /// link (a copy across file systems), made again when the binary changed.
    fn reachable_xos(&self) -> Result<PathBuf, SyncError> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let fail = |what: &str, p: &Path, e: std::io::Error| {
            SyncError::Failed(format!("cannot {what} {}: {e}", p.display()))
        };
        let bin = self.dir.join("bin");
        let dst = bin.join("xos");
        let src = std::fs::metadata(&self.xos).map_err(|e| fail("read", &self.xos, e))?;
        if let Ok(d) = std::fs::metadata(&dst)
            && ((d.dev(), d.ino()) == (src.dev(), src.ino())
                || (d.len() == src.len() && d.mtime() >= src.mtime()))
        {
            return Ok(dst);
        }
        std::fs::create_dir_all(&bin).map_err(|e| fail("create", &bin, e))?;
        let _ = std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755));
        // Made aside and renamed: a concurrent start sees the old binary or the new one.
        let tmp = bin.join(format!(
            ".xos.{}.{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&tmp);
        if std::fs::hard_link(&self.xos, &tmp).is_err() {
            std::fs::copy(&self.xos, &tmp).map_err(|e| fail("copy the binary to", &tmp, e))?;
        }
        let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755));
        std::fs::rename(&tmp, &dst).map_err(|e| fail("install", &dst, e))?;
        Ok(dst)
    }

    /// The last line the process wrote since `from`, with the memory limit when it ran out.
    fn reason(&self, log: &Path, from: u64, spec: &Spec) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(log) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(from.max(len.saturating_sub(4096))));
            let _ = f.read_to_string(&mut text);
        }
        // The telling line: an allocation failure or a panic, else the last thing it wrote.
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let last = lines
            .iter()
            .rev()
            .find(|l| l.contains("memory allocation") || l.contains("panicked") || l.contains("rror"))
            .or(lines.last())
            .copied()
            .unwrap_or("no output")
            .to_string();
        if last.contains("memory allocation") && spec.memory_mb > 0 {
            format!("{last} (memory limit {} MiB from the flavor)", spec.memory_mb)
        } else {
            last
        }
    }

    /// Stop processes: SIGTERM to their group, SIGKILL after a grace period.
    pub fn stop(&self, pids: &[i32]) {
        for &pid in pids {
            // SAFETY: signals to process groups we created (setsid), identified by marker.
            unsafe {
                libc::kill(-pid, libc::SIGTERM);
                libc::kill(pid, libc::SIGTERM);
            }
        }
        for _ in 0..30 {
            self.reap();
            if pids.iter().all(|&p| !alive(p)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for &pid in pids {
            // SAFETY: as above.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        self.reap();
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!(
            "killed by signal {sig}{}",
            if sig == libc::SIGABRT { " (abort)" } else { "" }
        ),
        _ => "ended".into(),
    }
}

/// The spec of an instance: its image's command, its flavor's limits.
async fn spec_of(ctx: &StepContext, obj: &Record) -> Result<Spec, SyncError> {
    let mut sql =
        Sql::new("SELECT i.path, f.memory_mb, f.vcpus FROM core_image i, core_flavor f WHERE i.id = ");
    sql.bind(Value::Int(obj.req(instance::IMAGE)?));
    sql.push(" AND f.id = ")
        .bind(Value::Int(obj.req(instance::FLAVOR)?));
    let rows = ctx
        .store
        .db()
        .fetch(&sql, &[SqlType::Text, SqlType::Int, SqlType::Int])
        .await?;
    let r = rows
        .first()
        .ok_or_else(|| SyncError::Failed("the instance's image or flavor is missing".into()))?;
    let path = r[0].as_str().unwrap_or("").trim();
    let argv: Vec<String> = if path.is_empty() {
        vec!["xos".into(), "workload".into()]
    } else {
        path.split_whitespace().map(str::to_string).collect()
    };
    let allowed = ctx.setting::<LocalBackendConfig>().commands;
    if !command_allowed(&argv, &ctx.xos_binary, &allowed) {
        return Err(SyncError::Failed(format!(
            "the image's command \"{}\" is not allowed on this host (local_backend.commands in the \
             configuration allows: {})",
            argv.first().map(String::as_str).unwrap_or(""),
            allowed.join("; ")
        )));
    }
    // The slice's directory on this host, where services deliver what its instances need
    // (Syndicate storage's credentials): `<state_dir>/slices/<slice id>`.
    let dir = slice_dir(&ctx.state_dir, obj.req(instance::SLICE)?);
    Ok(Spec {
        argv,
        env: vec![
            ("XOS_SLICE_DIR".into(), dir.display().to_string()),
            (
                "XOS_AUTHORIZED_KEYS".into(),
                keys_path(&ctx.state_dir, obj.id()).display().to_string(),
            ),
        ],
        memory_mb: r[1].as_int().unwrap_or(0),
        vcpus: r[2].as_int().unwrap_or(0),
        ..Spec::default()
    })
}

/// Where the SSH public keys of instance `id` are kept for its process (`XOS_AUTHORIZED_KEYS`):
/// a file beside its log, rewritten whenever the instance is enacted, so a member added to the
/// slice reaches the running process without a restart.
pub fn keys_path(state_dir: &Path, id: i64) -> PathBuf {
    state_dir.join("instances").join(format!("{id}.authorized_keys"))
}

/// Write the keys file (aside and renamed: a reader never sees half of it). Public keys: readable
/// by the user workloads run as.
fn write_keys(path: &Path, keys: &[String]) -> Result<(), SyncError> {
    use std::io::Write;
    let fail = |e: std::io::Error| SyncError::Failed(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut text = keys.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    if std::fs::read_to_string(path).is_ok_and(|have| have == text) {
        return Ok(());
    }
    let aside = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&aside)
        .map_err(fail)?;
    f.write_all(text.as_bytes()).map_err(fail)?;
    std::fs::rename(&aside, path).map_err(fail)
}

/// The other live instances of the site of `obj`'s slice.
async fn site_instances(ctx: &StepContext, obj: &Record) -> Result<Vec<i64>, SyncError> {
    let mut sql = Sql::new(
        "SELECT i.id FROM core_instance i JOIN core_slice s ON s.id = i.slice_id WHERE NOT i.deleted \
         AND s.site_id = (SELECT site_id FROM core_slice WHERE id = ",
    );
    sql.bind(Value::Int(obj.req(instance::SLICE)?));
    sql.push(") AND i.id <> ").bind(Value::Int(obj.id()));
    Ok(ctx
        .store
        .db()
        .fetch(&sql, &[SqlType::Int])
        .await?
        .iter()
        .filter_map(|r| r[0].as_int())
        .collect())
}

/// Whether `argv` starts with one of the allowed command lines, word by word (a first word that
/// is this binary counts as `xos`).
pub fn command_allowed(argv: &[String], xos: &Path, allowed: &[String]) -> bool {
    let mut words: Vec<&str> = argv.iter().map(String::as_str).collect();
    if let Some(first) = words.first_mut()
        && Path::new(first) == xos
    {
        *first = "xos";
    }
    allowed.iter().any(|line| {
        let want: Vec<&str> = line.split_whitespace().collect();
        !want.is_empty() && words.len() >= want.len() && words[..want.len()] == want[..]
    })
}

fn enacted(pid: i32, id: i64, status: String) -> Enacted {
    Enacted::with_status(status)
        .field("instance_id", Value::Text(pid.to_string()))
        .field("instance_name", Value::Text(format!("xos-instance-{id}")))
        .field("ip", Value::Text("127.0.0.1".into()))
}

/// Enacts local instances (internal step, driven by changes).
pub struct LocalInstances {
    pub backend: std::sync::Arc<LocalBackend>,
}

#[async_trait::async_trait]
impl Step for LocalInstances {
    fn name(&self) -> &'static str {
        "local_instances"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["Instance"]
    }
    fn observes(&self) -> &'static str {
        "Instance"
    }
    fn concurrency(&self) -> usize {
        8
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        let mut extra = and_where(LOCAL, Value::Text(BACKEND.into()));
        extra.push(")");
        Ok(default_fetch_pending(&ctx.store, self.observes(), deletion, Some(extra)).await?)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let spec = spec_of(ctx, obj).await?;
        let id = obj.id();
        let keys = backend_kit::instance_keys(&ctx.store, obj).await?;
        write_keys(&keys_path(&ctx.state_dir, id), &keys)?;
        let cap = ctx.setting::<LocalBackendConfig>().max_instances_per_site;
        let siblings = if cap > 0 {
            site_instances(ctx, obj).await?
        } else {
            Vec::new()
        };
        let backend = self.backend.clone();
        tokio::task::spawn_blocking(move || {
            let running = backend.scan().remove(&id).unwrap_or_default();
            let (same, other): (Vec<Found>, Vec<Found>) =
                running.into_iter().partition(|f| f.spec == spec.fingerprint());
            if !other.is_empty() {
                backend.stop(&other.iter().map(|f| f.pid).collect::<Vec<_>>());
            }
            if let Some(f) = same.first() {
                // Already running as specified (e.g. started before a crash): adopt it.
                if same.len() > 1 {
                    backend.stop(&same[1..].iter().map(|f| f.pid).collect::<Vec<_>>());
                }
                return Ok(enacted(f.pid, id, format!("OK, running as pid {}", f.pid)));
            }
            if cap > 0 {
                let all = backend.scan();
                let running = siblings.iter().filter(|i| all.contains_key(i)).count() as u64;
                if running >= cap {
                    return Err(SyncError::Failed(format!(
                        "the site already runs {running} instances on this host, its cap \
                         ([local_backend] max_instances_per_site)"
                    )));
                }
            }
            let pid = backend.spawn(id, &spec)?;
            let what = if other.is_empty() {
                "OK"
            } else {
                "restarted with the new image, flavor or environment"
            };
            Ok(enacted(pid, id, format!("{what}, running as pid {pid}")))
        })
        .await
        .map_err(|e| SyncError::Failed(e.to_string()))?
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        let id = obj.id();
        let _ = std::fs::remove_file(keys_path(&ctx.state_dir, id));
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

/// Repairs drift (external step, on an interval): restarts enacted local instances whose process
/// died, and stops processes whose instance no longer exists.
pub struct LocalInstanceDrift {
    pub backend: std::sync::Arc<LocalBackend>,
    pub interval: Duration,
}

#[async_trait::async_trait]
impl Step for LocalInstanceDrift {
    fn name(&self) -> &'static str {
        "local_instance_drift"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["Instance"]
    }
    fn observes(&self) -> &'static str {
        "Instance"
    }
    fn enacts_changes(&self) -> bool {
        false // it re-checks enacted rows only
    }
    fn requested_interval(&self) -> Duration {
        self.interval
    }
    fn concurrency(&self) -> usize {
        8
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        if deletion {
            return Ok(Vec::new());
        }
        let model = ctx.store.model("Instance");
        // Every local instance (live or awaiting its backend delete): an exhaustive check, as
        // external steps are.
        let mut sql = select_sql(model);
        sql.push(" WHERE ");
        sql.push(LOCAL).bind(Value::Text(BACKEND.into()));
        sql.push(") ORDER BY t.id");
        let rows = ctx.store.db().fetch(&sql, &types(model)).await?;
        let all: Vec<Record> = rows.into_iter().map(|values| Record { model, values }).collect();
        let backend = self.backend.clone();
        let running = tokio::task::spawn_blocking(move || backend.scan())
            .await
            .map_err(|e| SyncError::Failed(e.to_string()))?;
        // Orphans: processes of instances that are gone.
        let known: std::collections::HashSet<i64> = all.iter().map(Record::id).collect();
        let orphans: Vec<i32> = running
            .iter()
            .filter(|(id, _)| !known.contains(id))
            .flat_map(|(_, f)| f.iter().map(|f| f.pid))
            .collect();
        if !orphans.is_empty() {
            tracing::info!(count = orphans.len(), "stopping processes of deleted instances");
            let backend = self.backend.clone();
            let _ = tokio::task::spawn_blocking(move || backend.stop(&orphans)).await;
        }
        // Drift: enacted, live instances whose process is not running.
        Ok(all
            .into_iter()
            .filter(|r| {
                r.opt(common::DELETED) == Some(false)
                    && r.opt(common::ROW_VERSION) == r.opt(common::ENACTED_VERSION)
                    && BackendStatus::parse(r.opt(common::BACKEND_STATUS).unwrap_or_default()).is_ok()
                    && !running.contains_key(&r.id())
            })
            .collect())
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let spec = spec_of(ctx, obj).await?;
        let id = obj.id();
        let backend = self.backend.clone();
        // A restart takes back the place the process had (the site's cap counted it).
        tokio::task::spawn_blocking(move || {
            let pid = backend.spawn(id, &spec).map_err(|e| {
                SyncError::Failed(format!("the process had exited and could not be restarted: {e}"))
            })?;
            Ok(enacted(
                pid,
                id,
                format!("restarted: the process had exited (drift repaired), running as pid {pid}"),
            ))
        })
        .await
        .map_err(|e| SyncError::Failed(e.to_string()))?
    }
    async fn delete_record(&self, _: &StepContext, _: &Record) -> Result<(), SyncError> {
        Ok(())
    }
}

/// The steps of the local backend, sharing one process table.
pub fn steps(ctx: &StepContext, drift_interval: Duration) -> Vec<std::sync::Arc<dyn Step>> {
    let backend = std::sync::Arc::new(
        LocalBackend::new(&ctx.state_dir)
            .xos_binary(&ctx.xos_binary)
            .limits(&ctx.setting::<LocalBackendConfig>()),
    );
    vec![
        std::sync::Arc::new(LocalControllers),
        std::sync::Arc::new(LinkStep::nothing(
            "local_sites",
            BACKEND,
            Link::Site,
            "OK, nothing to make on this host for a site",
        )),
        std::sync::Arc::new(LinkStep {
            enact: Some(|ctx, obj| Box::pin(make_slice_dir(ctx, obj))),
            remove: Some(|ctx, obj| Box::pin(remove_slice_dir(ctx, obj))),
            ..LinkStep::nothing("local_slices", BACKEND, Link::Slice, "")
        }),
        std::sync::Arc::new(LinkStep::nothing(
            "local_users",
            BACKEND,
            Link::User,
            "OK, nothing to make on this host for a user (workloads run as local_backend.run_as)",
        )),
        std::sync::Arc::new(LocalInstances {
            backend: backend.clone(),
        }),
        std::sync::Arc::new(LocalInstanceDrift {
            backend,
            interval: drift_interval,
        }),
    ]
}

/// The directory of slice `id` on this host (`XOS_SLICE_DIR` of its instances).
pub fn slice_dir(state_dir: &Path, id: i64) -> PathBuf {
    state_dir.join("slices").join(id.to_string())
}

/// A local ControllerSlice: the slice's directory, where services deliver what its instances
/// need. Passable (`0711`) by the user workloads run as, not listable.
async fn make_slice_dir(ctx: &StepContext, obj: &Record) -> Result<String, SyncError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = slice_dir(&ctx.state_dir, obj.req(controller_slice::SLICE)?);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(&dir)
        .map_err(|e| SyncError::Failed(format!("cannot create {}: {e}", dir.display())))?;
    Ok(format!("OK, slice directory {}", dir.display()))
}

/// A deleted local ControllerSlice: its directory goes (what services delivered into it too).
async fn remove_slice_dir(ctx: &StepContext, obj: &Record) -> Result<String, SyncError> {
    let dir = slice_dir(&ctx.state_dir, obj.req(controller_slice::SLICE)?);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(String::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(SyncError::Failed(format!("cannot remove {}: {e}", dir.display()))),
    }
}

/// A local Controller: this host, checked (its state directory can be written).
pub struct LocalControllers;

#[async_trait::async_trait]
impl Step for LocalControllers {
    fn name(&self) -> &'static str {
        "local_controllers"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["Controller"]
    }
    fn observes(&self) -> &'static str {
        "Controller"
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        if deletion {
            // The EC2 catalog step purges deleted controllers of every backend.
            return Ok(Vec::new());
        }
        // Controllers are `no_sync` by default (XOS's way of saying no model step makes them);
        // each backend checks its own when they are saved, as the OpenStack backend logs in.
        Ok(backend_kit::controllers(&ctx.store, BACKEND)
            .await?
            .into_iter()
            .filter(|c| c.opt(common::ROW_VERSION) > c.opt(common::ENACTED_VERSION))
            .collect())
    }
    async fn sync_record(&self, ctx: &StepContext, _: &Record) -> Result<Enacted, SyncError> {
        let dir = ctx.state_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| {
            SyncError::Failed(format!(
                "cannot create the state directory {}: {e}",
                dir.display()
            ))
        })?;
        let probe = dir.join(format!(".xos-probe-{}", std::process::id()));
        std::fs::write(&probe, b"").map_err(|e| {
            SyncError::Failed(format!("cannot write the state directory {}: {e}", dir.display()))
        })?;
        let _ = std::fs::remove_file(&probe);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        Ok(Enacted::with_status(format!(
            "OK, instances run as processes on {} (state in {})",
            host.trim(),
            std::path::absolute(&dir).unwrap_or(dir).display()
        )))
    }
    async fn delete_record(&self, _: &StepContext, _: &Record) -> Result<(), SyncError> {
        Ok(())
    }
}

/// `xos workload`: the small long-running program local instances run by default. It prints a
/// line, optionally takes memory (to show a flavor's limit), and waits to be stopped.
pub fn workload(allocate_mb: usize) -> ! {
    println!("xos workload started (pid {})", std::process::id());
    if allocate_mb > 0 {
        let mut v: Vec<u8> = Vec::with_capacity(allocate_mb * 1024 * 1024);
        v.resize(allocate_mb * 1024 * 1024, 1);
        println!("allocated {allocate_mb} MiB");
        std::mem::forget(v);
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The processes the local backend of `state_dir` runs, by instance id (for checks and tests).
pub fn running_processes(state_dir: &Path) -> HashMap<i64, Vec<i32>> {
    LocalBackend::new(state_dir)
        .scan()
        .into_iter()
        .map(|(id, f)| (id, f.iter().map(|f| f.pid).collect()))
        .collect()
}

/// The processes of one kind (`helloworld`) the local backend of `state_dir` runs, by object id.
pub fn running_of(state_dir: &Path, kind: &'static str) -> HashMap<i64, Vec<i32>> {
    LocalBackend::with_kind(state_dir, kind)
        .scan()
        .into_iter()
        .map(|(id, f)| (id, f.iter().map(|f| f.pid).collect()))
        .collect()
}

/// Stop every process (of every kind) of the local backend of `state_dir`.
pub fn stop_all(state_dir: &Path) {
    let backend = LocalBackend::new(state_dir);
    let pids: Vec<i32> = backend
        .scan_kinds(true)
        .values()
        .flatten()
        .map(|f| f.pid)
        .collect();
    backend.stop(&pids);
}

#[cfg(test)]
mod backend_type_tests {
    #[test]
    fn its_backend_type_is_one_a_controller_may_name() {
        assert!(registry::BACKEND_TYPES.iter().any(|(v, _)| *v == super::BACKEND));
    }
}
