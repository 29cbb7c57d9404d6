//! The admin dashboard of the provisioning service: Leptos rendered in the browser
//! (client-side), built by Trunk (`Trunk.toml` at the workspace root, `bash
//! scripts/build-ui.sh`) and served by `provisioner serve` at `/`.
//!
//! It talks only to the admin API (`/admin/api`, bearer token) of the same origin, and,
//! to sign in through Cognito's hosted UI ([`oidc`]), to the user pool's token endpoint. A
//! manifest is checked in the browser by the service's own reader before it is sent
//! ([`manifest_check`]). Every page has its loading, empty and error states; errors are
//! shown as sentences, never as the raw answer. Nothing is styled inline: the page runs
//! under a Content-Security-Policy without `'unsafe-inline'`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod chart;
pub mod manifest_check;
pub mod oidc;
pub mod pages;
pub mod ui;

pub use app::App;
