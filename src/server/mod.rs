//! The process: connecting, the stack every route passes (`stack`), background tasks, and serving until a
//! shutdown signal.

pub mod accept_encoding;
pub mod connection;
pub mod entity_tag_coding;
pub mod request_id;
pub mod stack;

use std::net::SocketAddr;

use sqlx::PgPool;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use self::stack::app;
use crate::{config::Config, db, idempotency::sweeper, metrics::Metrics, state::AppState};

/// Connects, migrates when asked to, and serves until SIGINT or SIGTERM; in-flight requests then have
/// `SHUTDOWN_TIMEOUT_SECONDS` to finish.
///
/// Past that deadline they are abandoned: the process exits with an error, its database connections close, and
/// PostgreSQL rolls their transactions back, so nothing half-done commits and their keys are free for a retry.
pub async fn run(config: Config) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if config.run_migrations {
        db::migrate(&config.database).await?;
        tracing::info!("migrations applied");
    }
    let pool = db::pool(
        &config.database,
        db::Sessions::Requests {
            lock_timeout: config.idempotency.wait_timeout,
        },
    )?;
    // Before anything is served, so that a SIGTERM during start-up stops the server cleanly.
    let shutdown = shutdown_signal();
    build(config, pool).await?.serve(shutdown).await
}

/// Binds `config.listen_addr` and starts the sweeper on `pool`: the whole start-up but serving.
///
/// The API tests start their servers here too, on port 0 and the pool of their database.
pub async fn build(config: Config, pool: PgPool) -> Result<Server, std::io::Error> {
    let listener = TcpListener::bind(config.listen_addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(address = %addr, "listening");
    let state = AppState::new(pool, config);
    let stop_sweeper = CancellationToken::new();
    let sweeper = sweeper::spawn(
        state.pool.clone(),
        state.config.idempotency.sweep_interval,
        stop_sweeper.clone(),
        state.metrics.clone(),
    );
    Ok(Server {
        listener,
        addr,
        state,
        sweeper,
        stop_sweeper,
    })
}

/// A server that listens and sweeps, and answers requests once [`Server::serve`] runs.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    sweeper: JoinHandle<()>,
    stop_sweeper: CancellationToken,
}

impl Server {
    /// The address it listens on, with the port the system chose when the configured one is 0.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its metrics, which count the sweeper's passes from the first one, made as it starts.
    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    /// Serves until `shutdown` resolves; in-flight requests then have the configured shutdown timeout to finish,
    /// and the sweeper and the pool stop after them.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let Self {
            listener,
            state,
            sweeper,
            stop_sweeper,
            ..
        } = self;
        let pool = state.pool.clone();
        let header_read_timeout = state.config.request_timeout;
        let shutdown_timeout = state.config.shutdown_timeout;
        let tasks = state.tasks.clone();
        let signalled = CancellationToken::new();
        let serving = tokio::spawn(connection::serve(
            listener,
            app(state),
            header_read_timeout,
            signalled.clone().cancelled_owned(),
        ));
        shutdown.await;
        signalled.cancel();
        let drained = tokio::time::timeout(shutdown_timeout, async {
            if let Err(error) = serving.await {
                tracing::error!(%error, "the server task failed");
            }
            // Requests whose clients hung up still run; their outcomes are stored before the pool closes.
            tasks.close();
            tasks.wait().await;
            stop_sweeper.cancel();
            if let Err(error) = sweeper.await {
                tracing::error!(%error, "the sweeper task failed");
            }
            pool.close().await;
        })
        .await;
        if drained.is_err() {
            let abandoned = tasks.len();
            tracing::error!(
                abandoned,
                "in-flight requests did not finish within the shutdown timeout; abandoning them"
            );
            return Err(format!(
                "{abandoned} request(s) abandoned after {} s; the database rolls back what they did not commit",
                shutdown_timeout.as_secs()
            )
            .into());
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed by this call, not when the future is first polled,
/// so a signal that arrives while the server starts up is not lost to the default action (exit by signal).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        [SignalKind::interrupt(), SignalKind::terminate()].map(|kind| {
            signal(kind)
                .inspect_err(|error| tracing::error!(%error, ?kind, "cannot listen for the signal"))
                .ok()
        })
    };
    async move {
        #[cfg(unix)]
        {
            let [interrupt, terminate] = signals;
            let received = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = received(interrupt) => {},
                () = received(terminate) => {},
            }
        }
        #[cfg(not(unix))]
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down: finishing in-flight requests");
    }
}
