//! Group commit on PostgreSQL: two tasks gather the concurrent enqueues and
//! the workers' outcomes into shared transactions (the SQLite store's writer
//! thread does that itself, sqlite_writer.rs).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{now_ms, AnyStore, Enqueued, NewMessage, OutboxError, Store};

/// How many enqueues one group commit takes at most.
const GROUP_MAX: usize = 512;

pub(super) type Pending = (NewMessage, oneshot::Sender<Result<Enqueued, OutboxError>>);
pub(super) type PendingSettle = (
    Vec<super::store::SettleItem>,
    oneshot::Sender<Result<Vec<bool>, OutboxError>>,
);

#[derive(Clone)]
pub(super) struct Groups {
    pub(super) tx: mpsc::Sender<Pending>,
    pub(super) settle_tx: mpsc::Sender<PendingSettle>,
}

impl Groups {
    /// Starts the two grouping tasks on the current tokio runtime.
    pub(super) fn start(store: &Arc<AnyStore>, enqueued: &Arc<tokio::sync::Notify>) -> Groups {
        let (tx, rx) = mpsc::channel::<Pending>(GROUP_MAX * 4);
        tokio::spawn(group_commit(store.clone(), rx, enqueued.clone()));
        let (settle_tx, settle_rx) = mpsc::channel::<PendingSettle>(GROUP_MAX * 4);
        tokio::spawn(group_settle(store.clone(), settle_rx));
        Groups { tx, settle_tx }
    }
}

/// Takes whatever outcomes the workers' lanes are waiting to record (up to
/// 64 groups), writes them in one transaction, answers each after the commit.
/// A lane waits for its answer before it sends again, so a crash loses at
/// most `concurrency × LANE_BATCH` outcomes per process (the duplicate window,
/// worker.rs).
async fn group_settle(store: Arc<AnyStore>, mut rx: mpsc::Receiver<PendingSettle>) {
    let mut batch: Vec<PendingSettle> = Vec::with_capacity(64);
    while rx.recv_many(&mut batch, 64).await > 0 {
        let mut items = Vec::new();
        let mut replies = Vec::with_capacity(batch.len());
        for (group, reply) in batch.drain(..) {
            replies.push((reply, group.len()));
            items.extend(group);
        }
        match store.settle_batch(&items, now_ms()).await {
            Ok(done) => {
                let mut done = done.into_iter();
                for (reply, n) in replies {
                    let _ = reply.send(Ok(done.by_ref().take(n).collect()));
                }
            }
            Err(e) => {
                for (reply, _) in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Takes whatever enqueues are waiting (up to GROUP_MAX), writes them in one
/// transaction, answers each caller after the commit.
async fn group_commit(
    store: Arc<AnyStore>,
    mut rx: mpsc::Receiver<Pending>,
    enqueued: Arc<tokio::sync::Notify>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(GROUP_MAX);
    while rx.recv_many(&mut batch, GROUP_MAX).await > 0 {
        let (msgs, replies): (Vec<NewMessage>, Vec<_>) = batch.drain(..).unzip();
        match store.enqueue_batch(msgs).await {
            Ok(ids) => {
                for (reply, id) in replies.into_iter().zip(ids) {
                    let _ = reply.send(Ok(id));
                }
                enqueued.notify_one();
            }
            Err(e) => {
                tracing::error!("outbox: group commit failed: {e}");
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
