//! The manufacturer manifest import ([`DynamoDbRegistry::import`]): devices classified
//! against the registry, then written in batches, several at once, the unprocessed part
//! of a batch retried with backoff.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, PutRequest, Select, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use provisioner_core::{DeviceKey, UnixTime};
use rand::Rng;
use tokio::task::JoinSet;

use super::{
    build_error, corrupt_item, number_value, optional_text, sdk_error, text, DynamoDbError,
    DynamoDbRegistry, ImportError, ImportItem, ImportOptions, ImportSummary, Item, BATCH_GET_KEYS,
    MAX_BATCH_ATTEMPTS,
};

/// DynamoDB's limit of requests in one `BatchWriteItem`.
const BATCH_WRITE_ITEMS: usize = 25;

/// A device as an import finds it registered.
#[derive(Debug)]
struct Registered {
    public_key: String,
    source_manifest: Option<String>,
}

/// A device as the import will leave it.
#[derive(Debug)]
struct Planned {
    device_id: String,
    /// The key it will have (stored text, or canonical text of the manifest's key).
    public_key: String,
    source_manifest: Option<String>,
    /// The key registered before the import (`None`: a new device).
    registered_key: Option<String>,
    /// Whether the import writes it.
    changed: bool,
}

impl DynamoDbRegistry {
    /// Imports manufacturer manifest records with the SQLite registry's rules: every
    /// record is classified (new, unchanged, replaced, conflict) and every invalid row
    /// counted, and the devices are written only when there is no invalid row, no refused
    /// conflict, and it is not a dry run. A device listed again in a later item is treated
    /// like a device registered before: same key `unchanged`, another key a conflict (or
    /// replaced; the last key listed wins). Replacing a key leaves the device's `enabled`
    /// flag and certificates as they are.
    ///
    /// How: the registered devices are read with strongly consistent `BatchGetItem`s
    /// (100 keys each); new devices are written with `BatchWriteItem`s (25 each), several
    /// in flight ([`DynamoDbRegistry::with_import_concurrency`]); the unprocessed part of
    /// a batch is retried with exponential backoff. A replacement is an `UpdateItem`
    /// conditioned on the key the import read. Not atomic, but idempotent: see
    /// [`ImportSummary::atomic`]. A device created by someone else between the read and
    /// the write is overwritten (a batch write cannot be conditional).
    ///
    /// # Errors
    /// [`DynamoDbError::Unavailable`] when throttled past the retries,
    /// [`DynamoDbError::ImportRaced`] when a replaced device changed meanwhile; any other
    /// failure. Invalid rows and conflicts are not errors: they are in the summary.
    pub async fn import<'a>(
        &self,
        items: impl IntoIterator<Item = ImportItem<'a>>,
        options: &ImportOptions,
    ) -> Result<ImportSummary, DynamoDbError> {
        let mut summary = ImportSummary::default();
        let mut records = Vec::new();
        for item in items {
            match item.entry {
                Ok(record) => records.push((item.source, record)),
                Err(error) => {
                    summary.invalid += 1;
                    summary.report(ImportError {
                        file: item.source.to_owned(),
                        line: error.line,
                        device_id: error.device_id,
                        error: error.error.to_owned(),
                        message: error.message,
                    });
                }
            }
        }

        let mut distinct = HashSet::new();
        let ids: Vec<String> = records
            .iter()
            .filter(|(_, r)| distinct.insert(r.device_id.as_str()))
            .map(|(_, r)| r.device_id.clone())
            .collect();
        let registered = self.registered_devices(ids).await?;

        // Classify in manifest order, against the registry as the import leaves it.
        let mut plan: Vec<Planned> = Vec::new();
        let mut planned: HashMap<String, usize> = HashMap::new();
        for (source, record) in &records {
            let key = record.public_key.canonical();
            let id = &record.device_id;
            let index = match planned.entry(id.clone()) {
                Entry::Occupied(entry) => *entry.get(),
                Entry::Vacant(entry) => {
                    entry.insert(plan.len());
                    match registered.get(id) {
                        None => {
                            summary.imported += 1;
                            plan.push(Planned {
                                device_id: id.clone(),
                                public_key: key,
                                source_manifest: Some((*source).to_owned()),
                                registered_key: None,
                                changed: true,
                            });
                            continue;
                        }
                        Some(device) => {
                            plan.push(Planned {
                                device_id: id.clone(),
                                public_key: device.public_key.clone(),
                                source_manifest: device.source_manifest.clone(),
                                registered_key: Some(device.public_key.clone()),
                                changed: false,
                            });
                            plan.len() - 1
                        }
                    }
                }
            };
            let Some(current) = plan.get_mut(index) else {
                continue;
            };
            if same_key(&current.public_key, &key, &record.public_key) {
                summary.unchanged += 1;
            } else if options.replace {
                current.public_key = key;
                current.source_manifest = Some((*source).to_owned());
                current.changed = true;
                summary.replaced += 1;
            } else {
                summary.conflicts += 1;
                let from = current
                    .source_manifest
                    .as_ref()
                    .map(|s| format!(" (from {s})"))
                    .unwrap_or_default();
                summary.report(ImportError {
                    file: (*source).to_owned(),
                    line: record.line,
                    device_id: Some(id.clone()),
                    error: "key_conflict".into(),
                    message: format!(
                        "device {id:?} is registered with another public key{from}; \
                         import with --replace to replace it with this one"
                    ),
                });
            }
        }
        if !summary.is_clean() || options.dry_run {
            return Ok(summary);
        }

        let (new, replaced): (Vec<Planned>, Vec<Planned>) = plan
            .into_iter()
            .filter(|p| p.changed)
            .partition(|p| p.registered_key.is_none());
        let now = options.now;
        let puts: Vec<WriteRequest> = new
            .into_iter()
            .map(|p| {
                let item = device_item(p.device_id, p.public_key, p.source_manifest, now);
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(build_error)
            })
            .collect::<Result<_, _>>()?;
        let batches: Vec<Vec<WriteRequest>> =
            puts.chunks(BATCH_WRITE_ITEMS).map(<[_]>::to_vec).collect();
        let (client, table) = (self.client.clone(), self.tables.devices.clone());
        run_bounded(batches, self.concurrency, |batch| {
            batch_write(client.clone(), table.clone(), batch)
        })
        .await?;
        run_bounded(replaced, self.concurrency, |device| {
            replace_key(client.clone(), table.clone(), device, now)
        })
        .await?;
        summary.written = true;
        Ok(summary)
    }

    /// The registered key and source of those of `ids` that are registered.
    async fn registered_devices(
        &self,
        ids: Vec<String>,
    ) -> Result<HashMap<String, Registered>, DynamoDbError> {
        let batches: Vec<Vec<String>> = ids.chunks(BATCH_GET_KEYS).map(<[_]>::to_vec).collect();
        let (client, table) = (self.client.clone(), self.tables.devices.clone());
        let found = run_bounded(batches, self.concurrency, |batch| {
            batch_get_devices(client.clone(), table.clone(), batch)
        })
        .await?;
        let mut registered = HashMap::new();
        for item in found.into_iter().flatten() {
            let device_id = text(&item, "deviceId").map_err(DynamoDbError::Corrupt)?;
            let device = Registered {
                public_key: text(&item, "publicKey")
                    .map_err(|e| corrupt_item("device", &device_id, &e))?,
                source_manifest: optional_text(&item, "sourceManifest")
                    .map_err(|e| corrupt_item("device", &device_id, &e))?,
            };
            registered.insert(device_id, device);
        }
        Ok(registered)
    }

    /// How many devices are registered (a paginated `Scan` that counts).
    ///
    /// # Errors
    /// [`DynamoDbError::Unavailable`] when throttled; any other failure.
    pub async fn count_devices(&self) -> Result<u64, DynamoDbError> {
        let mut count = 0u64;
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.tables.devices)
                .select(Select::Count)
                .set_limit(self.page_size)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("Scan", e))?;
            count += u64::try_from(page.count).unwrap_or(0);
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(count),
            }
        }
    }
}

