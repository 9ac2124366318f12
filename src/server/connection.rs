//! Serving HTTP/1.1 connections, with a bound on how long a client may take to send a request head.
//!
//! `axum::serve` gives hyper no timer, and without one hyper's header read timeout is off: a client that sends
//! half a request head and goes quiet (slowloris) holds its connection forever, and the request timeout only
//! starts once the head is complete. This loop is `axum::serve` with that timer set.

use std::{future::Future, io::ErrorKind, time::Duration};

use axum::{Router, body::Body, extract::Request};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Serves `router` on `listener` until `shutdown` resolves, then lets open connections finish their requests.
///
/// A connection that has not delivered a whole request head within `header_read_timeout` is closed; hyper starts
/// that timer whenever it waits for a head, so it is also how long an idle keep-alive connection stays open.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut connections = http1::Builder::new();
    connections
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // The client gave up before the connection was accepted: nothing to wait for.
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    // Out of file descriptors, usually: wait for connections to close rather than spin.
                    tracing::error!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(
            router
                .clone()
                .map_request(|request: Request<Incoming>| request.map(Body::new)),
        );
        let connection =
            graceful.watch(connections.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}
