//! Every certificate a filter matches, not one page: what `provisioner certs list`
//! prints. [`all_certificates_by_pages`] reads them through
//! [`FleetAdmin::certificates`] (the pages of `GET /admin/api/certificates`), which is how
//! [`FleetAdmin::all_certificates`] answers unless a backend reads them in one go.

use provisioner_core::CertificateRecord;

use super::{CertificateQuery, FleetAdmin, FleetError};

/// Every certificate that `query` matches (its device, status and issuer): the pages of
/// [`FleetAdmin::certificates`] read to the end, then reversed, so the newest-first pages
/// come out oldest first.
///
/// `query.after` starts the walk as it starts one page; `query.limit` is how many are read
/// per page (at least one), not how many are returned.
///
/// # Errors
/// The backend's error for the first page that fails (nothing is returned then).
pub async fn all_certificates_by_pages<F: FleetAdmin + ?Sized>(
    fleet: &F,
    query: CertificateQuery,
) -> Result<Vec<CertificateRecord>, FleetError> {
    let mut query = CertificateQuery {
        limit: query.limit.max(1),
        ..query
    };
    let mut newest_first = Vec::new();
    loop {
        let page = fleet.certificates(query.clone()).await?;
        newest_first.extend(page.items);
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    newest_first.reverse();
    Ok(newest_first)
}