/// Runs `job` on every input, at most `concurrency` at once, each as its own task; stops
/// at the first failure (the tasks still running are then cancelled).
async fn run_bounded<T, R, F, Fut>(
    inputs: Vec<T>,
    concurrency: usize,
    job: F,
) -> Result<Vec<R>, DynamoDbError>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<R, DynamoDbError>> + Send + 'static,
    R: Send + 'static,
{
    let mut inputs = inputs.into_iter();
    let mut running = JoinSet::new();
    let mut results = Vec::new();
    loop {
        while running.len() < concurrency.max(1) {
            let Some(input) = inputs.next() else { break };
            running.spawn(job(input));
        }
        let Some(done) = running.join_next().await else {
            return Ok(results);
        };
        let result = done.map_err(|e| DynamoDbError::Sdk {
            operation: "a batch",
            message: format!("the batch task failed: {e}"),
        })?;
        results.push(result?);
    }
}

/// How long to wait before retrying the unprocessed part of a batch: exponential from
/// 50 ms, at most 3.2 s, with jitter (half to all of it).
pub(crate) fn backoff(attempt: u32) -> Duration {
    let ceiling = 50u64 << attempt.min(6);
    Duration::from_millis(rand::thread_rng().gen_range(ceiling / 2..=ceiling))
}

