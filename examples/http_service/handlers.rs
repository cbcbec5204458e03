//! The app: its routes and handlers. Handlers return `Result`s and open spans with
//! `#[instrument(err)]`; none of them measures anything.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::instrument;

use crate::db::{Db, DbError};
use crate::downstream::{Pricing, UpstreamError};
use crate::trace;

/// The report route's body comes in this many chunks, each after this pause: a slow response
/// whose head is ready at once (time to first byte) long before its end (duration).
pub const REPORT_CHUNKS: u32 = 3;
/// See [`REPORT_CHUNKS`].
pub const REPORT_CHUNK_PAUSE: Duration = Duration::from_millis(100);

/// What the handlers share.
#[derive(Clone)]
pub struct State {
    db: Arc<Db>,
    pricing: Pricing,
}

impl State {
    pub fn new(pricing: Pricing) -> Self {
        State {
            db: Arc::new(Db::new()),
            pricing,
        }
    }
}

/// The routes, behind the `TraceLayer` (added with `Router::layer`, so it sees `MatchedPath`).
pub fn router(state: State) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/users", axum::routing::post(create_user))
        .route("/users/{id}", get(get_user))
        .route("/orders/{order_id}/items/{item_id}", get(get_order_item))
        .route("/quotes/{symbol}", get(get_quote))
        .route("/reports/{id}", get(get_report))
        .with_state(state)
        .layer(trace::layer())
}

/// Why a handler failed; the response says it with a status.
#[derive(Debug)]
pub enum AppError {
    NotFound(String),
    Invalid(String),
    Upstream(UpstreamError),
    Database(DbError),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::NotFound(what) => write!(f, "{what} not found"),
            AppError::Invalid(why) => write!(f, "invalid request: {why}"),
            AppError::Upstream(e) => e.fmt(f),
            AppError::Database(e) => e.fmt(f),
        }
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        AppError::Database(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Invalid(_) => StatusCode::BAD_REQUEST,
            AppError::Upstream(_) => StatusCode::BAD_GATEWAY,
            AppError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, self.to_string()).into_response()
    }
}

async fn healthz() -> &'static str {
    "ok"
}

#[instrument(skip(state), err)]
async fn get_user(Extract(state): Extract<State>, Path(id): Path<u64>) -> Result<String, AppError> {
    state
        .db
        .find_user(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("user {id}")))
}

#[instrument(skip_all, err)]
async fn create_user(
    Extract(state): Extract<State>,
    name: String,
) -> Result<(StatusCode, String), AppError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AppError::Invalid("the body must be a user name".into()));
    }
    let id = state.db.insert_user(name).await?;
    Ok((StatusCode::CREATED, format!("/users/{id}")))
}

#[instrument(skip(state), err)]
async fn get_order_item(
    Extract(state): Extract<State>,
    Path((order_id, item_id)): Path<(u64, u64)>,
) -> Result<String, AppError> {
    Ok(state.db.find_order_item(order_id, item_id).await?)
}

#[instrument(skip(state), err)]
async fn get_quote(
    Extract(state): Extract<State>,
    Path(symbol): Path<String>,
) -> Result<String, AppError> {
    if symbol.is_empty() || !symbol.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(AppError::Invalid(format!(
            "`{symbol}` is not a ticker symbol"
        )));
    }
    state
        .pricing
        .price(&symbol)
        .await
        .map_err(AppError::Upstream)
}

/// Answers at once with a body that takes `REPORT_CHUNKS * REPORT_CHUNK_PAUSE` to arrive.
#[instrument]
async fn get_report(Path(id): Path<u64>) -> Response {
    let chunks = futures_util::stream::unfold(0, move |sent| async move {
        if sent == REPORT_CHUNKS {
            return None;
        }
        tokio::time::sleep(REPORT_CHUNK_PAUSE).await;
        let line = format!("report {id}, part {}\n", sent + 1);
        Some((Ok::<_, std::convert::Infallible>(line), sent + 1))
    });
    Body::from_stream(chunks).into_response()
}
