//! Pages and cursors. A list answers one page, `{items, nextCursor}`: `limit` (default
//! [`DEFAULT_PAGE_SIZE`], at most [`MAX_PAGE_SIZE`]) says how many items, `cursor` (the
//! previous page's `nextCursor`, null on the last page) where it starts. A cursor wraps
//! the backend's key of the next page with the kind of list it belongs to, so a cursor
//! of one list is refused by another; it stays valid while rows are added.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;

use super::error::bad_request;
use crate::api::ApiError;
use provisioner_app::fleet::Listed;

/// Items per page when `limit` is not given.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// The largest `limit` accepted.
pub const MAX_PAGE_SIZE: usize = 500;

/// The `limit` asked for, or the default.
pub(super) fn page_size(limit: Option<&str>) -> Result<usize, ApiError> {
    let Some(limit) = limit else {
        return Ok(DEFAULT_PAGE_SIZE);
    };
    match limit.parse::<usize>() {
        Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        _ => Err(bad_request(
            "invalid_limit",
            format!("limit={limit:?} is not a number from 1 to {MAX_PAGE_SIZE}"),
        )),
    }
}

/// The kind of list a cursor belongs to, so one from another list is refused.
#[derive(Clone, Copy)]
pub(super) enum CursorKind {
    Devices,
    Certificates,
    Audit,
    Registrations,
}

impl CursorKind {
    fn tag(self) -> &'static str {
        match self {
            Self::Devices => "d",
            Self::Certificates => "c",
            Self::Audit => "a",
            Self::Registrations => "r",
        }
    }
}

fn encode_cursor(kind: CursorKind, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{key}", kind.tag()))
}

/// The key inside a cursor of `kind`.
pub(super) fn decode_cursor(kind: CursorKind, cursor: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor.trim_end_matches('='))
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            text.strip_prefix(kind.tag())
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::to_owned)
        })
        .ok_or_else(invalid_cursor)
}

fn invalid_cursor() -> ApiError {
    bad_request(
        "invalid_cursor",
        "the cursor is not one this list returned: pass the nextCursor of the previous page unchanged, or omit cursor to start at the beginning",
    )
}

/// One page of a list.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

/// The API's page of a backend's [`Listed`] page.
pub(super) fn page<R, T>(listed: Listed<R>, view: impl Fn(R) -> T, kind: CursorKind) -> Page<T> {
    Page {
        items: listed.items.into_iter().map(view).collect(),
        next_cursor: listed.next.map(|key| encode_cursor(kind, &key)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn a_cursor_reads_back_only_as_its_own_kind() {
        let cursor = encode_cursor(CursorKind::Devices, "dev:1");
        assert_eq!(
            decode_cursor(CursorKind::Devices, &cursor).unwrap(),
            "dev:1"
        );
        assert!(!cursor.contains(['+', '/', '=']));
        let error = decode_cursor(CursorKind::Audit, &cursor).unwrap_err();
        assert_eq!(
            (error.status, error.code),
            (StatusCode::BAD_REQUEST, "invalid_cursor")
        );
        assert!(decode_cursor(CursorKind::Devices, "!!").is_err());
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_rows_were_found() {
        let full = page(
            Listed::cut(vec![1, 2, 3], 2, i32::to_string),
            |n| n,
            CursorKind::Audit,
        );
        assert_eq!(full.items, [1, 2]);
        let next = full.next_cursor.unwrap();
        assert_eq!(decode_cursor(CursorKind::Audit, &next).unwrap(), "2");
        let last = page(
            Listed::cut(vec![1, 2], 2, i32::to_string),
            |n| n,
            CursorKind::Audit,
        );
        assert_eq!(last.next_cursor, None);
    }
}
