//! The HTTP side: the embedded page, the JSON API and the live stream.

use crate::api::{self, EventsJson, HistoryJson, LiveJson, ObjectJson};
use crate::collect::Collector;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use netz_core::DOHandle;
use netz_net::NetStation;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::watch;

const INDEX_HTML: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");
const STYLE_CSS: &str = include_str!("web/style.css");

/// What every handler shares.
pub(crate) struct Ctx {
    pub(crate) station: NetStation,
    pub(crate) collector: Arc<Collector>,
    /// Bumped after every sample: live streams send on each bump.
    pub(crate) tick: watch::Receiver<u64>,
}

type Shared = Arc<Ctx>;

pub(crate) fn router(ctx: Shared) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/app.js", get(app_js))
        .route("/style.css", get(style_css))
        .route("/api", get(api_index))
        .route("/api/session", get(session))
        .route("/api/objects", get(objects))
        .route("/api/objects/{handle}", get(object))
        .route("/api/classes", get(classes))
        .route("/api/history", get(history))
        .route("/api/events", get(events))
        .route("/api/live", get(live))
        .fallback(not_found)
        .with_state(ctx)
}

/// An API error: a status and `{"error": "..."}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("bad query: {}", r.body_text()),
        )
    }
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no such page: {}", uri.path()),
    )
}

fn text(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    text("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    text("text/javascript; charset=utf-8", APP_JS)
}

async fn style_css() -> Response {
    text("text/css; charset=utf-8", STYLE_CSS)
}

async fn api_index() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "endpoints": [
            "/api/session", "/api/objects?q=&class=&limit=", "/api/objects/{handle}",
            "/api/classes", "/api/history", "/api/events?since=", "/api/live"
        ]
    }))
}

async fn session(State(ctx): State<Shared>) -> Json<api::SessionJson> {
    let addr = ctx.station.local_addr().to_string();
    Json(
        ctx.station
            .read(|st| api::session_json(st, &ctx.collector, addr)),
    )
}

#[derive(Deserialize)]
struct ObjectsQuery {
    /// Substring search.
    q: Option<String>,
    /// Only this class (name or id).
    class: Option<String>,
    /// At most this many.
    limit: Option<usize>,
}

fn all_objects(ctx: &Ctx) -> Vec<ObjectJson> {
    ctx.station.read(|st| {
        st.object_views()
            .iter()
            .map(|o| api::object_json(o, &ctx.collector))
            .collect()
    })
}

async fn objects(
    State(ctx): State<Shared>,
    query: Result<Query<ObjectsQuery>, QueryRejection>,
) -> Result<Json<Vec<ObjectJson>>, ApiError> {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(usize::MAX);
    let v = all_objects(&ctx)
        .into_iter()
        .filter(|o| api::matches(o, q.q.as_deref().unwrap_or("")))
        .filter(|o| match &q.class {
            None => true,
            Some(c) => o.class.eq_ignore_ascii_case(c) || o.class_id.to_string() == *c,
        })
        .take(limit)
        .collect();
    Ok(Json(v))
}

/// Reads a handle: a decimal number, `0x` and hex, or `DO(class:creator/serial)`.
pub(crate) fn parse_handle(s: &str) -> Option<DOHandle> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(DOHandle);
    }
    if let Some(inner) = s.strip_prefix("DO(").and_then(|r| r.strip_suffix(')')) {
        let (class, rest) = inner.split_once(':')?;
        let (creator, serial) = rest.split_once('/')?;
        let creator: u32 = creator.parse().ok()?;
        if creator > 0x00FF_FFFF {
            return None;
        }
        return Some(DOHandle::new(
            netz_core::ClassId(class.parse().ok()?),
            netz_core::StationId(creator),
            serial.parse().ok()?,
        ));
    }
    s.parse().ok().map(DOHandle)
}

async fn object(
    State(ctx): State<Shared>,
    Path(handle): Path<String>,
) -> Result<Json<api::ObjectDetailJson>, ApiError> {
    let h = parse_handle(&handle).ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("bad handle {handle:?}: use a number, 0x-hex or DO(class:creator/serial)"),
        )
    })?;
    ctx.station
        .read(|st| api::detail_json(st, h, &ctx.collector))
        .map(Json)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no object {h} in the store")))
}

async fn classes(State(ctx): State<Shared>) -> Json<Vec<api::ClassJson>> {
    Json(
        ctx.station
            .read(|st| api::classes_json(st, &st.object_views())),
    )
}

async fn history(State(ctx): State<Shared>) -> Json<HistoryJson> {
    Json(HistoryJson {
        interval_ms: ctx.collector.interval.as_millis() as u64,
        samples: ctx.collector.history(),
    })
}

#[derive(Deserialize)]
struct EventsQuery {
    since: Option<u64>,
}

async fn events(
    State(ctx): State<Shared>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<EventsJson>, ApiError> {
    let Query(q) = query?;
    let (events, next) = ctx.collector.events_since(q.since.unwrap_or(0));
    Ok(Json(EventsJson { next, events }))
}

fn live_json(ctx: &Ctx, since: u64) -> (LiveJson, u64) {
    let addr = ctx.station.local_addr().to_string();
    let (session, classes, objects, object_count) = ctx.station.read(|st| {
        let views = st.object_views();
        let objects = views
            .iter()
            .take(api::LIVE_OBJECTS)
            .map(|o| api::object_json(o, &ctx.collector))
            .collect();
        (
            api::session_json(st, &ctx.collector, addr),
            api::classes_json(st, &views),
            objects,
            views.len(),
        )
    });
    let (events, next) = ctx.collector.events_since(since);
    (
        LiveJson {
            session,
            classes,
            objects,
            object_count,
            sample: ctx.collector.latest(),
            events,
        },
        next,
    )
}

async fn live(State(ctx): State<Shared>) -> impl IntoResponse {
    let rx = ctx.tick.clone();
    let stream = futures_util::stream::unfold(
        (ctx, rx, 0u64, true),
        |(ctx, mut rx, since, first)| async move {
            if !first && rx.changed().await.is_err() {
                return None;
            }
            let (msg, next) = live_json(&ctx, since);
            let event = SseEvent::default()
                .event("update")
                .json_data(&msg)
                .unwrap_or_else(|_| SseEvent::default().event("error").data("cannot encode"));
            Some((Ok::<_, Infallible>(event), (ctx, rx, next, false)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_parse_in_three_forms_and_garbage_is_refused() {
        let h = DOHandle::new(netz_core::ClassId(100), netz_core::StationId(2), 7);
        assert_eq!(parse_handle(&h.0.to_string()), Some(h));
        assert_eq!(parse_handle(&format!("0x{:x}", h.0)), Some(h));
        assert_eq!(parse_handle(&h.to_string()), Some(h));
        for bad in [
            "",
            "x",
            "0xzz",
            "DO(1:2)",
            "DO(300:1/1)",
            "DO(1:99999999/1)",
            "-1",
        ] {
            assert_eq!(parse_handle(bad), None, "{bad}");
        }
    }
}
