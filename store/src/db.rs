//! The data layer over the two databases: the embedded SQLite file and Postgres.
//!
//! One SQL text serves both: placeholders are written `$1, $2, …`, which Postgres takes natively
//! and sqlx's SQLite driver maps to positional arguments. Values are typed ([`Value`]) so a NULL
//! is bound with its column's type (Postgres refuses an untyped NULL in some positions), and rows
//! are decoded by the types the caller expects, from the registry. sqlx's `Any` driver is not used:
//! its query builder emits `?` and it has no date-time types.
//!
//! SQLite gets a pool of readers and a single writer connection: units of work serialize on the
//! writer instead of failing with `SQLITE_BUSY` when two deferred transactions both upgrade to a
//! write lock. Postgres gets one pool.

use chrono::{DateTime, SecondsFormat, Utc};
use registry::SqlType;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Row as _, Sqlite, SqlitePool, Transaction};
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

/// Which SQL dialect a statement is written for, where the two differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A typed value, bound to a statement or decoded from a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// NULL, with the type of the column it stands for.
    Null(SqlType),
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Time(DateTime<Utc>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null(_))
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The value as JSON, the way the REST API shows it (timestamps in RFC 3339, UTC, `Z`).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null(_) => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Text(s) => s.clone().into(),
            Value::Time(t) => format_time(t).into(),
        }
    }
}

/// The fixed-width text form of a timestamp (SQLite column values and API output), so that
/// text order is time order.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parse a timestamp written by [`format_time`] (or any RFC 3339 form).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A statement under construction: SQL text with `$n` placeholders and their values.
#[derive(Clone, Debug, Default)]
pub struct Sql {
    pub text: String,
    pub args: Vec<Value>,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            args: Vec::new(),
        }
    }
    /// Append SQL text.
    pub fn push(&mut self, s: &str) -> &mut Sql {
        self.text.push_str(s);
        self
    }
    /// Append a placeholder for `v`.
    pub fn bind(&mut self, v: Value) -> &mut Sql {
        self.args.push(v);
        let _ = write!(self.text, "${}", self.args.len());
        self
    }
}

/// A decoded row: values in the order of the selected columns.
pub type Row = Vec<Value>;

/// Database errors.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    BadUrl(String),
    #[error("cannot create the database directory {0}: {1}")]
    Dir(String, std::io::Error),
}

/// A connection pool to either database.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite { readers: SqlitePool, writer: SqlitePool },
    Postgres(PgPool),
}

