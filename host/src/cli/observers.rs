//! What watches a running host from outside: its control socket (always)
//! and, with `--metrics`, its Prometheus endpoint. Started by `run`, `up`
//! and `pool` once their runtime exists; both stop when dropped.

use std::net::SocketAddr;

use clap::Args;

use super::control::ControlSocket;
use crate::observe::MetricsServer;
use crate::runtime::Runtime;

/// The flags of `run`, `up` and `pool` that expose the running host.
#[derive(Debug, Clone, Default, Args)]
pub(super) struct ObserveArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics while the run lasts
    /// (e.g. 127.0.0.1:9464; port 0 picks a free one, printed on stderr)
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// With --metrics, also one series per worker (CPU, memory), beside the
    /// per-entry totals; a host of many workers makes many series
    #[arg(long, requires = "metrics")]
    metrics_per_worker: bool,
}

/// The control socket and metrics endpoint of a run.
pub(super) struct Observers {
    _metrics: Option<MetricsServer>,
    _control: Option<ControlSocket>,
}

/// Starts them for run `name` of `command` (`run`, `up`, `pool`). A metrics
/// address that cannot be bound is an error; a control socket that cannot
/// be made is reported and the run goes on without it.
pub(super) async fn start(
    runtime: &Runtime,
    command: &str,
    name: &str,
    args: &ObserveArgs,
    quiet: bool,
) -> anyhow::Result<Observers> {
    let metrics = match args.metrics {
        Some(addr) => {
            let runtime = runtime.clone();
            let snapshot = move || runtime.snapshot();
            let server = MetricsServer::start(snapshot, addr, args.metrics_per_worker).await?;
            eprintln!("corral: metrics at http://{}/metrics", server.addr);
            Some(server)
        }
        None => None,
    };
    let address = metrics.as_ref().map(|m| m.addr.to_string());
    let control = match ControlSocket::open(runtime, command, name, address) {
        Ok(control) => Some(control),
        Err(e) => {
            if !quiet {
                eprintln!("corral: no control socket (corral ps/kill will not see this run): {e}");
            }
            None
        }
    };
    Ok(Observers {
        _metrics: metrics,
        _control: control,
    })
}
