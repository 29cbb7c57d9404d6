//! The writer thread: it owns the write connection and group-commits what is queued,
//! each request in its own savepoint of one transaction (see the [module docs](super),
//! "Concurrency and durability").

use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::RegistryError;

/// A write handed to the writer thread.
pub(super) trait WriteJob: Send + std::fmt::Debug {
    /// Runs inside the batch transaction (in its own savepoint).
    fn apply(&mut self, connection: &Connection);
    /// Called once the batch has committed (`Ok`) or failed.
    fn finish(self: Box<Self>, batch: Result<(), &RegistryError>);
}

/// A write whose caller awaits its result.
pub(super) struct ReplyJob<T, F> {
    work: Option<F>,
    result: Option<Result<T, RegistryError>>,
    reply: oneshot::Sender<Result<T, RegistryError>>,
}

impl<T, F> ReplyJob<T, F> {
    /// A job that runs `work` and sends its result to `reply` once the batch is done.
    pub(super) fn new(work: F, reply: oneshot::Sender<Result<T, RegistryError>>) -> Self {
        Self {
            work: Some(work),
            result: None,
            reply,
        }
    }
}

impl<T, F> std::fmt::Debug for ReplyJob<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplyJob")
    }
}

impl<T, F> WriteJob for ReplyJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, RegistryError> + Send,
{
    fn apply(&mut self, connection: &Connection) {
        if let Some(work) = self.work.take() {
            self.result = Some(in_savepoint(connection, work));
        }
    }

    fn finish(self: Box<Self>, batch: Result<(), &RegistryError>) {
        let answer = match (batch, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(RegistryError::WriterStopped),
            (Err(e), _) => Err(e.for_batch_member()),
        };
        // The caller may have given up waiting: nothing to do then.
        let _ = self.reply.send(answer);
    }
}

pub(super) fn run_writer(
    connection: &Connection,
    jobs: &mpsc::Receiver<Box<dyn WriteJob>>,
    max_batch: usize,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = Vec::with_capacity(64);
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcome = commit_batch(connection, &mut batch);
        if let Err(e) = &outcome {
            tracing::warn!(writes = batch.len(), "a registry batch failed: {e}");
        }
        for job in batch {
            job.finish(outcome.as_ref().map(|_| ()));
        }
    }
}

fn commit_batch(
    connection: &Connection,
    batch: &mut [Box<dyn WriteJob>],
) -> Result<(), RegistryError> {
    connection.execute_batch("BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        job.apply(connection);
    }
    if let Err(e) = connection.execute_batch("COMMIT") {
        // Leave the connection usable for the next batch.
        let _ = connection.execute_batch("ROLLBACK");
        return Err(e.into());
    }
    Ok(())
}

/// Runs `work` in a savepoint: its writes are kept only if it succeeds.
fn in_savepoint<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, RegistryError>,
) -> Result<T, RegistryError> {
    connection.execute_batch("SAVEPOINT job")?;
    let result = work(connection);
    let end = match result {
        Ok(_) => connection.execute_batch("RELEASE job"),
        Err(_) => connection.execute_batch("ROLLBACK TO job; RELEASE job"),
    };
    if let Err(e) = end {
        let _ = connection.execute_batch("ROLLBACK TO job; RELEASE job");
        return Err(e.into());
    }
    result
}
