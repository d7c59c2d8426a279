//! The Prometheus endpoint of `--metrics ADDR`: serves `GET /metrics` over
//! HTTP/1 while it lives, rendering a fresh snapshot on each scrape
//! ([`metrics`](super::metrics)). Public so an embedder (and the bench)
//! serves the same endpoint as the CLI.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::Snapshot;
use super::metrics::{CONTENT_TYPE, render};

/// The metrics endpoint; stops serving when dropped.
pub struct MetricsServer {
    /// The address it listens on (the port chosen, if ADDR said 0).
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MetricsServer {
    /// Binds `addr` and serves there the metrics of the snapshots that
    /// `snapshot` takes (usually `move || runtime.snapshot()`); with
    /// `per_worker`, one series per worker besides the per-group ones.
    /// Returns once bound; serving goes on in a Tokio task.
    pub async fn start(
        snapshot: impl Fn() -> Snapshot + Send + Sync + 'static,
        addr: SocketAddr,
        per_worker: bool,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("--metrics {addr}: cannot listen there"))?;
        let addr = listener.local_addr()?;
        let snapshot = std::sync::Arc::new(snapshot);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let snapshot = snapshot.clone();
                let service = service_fn(move |request| {
                    let response = respond(&*snapshot, &request, per_worker);
                    async move { Ok::<_, Infallible>(response) }
                });
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(MetricsServer { addr, task })
    }
}

fn respond(
    snapshot: &dyn Fn() -> Snapshot,
    request: &Request<Incoming>,
    per_worker: bool,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (
            StatusCode::OK,
            CONTENT_TYPE,
            render(&snapshot(), per_worker),
        ),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "see /metrics\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
