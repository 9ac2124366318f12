//! The sweeper: deletes expired idempotency keys in small batches, one server at a time.

use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    db::idempotency_keys,
    metrics::{Metrics, SweeperRun},
};

/// Rows deleted by one statement at most, so that no statement holds locks for long.
pub const MAX_BATCH: i64 = 10_000;

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// This server swept: `deleted` keys in `batches` statements.
    Done { deleted: u64, batches: u32 },
    /// Another server holds the sweeper lock and is sweeping.
    Skipped,
}

/// One pass: deletes every key past its own `expires_at`, `batch` rows per statement, under the advisory lock.
/// The pass needs no retention setting: each key carries the expiry it was stored with.
///
/// Stops between batches when `stop` is cancelled; what is left waits for the next pass.
pub async fn sweep_once(
    pool: &PgPool,
    batch: i64,
    stop: &CancellationToken,
) -> Result<Sweep, sqlx::Error> {
    let batch = batch.clamp(1, MAX_BATCH);
    let mut conn = pool.acquire().await?;
    if !idempotency_keys::try_lock_sweeper(&mut conn).await? {
        return Ok(Sweep::Skipped);
    }
    let mut deleted = 0;
    let mut batches = 0;
    let swept = async {
        loop {
            let rows = idempotency_keys::delete_expired(&mut conn, batch).await?;
            deleted += rows;
            batches += 1;
            if rows < batch.unsigned_abs() || stop.is_cancelled() {
                return Ok::<_, sqlx::Error>(());
            }
        }
    }
    .await;
    if idempotency_keys::unlock_sweeper(&mut conn).await.is_err() {
        // A session lock lives as long as its connection: close it rather than return it to the pool locked.
        drop(conn.detach());
    }
    swept?;
    Ok(Sweep::Done { deleted, batches })
}

/// Sweeps every `interval` until `stop` is cancelled; errors are logged and the next tick tries again.
///
/// Every pass is counted in `metrics`: swept (with the keys deleted), skipped or failed.
pub fn spawn(
    pool: PgPool,
    interval: Duration,
    stop: CancellationToken,
    metrics: Metrics,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let pass = sweep_once(&pool, MAX_BATCH, &stop).await;
            metrics.sweeper_run(match pass {
                Ok(Sweep::Done { deleted, .. }) => SweeperRun::Swept { deleted },
                Ok(Sweep::Skipped) => SweeperRun::Skipped,
                Err(_) => SweeperRun::Failed,
            });
            match pass {
                Ok(Sweep::Done { deleted, batches }) if deleted > 0 => {
                    tracing::info!(deleted, batches, "swept expired idempotency keys");
                }
                Ok(Sweep::Done { .. }) => tracing::debug!("no expired idempotency keys"),
                Ok(Sweep::Skipped) => tracing::debug!("another server is sweeping"),
                Err(error) => {
                    tracing::warn!(%error, "sweeping idempotency keys failed; retrying next tick")
                }
            }
        }
        tracing::info!("sweeper stopped");
    })
}
