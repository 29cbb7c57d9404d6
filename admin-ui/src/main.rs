//! The dashboard's entry point: mounts [`App`] on the page's body.

use provisioner_admin_ui::App;

fn main() {
    leptos::mount::mount_to_body(App);
}
