//! A [`Snapshot`] in the Prometheus (OpenMetrics) text format, encoded by
//! `prometheus-client` on each scrape: nothing is counted per operation
//! for metrics, and a host nobody scrapes pays nothing.
//!
//! Workers are aggregated by group (their manifest entry) so that a host of
//! 10,000 workers has a few series per entry, not per worker; per-worker
//! series are opt-in (`--metrics-per-worker`).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Snapshot;

/// The HTTP `Content-Type` of what [`render`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;
type Counters = Family<Labels, Counter<f64, AtomicU64>>;

fn gauges(registry: &mut Registry, name: &str, help: &str) -> Gauges {
    let family = Gauges::default();
    registry.register(name, help, family.clone());
    family
}

fn counters(registry: &mut Registry, name: &str, help: &str) -> Counters {
    let family = Counters::default();
    registry.register(name, help, family.clone());
    family
}

fn set(family: &Gauges, labels: Labels, value: f64) {
    family.get_or_create(&labels).set(value);
}

fn add(family: &Counters, labels: Labels, value: f64) {
    family.get_or_create(&labels).inc_by(value);
}

/// Renders `snapshot`; with `per_worker`, adds one series per worker for
/// CPU time, memory and state.
pub fn render(snapshot: &Snapshot, per_worker: bool) -> String {
    let mut registry = Registry::with_prefix("corral");
    let alive = gauges(
        &mut registry,
        "host_workers_alive",
        "Workers that have not ended",
    );
    let uptime = gauges(
        &mut registry,
        "host_uptime_seconds",
        "Time since the host started",
    );
    let by_state = gauges(
        &mut registry,
        "workers",
        "Live workers by group and state (running, waiting, idle)",
    );
    let cpu = counters(
        &mut registry,
        "worker_cpu_seconds",
        "CPU time used by the workers of a group, ended ones included",
    );
    let memory = gauges(
        &mut registry,
        "worker_memory_bytes",
        "Linear memory held by a group's live workers",
    );
    let handles = gauges(
        &mut registry,
        "worker_handles",
        "Open handles held by a group's live workers",
    );
    let fds = gauges(
        &mut registry,
        "worker_host_fds",
        "Host file descriptors held for a group's live workers",
    );
    let exits = counters(
        &mut registry,
        "worker_exits",
        "Workers that ended, by group and status",
    );
    let limit_kills = counters(
        &mut registry,
        "worker_limit_kills",
        "Workers killed by a limit, by limit",
    );
    let denials = counters(
        &mut registry,
        "policy_denials",
        "Policy and limit refusals, by rule",
    );
    let depth = gauges(
        &mut registry,
        "ipc_depth",
        "Messages waiting in a queue or pipe",
    );
    let bytes = gauges(
        &mut registry,
        "ipc_bytes",
        "Bytes of the messages waiting in a queue or pipe",
    );
    let ops = counters(
        &mut registry,
        "ipc_operations",
        "Messages put and taken, by object and operation",
    );
    let waiters = gauges(
        &mut registry,
        "ipc_waiters",
        "Workers blocked on a named object",
    );
    let held = gauges(
        &mut registry,
        "ipc_lock_held",
        "Whether a lock is held (1) or free (0)",
    );
    let permits = gauges(
        &mut registry,
        "ipc_semaphore_permits",
        "A semaphore's free permits",
    );
    let tasks = counters(&mut registry, "pool_tasks", "Tasks a pool ran, by outcome");
    let pool_cpu = counters(
        &mut registry,
        "pool_cpu_seconds",
        "CPU time used by a pool's instances, ended ones included",
    );
    let pool_memory = gauges(
        &mut registry,
        "pool_memory_bytes",
        "Linear memory held by a pool's live instances",
    );
    let each = per_worker.then(|| {
        let cpu = counters(
            &mut registry,
            "worker_instance_cpu_seconds",
            "CPU time used by one live worker",
        );
        let memory = gauges(
            &mut registry,
            "worker_instance_memory_bytes",
            "Linear memory held by one live worker",
        );
        (cpu, memory)
    });

    set(&alive, vec![], snapshot.alive().count() as f64);
    set(&uptime, vec![], snapshot.uptime_ms as f64 / 1e3);
    let mut cpu_by_group: BTreeMap<&str, u64> = BTreeMap::new();
    for (group, ns) in &snapshot.totals.retired_cpu_ns {
        *cpu_by_group.entry(group).or_default() += ns;
    }
    let mut states: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut sums: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
    let mut waiting: BTreeMap<&str, u64> = BTreeMap::new();
    for w in &snapshot.workers {
        *cpu_by_group.entry(&w.group).or_default() += w.cpu_ns;
        if w.state == "exited" {
            continue;
        }
        *states.entry((&w.group, &w.state)).or_default() += 1;
        let sum = sums.entry(&w.group).or_default();
        sum[0] += w.memory_bytes;
        sum[1] += w.handles;
        sum[2] += w.host_fds;
        if let Some(on) = &w.waiting_on {
            *waiting.entry(on).or_default() += 1;
        }
        if let Some((cpu, memory)) = &each {
            let labels = || vec![("group", w.group.clone()), ("worker", w.name.clone())];
            add(cpu, labels(), w.cpu_ns as f64 / 1e9);
            set(memory, labels(), w.memory_bytes as f64);
        }
    }
    for ((group, state), n) in states {
        set(
            &by_state,
            vec![("group", group.into()), ("state", state.into())],
            n as f64,
        );
    }
    for (group, ns) in cpu_by_group {
        add(&cpu, vec![("group", group.into())], ns as f64 / 1e9);
    }
    for (group, [mem, h, f]) in sums {
        set(&memory, vec![("group", group.into())], mem as f64);
        set(&handles, vec![("group", group.into())], h as f64);
        set(&fds, vec![("group", group.into())], f as f64);
    }
    for (status, groups) in &snapshot.totals.exits {
        for (group, n) in groups {
            add(
                &exits,
                vec![("group", group.clone()), ("status", status.clone())],
                *n as f64,
            );
        }
    }
    for (limit, n) in &snapshot.totals.limit_kills {
        add(&limit_kills, vec![("limit", limit.clone())], *n as f64);
    }
    for (rule, n) in &snapshot.totals.denials {
        add(&denials, vec![("rule", rule.clone())], *n as f64);
    }
    for object in &snapshot.objects {
        let labels = || vec![("kind", object.kind.clone()), ("name", object.name.clone())];
        if let Some(d) = object.depth {
            set(&depth, labels(), d as f64);
        }
        if let Some(b) = object.bytes {
            set(&bytes, labels(), b as f64);
        }
        for (op, n) in [("put", object.puts), ("get", object.gets)] {
            if let Some(n) = n {
                let mut with_op = labels();
                with_op.push(("op", op.into()));
                add(&ops, with_op, n as f64);
            }
        }
        let on = format!("{}.", object.kind);
        let blocked: u64 = waiting
            .iter()
            .filter(|(call, _)| {
                call.starts_with(&on) && call.ends_with(&format!(" {}", object.name))
            })
            .map(|(_, n)| n)
            .sum();
        set(&waiters, labels(), blocked as f64);
        match object.kind.as_str() {
            "lock" if object.backend == "local" => {
                set(
                    &held,
                    vec![("name", object.name.clone())],
                    object.holder.is_some() as u8 as f64,
                );
            }
            "semaphore" => {
                if let Some(v) = object.value {
                    set(&permits, vec![("name", object.name.clone())], v as f64);
                }
            }
            _ => {}
        }
    }
    for pool in &snapshot.pools {
        let labels = |outcome: &str| vec![("pool", pool.name.clone()), ("outcome", outcome.into())];
        add(&tasks, labels("succeeded"), pool.succeeded as f64);
        add(&tasks, labels("failed"), pool.failed as f64);
        let pool_label = || vec![("pool", pool.name.clone())];
        add(&pool_cpu, pool_label(), pool.cpu_ns as f64 / 1e9);
        set(&pool_memory, pool_label(), pool.memory_bytes as f64);
    }
    let mut text = String::new();
    encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}