/// Make a SQLite database readable by its owner only (its WAL and shared-memory files follow
/// the database's mode): it holds password hashes and sessions, and the local backend's
/// workloads run on this host. A file of someone else's is left as it is.
fn owner_only(path: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for p in [path.to_string(), format!("{path}-wal"), format!("{path}-shm")] {
            if let Ok(m) = std::fs::metadata(&p)
                && m.permissions().mode() & 0o077 != 0
            {
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
}

impl Db {
    /// Connect to `url` (`sqlite://path` or `postgres://…`), creating a SQLite file if missing.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            Ok(Db::Postgres(pool))
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| DbError::Dir(dir.display().to_string(), e))?;
            }
            let opts = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // sqlx runs each SQLite connection on a thread of its own and hands rows over a
                // channel; a buffer larger than a page of results avoids a thread switch per row.
                .row_buffer_size(1024);
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts.clone())
                .await?;
            owner_only(path);
            let readers = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(opts.read_only(false))
                .await?;
            Ok(Db::Sqlite { readers, writer })
        } else {
            Err(DbError::BadUrl(url.to_string()))
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite { .. } => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Apply the migrations of this dialect (`migrations/sqlite`, `migrations/postgres`).
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Db::Sqlite { writer, .. } => sqlx::migrate!("../migrations/sqlite").run(writer).await?,
            Db::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Whether every embedded migration has been applied.
    pub async fn migrations_current(&self) -> Result<bool, DbError> {
        let expected = match self {
            Db::Sqlite { .. } => sqlx::migrate!("../migrations/sqlite").migrations.len(),
            Db::Postgres(_) => sqlx::migrate!("../migrations/postgres").migrations.len(),
        } as i64;
        let rows = self
            .fetch(
                &Sql::new("SELECT COUNT(*) FROM _sqlx_migrations WHERE success"),
                &[SqlType::Int],
            )
            .await?;
        Ok(rows.first().and_then(|r| r[0].as_int()) == Some(expected))
    }

    /// Run a query outside any unit of work and decode its rows.
    pub async fn fetch(&self, sql: &Sql, types: &[SqlType]) -> Result<Vec<Row>, DbError> {
        match self {
            Db::Sqlite { readers, .. } => {
                let rows = bind_sqlite(sqlx::query(&sql.text), &sql.args)
                    .fetch_all(readers)
                    .await?;
                rows.iter().map(|r| decode_sqlite(r, types)).collect()
            }
            Db::Postgres(pool) => {
                let rows = bind_pg(sqlx::query(&sql.text), &sql.args).fetch_all(pool).await?;
                rows.iter().map(|r| decode_pg(r, types)).collect()
            }
        }
    }

    /// Run a statement outside any unit of work (on the writer for SQLite).
    pub async fn execute(&self, sql: &Sql) -> Result<u64, DbError> {
        Ok(match self {
            Db::Sqlite { writer, .. } => bind_sqlite(sqlx::query(&sql.text), &sql.args)
                .execute(writer)
                .await?
                .rows_affected(),
            Db::Postgres(pool) => bind_pg(sqlx::query(&sql.text), &sql.args)
                .execute(pool)
                .await?
                .rows_affected(),
        })
    }

    /// Start a transaction. On SQLite it takes the single writer connection and its write lock
    /// at once (`BEGIN IMMEDIATE`), so concurrent units queue instead of deadlocking.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        Ok(match self {
            Db::Sqlite { writer, .. } => Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Start a transaction that only reads: on SQLite a deferred one on a reader connection
    /// (no write lock, so it never queues behind writers or holds them up), on Postgres a
    /// `READ ONLY` one.
    pub async fn begin_read(&self) -> Result<Tx, DbError> {
        Ok(match self {
            Db::Sqlite { readers, .. } => Tx::Sqlite(readers.begin().await?),
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await?;
                Tx::Postgres(tx)
            }
        })
    }

    /// The SQLite pool sessions are stored in, or the Postgres pool.
    pub fn sqlite_writer(&self) -> Option<&SqlitePool> {
        match self {
            Db::Sqlite { writer, .. } => Some(writer),
            Db::Postgres(_) => None,
        }
    }
    /// The SQLite readers' pool (None on Postgres).
    pub fn sqlite_readers(&self) -> Option<&SqlitePool> {
        match self {
            Db::Sqlite { readers, .. } => Some(readers),
            Db::Postgres(_) => None,
        }
    }
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match self {
            Db::Postgres(p) => Some(p),
            Db::Sqlite { .. } => None,
        }
    }

    /// Close every connection (lets a test remove its database file).
    pub async fn close(&self) {
        match self {
            Db::Sqlite { readers, writer } => {
                readers.close().await;
                writer.close().await;
            }
            Db::Postgres(p) => p.close().await,
        }
    }
}

