//! What every page shares: the loading, empty and error states, loading data that
//! follows the page's filters, times, and file downloads.

use std::future::Future;

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;

use crate::api::ApiError;

/// Data a page shows: loading, loaded, or failed with a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Load<T> {
    /// The request is under way.
    Loading,
    /// The answer.
    Ready(T),
    /// Why there is none.
    Failed(ApiError),
}

impl<T> From<Result<T, ApiError>> for Load<T> {
    fn from(result: Result<T, ApiError>) -> Self {
        match result {
            Ok(value) => Self::Ready(value),
            Err(e) => Self::Failed(e),
        }
    }
}

/// Loads `fetch(source())` now and again whenever the signals `source` reads change;
/// an answer that arrives after a newer request started is dropped, so typing fast in
/// a search box never shows an older result last.
pub fn fetched<T, S, Fut>(
    source: impl Fn() -> S + 'static,
    fetch: impl Fn(S) -> Fut + 'static,
) -> RwSignal<Load<T>>
where
    T: Clone + Send + Sync + 'static,
    S: 'static,
    Fut: Future<Output = Result<T, ApiError>> + 'static,
{
    let state = RwSignal::new(Load::Loading);
    let generation = StoredValue::new(0_u64);
    Effect::new(move |_| {
        let input = source();
        generation.update_value(|g| *g += 1);
        let mine = generation.get_value();
        state.set(Load::Loading);
        let request = fetch(input);
        spawn_local(async move {
            let result = request.await;
            // The page may be gone by now (the admin switched tabs): its values are
            // disposed, and the answer is dropped rather than set (`get_value` would panic).
            if generation.try_get_value() == Some(mine) {
                state.try_set(result.into());
            }
        });
    });
    state
}

/// The buttons under a paged list. `cursor` is the page shown (`None`: the first),
/// `earlier` the cursors of the pages before it, `next` the cursor the list answered
/// (`None`: this is the last page).
#[component]
pub fn Pager(
    /// The page shown.
    cursor: RwSignal<Option<String>>,
    /// The pages before it, most recent last.
    earlier: RwSignal<Vec<Option<String>>>,
    /// The next page's cursor.
    next: Option<String>,
    /// The label of the button back ("Previous", "Newer").
    back: &'static str,
    /// The label of the button forward ("Next", "Older").
    forward: &'static str,
) -> impl IntoView {
    let last_page = next.is_none();
    view! {
        <div class="pager">
            <button disabled=move || earlier.with(Vec::is_empty) on:click=move |_| {
                let previous = earlier.try_update(|e| e.pop()).flatten().flatten();
                cursor.set(previous);
            }>{back}</button>
            <button disabled=last_page on:click=move |_| {
                earlier.update(|e| e.push(cursor.get_untracked()));
                cursor.set(next.clone());
            }>{forward}</button>
        </div>
    }
}

/// A failed request, in words: the message, and what kind of failure it is. Never the
/// raw answer.
#[component]
pub fn ErrorMessage(
    /// The failure.
    error: ApiError,
) -> impl IntoView {
    let title = match error.status {
        0 => "No answer".to_owned(),
        401 => "Signed out".to_owned(),
        403 | 404 | 409 | 422 => "Refused".to_owned(),
        429 | 503 => "Busy, retry shortly".to_owned(),
        s if s >= 500 => "The service failed".to_owned(),
        _ => "Refused".to_owned(),
    };
    view! {
        <div class="state error" role="alert">
            <strong>{title}</strong>
            <p class="message">{error.message}</p>
        </div>
    }
}

/// The loading state.
#[component]
pub fn Loading(
    /// What is loading ("devices").
    #[prop(into)]
    what: String,
) -> impl IntoView {
    view! { <div class="state loading" aria-busy="true">{format!("Loading {what}…")}</div> }
}

/// The empty state: nothing to list, and what would fill it.
#[component]
pub fn Empty(
    /// The sentence to show.
    #[prop(into)]
    text: String,
) -> impl IntoView {
    view! { <div class="state empty">{text}</div> }
}

/// A status word as a coloured badge (`ACTIVE`, `REVOKED`, `allow`, `deny`, ...).
#[component]
pub fn Badge(
    /// The status.
    #[prop(into)]
    status: String,
) -> impl IntoView {
    let class = format!("badge badge-{}", status.to_ascii_lowercase());
    view! { <span class=class>{status}</span> }
}

/// `2026-11-28T17:20:05Z` as `2026-11-28 17:20:05 UTC`; anything else unchanged.
pub fn human_time(rfc3339: &str) -> String {
    match rfc3339.strip_suffix('Z').and_then(|t| t.split_once('T')) {
        Some((date, time)) => format!("{date} {time} UTC"),
        None => rfc3339.to_owned(),
    }
}

/// The first `n` characters and an ellipsis, for long hex values in tables.
pub fn short(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(n).collect::<String>())
    }
}

/// Offers `text` as a file download named `file_name`.
pub fn download(file_name: &str, text: &str, media_type: &str) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(media_type);
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options) else {
        return;
    };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
        return;
    };
    if let Some(anchor) = document
        .create_element("a")
        .ok()
        .and_then(|e| e.dyn_into::<web_sys::HtmlAnchorElement>().ok())
    {
        anchor.set_href(&url);
        anchor.set_download(file_name);
        anchor.click();
    }
    // The download reads the URL after this returns: let it go a little later.
    leptos::task::spawn_local(async move {
        sleep(60_000).await;
        let _ = web_sys::Url::revoke_object_url(&url);
    });
}

/// Waits `ms` milliseconds (polling).
pub async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_and_long_values_are_cut() {
        assert_eq!(
            human_time("2026-11-28T17:20:05Z"),
            "2026-11-28 17:20:05 UTC"
        );
        assert_eq!(human_time("1800000000"), "1800000000");
        assert_eq!(short("abcdef", 4), "abcd…");
        assert_eq!(short("abc", 4), "abc");
    }
}
