//! The "database": an in-memory table behind a lock, with a little latency per query. Each
//! query is an internal span with OpenTelemetry's `db.*` fields; one query fails as a real one
//! might, and `#[instrument(err)]` marks that span failed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tracing::instrument;

/// How long one query takes.
const QUERY_TIME: Duration = Duration::from_millis(2);

/// A query that failed.
#[derive(Debug)]
pub struct DbError(&'static str);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "database error: {}", self.0)
    }
}

/// The users table (ids 1 to 100 exist from the start) and the order items, computed.
pub struct Db {
    users: Mutex<HashMap<u64, String>>,
}

impl Db {
    pub fn new() -> Self {
        let users = (1..=100).map(|id| (id, format!("user-{id}"))).collect();
        Db {
            users: Mutex::new(users),
        }
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<u64, String>> {
        // A panic while holding the lock leaves the map as it was: keep serving.
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[instrument(name = "db_query", skip(self), err, fields(
        otel.name = "SELECT users",
        db.system.name = "sqlite",
        db.operation.name = "SELECT",
        db.collection.name = "users",
    ))]
    pub async fn find_user(&self, id: u64) -> Result<Option<String>, DbError> {
        tokio::time::sleep(QUERY_TIME).await;
        Ok(self.users().get(&id).cloned())
    }

    #[instrument(name = "db_query", skip(self), err, fields(
        otel.name = "INSERT users",
        db.system.name = "sqlite",
        db.operation.name = "INSERT",
        db.collection.name = "users",
    ))]
    pub async fn insert_user(&self, name: &str) -> Result<u64, DbError> {
        tokio::time::sleep(QUERY_TIME).await;
        let mut users = self.users();
        let id = users.keys().max().map_or(1, |max| max + 1);
        users.insert(id, name.to_owned());
        Ok(id)
    }

    /// Item 0 of any order fails: the row is locked by a transaction that never ends.
    #[instrument(name = "db_query", skip(self), err, fields(
        otel.name = "SELECT order_items",
        db.system.name = "sqlite",
        db.operation.name = "SELECT",
        db.collection.name = "order_items",
    ))]
    pub async fn find_order_item(&self, order: u64, item: u64) -> Result<String, DbError> {
        tokio::time::sleep(QUERY_TIME).await;
        if item == 0 {
            return Err(DbError("lock wait timeout exceeded"));
        }
        Ok(format!("order {order} item {item}: 1 x widget"))
    }
}
