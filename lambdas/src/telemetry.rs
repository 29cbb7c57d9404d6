//! Logs as CloudWatch wants them: one JSON object per line on stdout.

use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber: level from `RUST_LOG`, else Lambda's
/// `AWS_LAMBDA_LOG_LEVEL` (the function's logging configuration), else `info`. Lambda
/// timestamps every line itself, so the lines carry none.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| {
            EnvFilter::try_new(
                std::env::var("AWS_LAMBDA_LOG_LEVEL")
                    .map(|level| level.to_lowercase())
                    .unwrap_or_else(|_| "info".into()),
            )
        })
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .try_init();
}
