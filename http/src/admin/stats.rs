//! Issuance statistics: `GET stats/issuance`, allow and deny decisions per hour.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::bad_request;
use super::input::query;
use super::AdminContext;
use crate::api::{rfc3339, ApiError};

/// Hours `GET stats/issuance` covers when `hours` is not given, and at most.
pub const DEFAULT_STATS_HOURS: u32 = 24;
/// The largest `hours` accepted (a week).
pub const MAX_STATS_HOURS: u32 = 168;

const SECONDS_PER_HOUR: i64 = 3600;

/// The query of `GET stats/issuance`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StatsQuery {
    hours: Option<String>,
}

/// One hour's decisions (the `HourBucket` schema).
#[derive(Debug, Serialize)]
pub(super) struct HourView {
    hour: String,
    allow: u64,
    deny: u64,
}

/// `GET stats/issuance`: one bucket per hour, oldest first, the last the current hour.
pub(super) async fn issuance_stats(
    State(context): State<Arc<AdminContext>>,
    parsed: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<Vec<HourView>>, ApiError> {
    let q = query(parsed)?;
    let hours = match q.hours.as_deref() {
        None => DEFAULT_STATS_HOURS,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=MAX_STATS_HOURS).contains(&n) => n,
            _ => {
                return Err(bad_request(
                    "invalid_hours",
                    format!("hours={text:?} is not a number from 1 to {MAX_STATS_HOURS}"),
                ))
            }
        },
    };
    // The last bucket is the current (partial) hour.
    let now = context.now();
    let until = now - now.rem_euclid(SECONDS_PER_HOUR) + SECONDS_PER_HOUR;
    let since = until - i64::from(hours) * SECONDS_PER_HOUR;
    let counted = context.fleet.decisions_per_hour(since, until).await?;
    let buckets = (0..i64::from(hours))
        .map(|n| {
            let hour = since + n * SECONDS_PER_HOUR;
            let found = counted.iter().find(|c| c.hour == hour);
            HourView {
                hour: rfc3339(hour),
                allow: found.map_or(0, |c| c.allow),
                deny: found.map_or(0, |c| c.deny),
            }
        })
        .collect();
    Ok(Json(buckets))
}
