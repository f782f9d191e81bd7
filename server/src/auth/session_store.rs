//! Browser sessions kept in the application's own database (SQLite or Postgres), so a restart
//! keeps users logged in and several server processes share them.

use crate::db::Db;
use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

/// Table the sessions live in.
const TABLE: &str = "xos_session";

/// The session store of whichever database the server runs on.
#[derive(Clone, Debug)]
pub enum DbSessionStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl DbSessionStore {
    /// Open (and create if needed) the session table.
    pub async fn open(db: &Db) -> Result<DbSessionStore, sqlx::Error> {
        match db {
            Db::Sqlite { writer, .. } => {
                let s = SqliteStore::new(writer.clone())
                    .with_table_name(TABLE)
                    .map_err(sqlx::Error::Protocol)?;
                s.migrate().await?;
                Ok(DbSessionStore::Sqlite(s))
            }
            Db::Postgres(pool) => {
                let schema: (String,) = sqlx::query_as("SELECT current_schema()").fetch_one(pool).await?;
                let s = PostgresStore::new(pool.clone())
                    .with_schema_name(&schema.0)
                    .and_then(|s| s.with_table_name(TABLE))
                    .map_err(sqlx::Error::Protocol)?;
                // Several servers start at once in the production configuration, and two
                // concurrent `CREATE TABLE IF NOT EXISTS` race in Postgres's catalog (a
                // duplicate key on pg_type). An advisory lock, held on its own connection,
                // lets one process create the table while the others wait and then find it.
                let mut conn = pool.acquire().await?;
                sqlx::query("SELECT pg_advisory_lock(hashtext(current_schema() || '.xos_session_migrate'))")
                    .execute(&mut *conn)
                    .await?;
                let migrated = s.migrate().await;
                sqlx::query(
                    "SELECT pg_advisory_unlock(hashtext(current_schema() || '.xos_session_migrate'))",
                )
                .execute(&mut *conn)
                .await?;
                migrated?;
                Ok(DbSessionStore::Postgres(s))
            }
        }
    }

    /// Remove expired sessions (run periodically).
    pub async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            DbSessionStore::Sqlite(s) => s.delete_expired().await,
            DbSessionStore::Postgres(s) => s.delete_expired().await,
        }
    }
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            DbSessionStore::Sqlite(s) => s.create(record).await,
            DbSessionStore::Postgres(s) => s.create(record).await,
        }
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            DbSessionStore::Sqlite(s) => s.save(record).await,
            DbSessionStore::Postgres(s) => s.save(record).await,
        }
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            DbSessionStore::Sqlite(s) => s.load(id).await,
            DbSessionStore::Postgres(s) => s.load(id).await,
        }
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            DbSessionStore::Sqlite(s) => s.delete(id).await,
            DbSessionStore::Postgres(s) => s.delete(id).await,
        }
    }
}

/// Sessions only where there can be one: a request that carries a cookie, and the login and
/// logout forms (which start and end them). An API client's request (basic auth or a token,
/// no cookie) skips parsing cookies and making an empty session, the costliest layer of a
/// cached read.
#[derive(Clone)]
pub struct SessionsWhereNeeded<L> {
    layer: L,
}

impl<L> SessionsWhereNeeded<L> {
    pub fn new(layer: L) -> SessionsWhereNeeded<L> {
        SessionsWhereNeeded { layer }
    }
}

impl<L: tower::Layer<S>, S: Clone> tower::Layer<S> for SessionsWhereNeeded<L> {
    type Service = MaybeSessions<L::Service, S>;
    fn layer(&self, inner: S) -> Self::Service {
        MaybeSessions {
            with: self.layer.layer(inner.clone()),
            without: inner,
        }
    }
}

/// The service of [`SessionsWhereNeeded`].
#[derive(Clone)]
pub struct MaybeSessions<W, S> {
    with: W,
    without: S,
}

impl<W, S> tower::Service<axum::extract::Request> for MaybeSessions<W, S>
where
    W: tower::Service<axum::extract::Request>,
    S: tower::Service<axum::extract::Request, Response = W::Response, Error = W::Error>,
{
    type Response = W::Response;
    type Error = W::Error;
    type Future = futures::future::Either<W::Future, S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        // Both must be ready: which one is called is known only with the request.
        match self.with.poll_ready(cx) {
            std::task::Poll::Ready(Ok(())) => self.without.poll_ready(cx),
            other => other,
        }
    }

    fn call(&mut self, req: axum::extract::Request) -> Self::Future {
        let needed = req.headers().contains_key(axum::http::header::COOKIE)
            || matches!(req.uri().path(), "/login" | "/logout");
        if needed {
            futures::future::Either::Left(self.with.call(req))
        } else {
            futures::future::Either::Right(self.without.call(req))
        }
    }
}