/// An open transaction on either database.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub fn dialect(&self) -> Dialect {
        match self {
            Tx::Sqlite(_) => Dialect::Sqlite,
            Tx::Postgres(_) => Dialect::Postgres,
        }
    }

    pub async fn fetch(&mut self, sql: &Sql, types: &[SqlType]) -> Result<Vec<Row>, DbError> {
        match self {
            Tx::Sqlite(tx) => {
                let rows = bind_sqlite(sqlx::query(&sql.text), &sql.args)
                    .fetch_all(&mut **tx)
                    .await?;
                rows.iter().map(|r| decode_sqlite(r, types)).collect()
            }
            Tx::Postgres(tx) => {
                let rows = bind_pg(sqlx::query(&sql.text), &sql.args)
                    .fetch_all(&mut **tx)
                    .await?;
                rows.iter().map(|r| decode_pg(r, types)).collect()
            }
        }
    }

    pub async fn execute(&mut self, sql: &Sql) -> Result<u64, DbError> {
        Ok(match self {
            Tx::Sqlite(tx) => bind_sqlite(sqlx::query(&sql.text), &sql.args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Tx::Postgres(tx) => bind_pg(sqlx::query(&sql.text), &sql.args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        })
    }

    pub async fn commit(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await?,
            Tx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

fn bind_sqlite<'q>(mut q: SqliteQuery<'q>, args: &'q [Value]) -> SqliteQuery<'q> {
    for v in args {
        q = match v {
            Value::Null(SqlType::Bool) => q.bind(None::<bool>),
            Value::Null(SqlType::Int) => q.bind(None::<i64>),
            Value::Null(SqlType::Float) => q.bind(None::<f64>),
            Value::Null(SqlType::Text | SqlType::Time) => q.bind(None::<String>),
            Value::Bool(b) => q.bind(*b),
            Value::Int(i) => q.bind(*i),
            Value::Float(f) => q.bind(*f),
            Value::Text(s) => q.bind(s.as_str()),
            Value::Time(t) => q.bind(format_time(t)),
        };
    }
    q
}

fn bind_pg<'q>(mut q: PgQuery<'q>, args: &'q [Value]) -> PgQuery<'q> {
    for v in args {
        q = match v {
            Value::Null(SqlType::Bool) => q.bind(None::<bool>),
            Value::Null(SqlType::Int) => q.bind(None::<i64>),
            Value::Null(SqlType::Float) => q.bind(None::<f64>),
            Value::Null(SqlType::Text) => q.bind(None::<String>),
            Value::Null(SqlType::Time) => q.bind(None::<DateTime<Utc>>),
            Value::Bool(b) => q.bind(*b),
            Value::Int(i) => q.bind(*i),
            Value::Float(f) => q.bind(*f),
            Value::Text(s) => q.bind(s.as_str()),
            Value::Time(t) => q.bind(*t),
        };
    }
    q
}

fn decode_sqlite(row: &sqlx::sqlite::SqliteRow, types: &[SqlType]) -> Result<Row, DbError> {
    let mut out = Vec::with_capacity(types.len());
    for (i, ty) in types.iter().enumerate() {
        let v = match ty {
            SqlType::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
            SqlType::Int => row.try_get::<Option<i64>, _>(i)?.map(Value::Int),
            SqlType::Float => row.try_get::<Option<f64>, _>(i)?.map(Value::Float),
            SqlType::Text => row.try_get::<Option<String>, _>(i)?.map(Value::Text),
            SqlType::Time => row
                .try_get::<Option<String>, _>(i)?
                .and_then(|s| parse_time(&s))
                .map(Value::Time),
        };
        out.push(v.unwrap_or(Value::Null(*ty)));
    }
    Ok(out)
}

fn decode_pg(row: &sqlx::postgres::PgRow, types: &[SqlType]) -> Result<Row, DbError> {
    let mut out = Vec::with_capacity(types.len());
    for (i, ty) in types.iter().enumerate() {
        let v = match ty {
            SqlType::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
            // Our columns are BIGINT; literals and some expressions (`SELECT 1`) are INT4.
            SqlType::Int => match row.try_get::<Option<i64>, _>(i) {
                Ok(v) => v.map(Value::Int),
                Err(_) => row.try_get::<Option<i32>, _>(i)?.map(|n| Value::Int(n.into())),
            },
            SqlType::Float => row.try_get::<Option<f64>, _>(i)?.map(Value::Float),
            SqlType::Text => row.try_get::<Option<String>, _>(i)?.map(Value::Text),
            SqlType::Time => row.try_get::<Option<DateTime<Utc>>, _>(i)?.map(Value::Time),
        };
        out.push(v.unwrap_or(Value::Null(*ty)));
    }
    Ok(out)
}

/// Which unique constraint or foreign key a database error names, if it is one:
/// `(table, column)` as far as the message tells.
pub fn constraint_violation(err: &DbError) -> Option<ConstraintViolation> {
    let DbError::Sqlx(sqlx::Error::Database(e)) = err else {
        return None;
    };
    let kind = e.kind();
    match kind {
        sqlx::error::ErrorKind::UniqueViolation => {
            // SQLite: "UNIQUE constraint failed: core_site.login_base"; Postgres: constraint name
            // `<table>__<column>__uniq` (see `ddl`).
            let column = e
                .constraint()
                .and_then(|c| c.split("__").nth(1).map(str::to_string))
                .or_else(|| {
                    e.message()
                        .rsplit_once(": ")
                        .and_then(|(_, cols)| cols.split(',').next())
                        .and_then(|tc| tc.trim().rsplit_once('.').map(|(_, c)| c.to_string()))
                });
            Some(ConstraintViolation::Unique(column))
        }
        sqlx::error::ErrorKind::ForeignKeyViolation => Some(ConstraintViolation::ForeignKey),
        _ => None,
    }
}

/// Whether Postgres refused text because it holds a NUL character (SQLSTATE 22021): the
/// client's input, so a 400, never a 500, wherever such text reaches a query.
pub fn is_nul_in_text(err: &DbError) -> bool {
    let DbError::Sqlx(sqlx::Error::Database(e)) = err else {
        return false;
    };
    e.code().as_deref() == Some("22021")
}

/// A constraint the database refused a write for.
#[derive(Debug, PartialEq)]
pub enum ConstraintViolation {
    Unique(Option<String>),
    ForeignKey,
}
