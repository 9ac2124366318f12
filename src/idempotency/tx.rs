//! The request's transaction: begun when a handler asks for it, committed by the layer when the answer is a success.
//!
//! A handler takes a [`Tx`] and writes through it, or a [`SingleStatement`] when its write is one statement; it
//! never commits. [`commit_on_success`] (or the idempotency layer, which also writes the key row into it) decides
//! after the handler has answered.

use std::sync::{Arc, Mutex, PoisonError};

use axum::{
    extract::{FromRef, FromRequestParts, Request},
    http::request::Parts,
    middleware::Next,
    response::{IntoResponse, Response},
};
use sqlx::{PgConnection, PgPool, Postgres, Transaction, pool::PoolConnection};

use crate::{
    db::Begin,
    http::error::{ApiError, Rejection},
    metrics::Metrics,
};

/// Where a handler's transaction goes back to when the handler is done with it.
#[derive(Clone, Default)]
pub struct TxSlot(Arc<Mutex<Option<Transaction<'static, Postgres>>>>);

impl TxSlot {
    /// The transaction the handler used, if it asked for one.
    pub fn take(&self) -> Option<Transaction<'static, Postgres>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Hands the handler a transaction that is already open, to be taken by its [`Tx`].
    pub fn put(&self, tx: Transaction<'static, Postgres>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
    }
}

/// The request's database transaction, for handlers that write; begun on first use, unless a layer opened it.
///
/// Beginning lazily keeps a slow request body from holding a pooled connection while it arrives. The exactly-once
/// layer opens it before the handler runs, after looking its key up on the connection the write then uses.
pub struct Tx {
    pool: PgPool,
    begin: Begin,
    metrics: Metrics,
    tx: Option<Transaction<'static, Postgres>>,
    slot: TxSlot,
}

impl Tx {
    /// The transaction's connection, beginning the transaction when this is the first use.
    pub async fn conn(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        let tx = match self.tx.take() {
            Some(tx) => tx,
            None => {
                self.metrics
                    .waiting_for(self.begin.begin(&self.pool))
                    .await?
            }
        };
        Ok(&mut **self.tx.insert(tx))
    }
}

impl<S> FromRequestParts<S> for Tx
where
    PgPool: FromRef<S>,
    Begin: FromRef<S>,
    Metrics: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let slot = parts
            .extensions
            .get::<TxSlot>()
            .cloned()
            .ok_or_else(|| ApiError::internal("route has no transaction layer"))?;
        Ok(Self {
            pool: PgPool::from_ref(state),
            begin: Begin::from_ref(state),
            metrics: Metrics::from_ref(state),
            tx: slot.take(),
            slot,
        })
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            self.slot.put(tx);
        }
    }
}

/// The connection of a handler whose write is one statement: the layer's transaction when it opened one, else a
/// pooled connection on which the statement commits by itself (README, Performance: two round trips fewer).
/// Its only write, [`SingleStatement::write`], maps a broken connection to an unknown outcome.
pub struct SingleStatement {
    tx: Tx,
    pooled: Option<PoolConnection<Postgres>>,
}

impl SingleStatement {
    /// Runs a statement that writes nothing; its failure is the usual error.
    pub async fn read<T>(
        &mut self,
        statement: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, ApiError> {
        Ok(statement(self.conn().await?).await?)
    }

    /// Runs the write. Outside a transaction the statement commits as it ends, so when the connection fails while it
    /// runs, the write may have been applied: 504 `outcome-unknown`, as for a COMMIT whose answer was lost
    /// ([`ApiError::from_commit`]), and not the 503 that tells a client nothing was written. In a transaction
    /// nothing committed yet: the usual mapping.
    pub async fn write<T>(
        &mut self,
        statement: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, ApiError> {
        let in_transaction = self.tx.tx.is_some();
        match statement(self.conn().await?).await {
            Err(error @ sqlx::Error::Io(_)) if !in_transaction => Err(ApiError::from_commit(error)),
            result => Ok(result?),
        }
    }

    async fn conn(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        if let Some(tx) = self.tx.tx.as_mut() {
            return Ok(&mut **tx);
        }
        let conn = match self.pooled.take() {
            Some(conn) => conn,
            None => self.tx.metrics.waiting_for(self.tx.pool.acquire()).await?,
        };
        Ok(&mut **self.pooled.insert(conn))
    }
}

impl<S> FromRequestParts<S> for SingleStatement
where
    Tx: FromRequestParts<S>,
    S: Send + Sync,
{
    type Rejection = <Tx as FromRequestParts<S>>::Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            tx: Tx::from_request_parts(parts, state).await?,
            pooled: None,
        })
    }
}

/// Runs the request with a transaction slot and commits what the handler wrote when its answer is a 2xx.
pub async fn commit_on_success(mut request: Request, next: Next) -> Response {
    let slot = TxSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    finish(slot.take(), response).await
}

/// Commits `tx` when `response` is a success and rolls it back otherwise; a failed commit replaces the answer
/// (with 504 `outcome-unknown` when the connection failed during the commit: see [`ApiError::from_commit`]).
pub async fn finish(tx: Option<Transaction<'static, Postgres>>, response: Response) -> Response {
    let Some(tx) = tx else { return response };
    if response.status().is_success() {
        if let Err(error) = tx.commit().await {
            return ApiError::from_commit(error).into_response();
        }
    } else if let Err(error) = tx.rollback().await {
        tracing::warn!(%error, "rollback failed");
    }
    response
}
