//! The dashboard's pages.

pub mod activity;
pub mod ca;
pub mod certificates;
pub mod crls;
pub mod devices;
pub mod import;
pub mod sign_in;
