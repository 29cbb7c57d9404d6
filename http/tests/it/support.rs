//! What the admin API modules (`admin_api`, `admin_jwt`) share: a clock the test moves,
//! the admin router over a fresh local data directory, and its answers read whole.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use provisioner_core::{Clock, UnixTime};
use provisioner_http::admin::AdminContext;
use provisioner_store_local::admin::LocalFleet;
use provisioner_store_local::authority::LocalAuthority;
use provisioner_store_local::datadir::DataDir;
use provisioner_store_local::registry::SqliteRegistry;
use serde_json::Value;
use tower::ServiceExt;

/// The tests' time.
pub const NOW: i64 = 1_800_000_000;

/// A clock the test moves.
#[derive(Debug)]
pub struct TestClock(pub AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}

impl TestClock {
    /// A clock at `t`.
    pub fn at(t: UnixTime) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(t)))
    }

    /// Moves the clock to `t`.
    pub fn set(&self, t: UnixTime) {
        self.0.store(t, Ordering::SeqCst);
    }
}

/// A fresh data directory with a development CA (made an hour before [`NOW`]) and its
/// SQLite registry, and the admin context over them on `clock`, accepting the data
/// directory's admin token.
pub struct LocalAdmin {
    /// The data directory.
    pub data_dir: DataDir,
    /// Its registry.
    pub registry: SqliteRegistry,
    /// Its admin token.
    pub token: String,
    /// The admin context over the local fleet.
    pub context: AdminContext,
}

impl LocalAdmin {
    /// Makes `base/data` and the context over it.
    pub fn new(base: &Path, clock: Arc<TestClock>) -> Self {
        let data_dir = DataDir::new(base.join("data"));
        data_dir.ensure_exists().unwrap();
        LocalAuthority::init_development(&data_dir.ca_dir(), NOW - 3600).unwrap();
        let registry = SqliteRegistry::open(data_dir.registry_path()).unwrap();
        let token = String::from_utf8(data_dir.admin_token().unwrap().bytes).unwrap();
        let context = AdminContext::new(Arc::new(
            LocalFleet::new(registry.clone(), data_dir.clone()).with_clock(clock.clone()),
        ))
        .with_token_file(data_dir.admin_token_path())
        .with_clock(clock);
        Self {
            data_dir,
            registry,
            token,
            context,
        }
    }
}

/// An answer of the router, its body read whole.
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON (panics with the answer when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {} {}", self.status, self.body))
    }

    /// The error code of a JSON error body (empty when there is none).
    pub fn code(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// Sends `request` through `router` in-process and reads the whole answer.
pub async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}
