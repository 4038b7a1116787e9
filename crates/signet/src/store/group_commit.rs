//! Group commit for SQLite: concurrent write requests share one transaction and one disk flush.
//!
//! With `synchronous=FULL` every SQLite commit waits for the disk, and SQLite admits one writer at
//! a time, so committing each request on its own caps the server at one flush per request. Here a
//! single task takes the write requests that are queued, runs each inside its own savepoint of one
//! `BEGIN IMMEDIATE` transaction (a request that fails rolls back only itself), commits once, and
//! only then answers every caller: nothing is acknowledged before it is durable.

use futures::future::BoxFuture;
use sqlx::{Any, AnyConnection, Pool};
use tokio::sync::{mpsc, oneshot};

use super::{StoreError, StoreResult};

/// Most requests one transaction takes; bounds the latency a large batch adds to its first request.
const MAX_BATCH: usize = 256;

/// A write request: runs on the batch's connection, says whether it succeeded, and hands the
/// caller its result once the batch's commit is known.
type Job = Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Pending> + Send>;

/// A request's outcome, held back until the commit.
struct Pending {
    succeeded: bool,
    deliver: Box<dyn FnOnce(Option<String>) + Send>,
}

/// The queue in front of the batching task.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the batching task over `writer` (a pool of one connection).
    pub(crate) fn start(writer: Pool<Any>) -> Self {
        let (queue, jobs) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run_batches(writer, jobs));
        GroupCommit { queue }
    }

    /// Runs `work` in the next batch and returns its result after the batch committed.
    pub(crate) async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |connection| {
            Box::pin(async move {
                let result = work(connection).await;
                Pending {
                    succeeded: result.is_ok(),
                    deliver: Box::new(move |batch_failure| {
                        let result = match batch_failure {
                            Some(reason) => result.and(Err(StoreError::GroupCommit(reason))),
                            None => result,
                        };
                        let _ = answer.send(result);
                    }),
                }
            })
        });
        self.queue
            .send(job)
            .await
            .map_err(|_| StoreError::GroupCommit("the database writer has stopped".into()))?;
        answered
            .await
            .map_err(|_| StoreError::GroupCommit("the database writer dropped a request".into()))?
    }
}

async fn run_batches(writer: Pool<Any>, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let pending = run_batch(&writer, batch.drain(..)).await;
        let failure = pending.1.err().map(|e| e.to_string());
        for outcome in pending.0 {
            (outcome.deliver)(failure.clone());
        }
    }
}

/// Runs one batch; returns every request's outcome and whether the commit itself succeeded.
async fn run_batch(
    writer: &Pool<Any>,
    batch: impl Iterator<Item = Job>,
) -> (Vec<Pending>, Result<(), sqlx::Error>) {
    let mut outcomes = Vec::new();
    let mut transaction = match writer.begin_with("BEGIN IMMEDIATE").await {
        Ok(transaction) => transaction,
        // Nothing ran; the requests not run are dropped, and their callers get an error.
        Err(error) => return (outcomes, Err(error)),
    };
    for job in batch {
        let mut savepoint = match sqlx::Connection::begin(&mut *transaction).await {
            Ok(savepoint) => savepoint,
            Err(error) => return (outcomes, Err(error)),
        };
        let outcome = job(&mut savepoint).await;
        let closed = if outcome.succeeded {
            savepoint.commit().await
        } else {
            savepoint.rollback().await
        };
        outcomes.push(outcome);
        if let Err(error) = closed {
            return (outcomes, Err(error));
        }
    }
    let committed = transaction.commit().await;
    (outcomes, committed)
}