async fn batch_get_devices(
    client: Client,
    table: String,
    ids: Vec<String>,
) -> Result<Vec<Item>, DynamoDbError> {
    let keys = ids
        .into_iter()
        .map(|id| HashMap::from([("deviceId".to_owned(), AttributeValue::S(id))]))
        .collect();
    let mut request = KeysAndAttributes::builder()
        .set_keys(Some(keys))
        .consistent_read(true)
        .projection_expression("deviceId, publicKey, sourceManifest")
        .build()
        .map_err(build_error)?;
    let mut found = Vec::new();
    let mut attempt = 0;
    loop {
        let output = client
            .batch_get_item()
            .request_items(&table, request)
            .send()
            .await
            .map_err(|e| sdk_error("BatchGetItem", e))?;
        if let Some(items) = output.responses.and_then(|mut r| r.remove(&table)) {
            found.extend(items);
        }
        let unprocessed = output
            .unprocessed_keys
            .and_then(|mut u| u.remove(&table))
            .filter(|k| !k.keys().is_empty());
        let Some(rest) = unprocessed else {
            return Ok(found);
        };
        attempt += 1;
        if attempt >= MAX_BATCH_ATTEMPTS {
            return Err(DynamoDbError::Unavailable {
                operation: "BatchGetItem",
                cause: format!(
                    "{} keys still unprocessed after {attempt} attempts",
                    rest.keys().len()
                ),
            });
        }
        tokio::time::sleep(backoff(attempt)).await;
        request = rest;
    }
}

async fn batch_write(
    client: Client,
    table: String,
    requests: Vec<WriteRequest>,
) -> Result<(), DynamoDbError> {
    let mut requests = requests;
    let mut attempt = 0;
    loop {
        let output = client
            .batch_write_item()
            .request_items(&table, requests)
            .send()
            .await
            .map_err(|e| sdk_error("BatchWriteItem", e))?;
        let unprocessed = output
            .unprocessed_items
            .and_then(|mut u| u.remove(&table))
            .filter(|r| !r.is_empty());
        let Some(rest) = unprocessed else {
            return Ok(());
        };
        attempt += 1;
        if attempt >= MAX_BATCH_ATTEMPTS {
            return Err(DynamoDbError::Unavailable {
                operation: "BatchWriteItem",
                cause: format!(
                    "{} items still unprocessed after {attempt} attempts",
                    rest.len()
                ),
            });
        }
        tokio::time::sleep(backoff(attempt)).await;
        requests = rest;
    }
}

/// Sets a registered device's new key, if its key is still the one the import read.
async fn replace_key(
    client: Client,
    table: String,
    device: Planned,
    now: UnixTime,
) -> Result<(), DynamoDbError> {
    let registered_key = device.registered_key.unwrap_or_default();
    let result = client
        .update_item()
        .table_name(&table)
        .key("deviceId", AttributeValue::S(device.device_id.clone()))
        .update_expression("SET publicKey = :key, sourceManifest = :source, importedAt = :now")
        .condition_expression("publicKey = :registered")
        .expression_attribute_values(":key", AttributeValue::S(device.public_key))
        .expression_attribute_values(
            ":source",
            device
                .source_manifest
                .map_or(AttributeValue::Null(true), AttributeValue::S),
        )
        .expression_attribute_values(":now", number_value(now))
        .expression_attribute_values(":registered", AttributeValue::S(registered_key))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Err(DynamoDbError::ImportRaced(device.device_id))
        }
        Err(error) => Err(sdk_error("UpdateItem", error)),
    }
}

fn device_item(
    device_id: String,
    public_key: String,
    source_manifest: Option<String>,
    now: UnixTime,
) -> Item {
    let mut item = HashMap::from([
        ("deviceId".to_owned(), AttributeValue::S(device_id)),
        ("publicKey".to_owned(), AttributeValue::S(public_key)),
        ("enabled".to_owned(), AttributeValue::Bool(true)),
        ("importedAt".to_owned(), number_value(now)),
    ]);
    if let Some(source) = source_manifest {
        item.insert("sourceManifest".to_owned(), AttributeValue::S(source));
    }
    item
}

/// Whether a stored key (canonical text, normally) is `key`, whose canonical text is
/// `canonical`.
fn same_key(stored: &str, canonical: &str, key: &DeviceKey) -> bool {
    stored == canonical || DeviceKey::parse(stored).is_ok_and(|k| &k == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 0..20 {
            let delay = backoff(attempt);
            let ceiling = Duration::from_millis(50 << attempt.min(6));
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{attempt}: {delay:?}"
            );
        }
        assert!(backoff(20) <= Duration::from_millis(3200));
    }
}
