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
