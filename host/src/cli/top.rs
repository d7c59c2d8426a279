//! `corral top HOST`: a live view of a running host, refreshed from its
//! control socket: its workers sorted by CPU or memory, its named objects
//! and pools below (with rates, lock holders and how long their waiters
//! have waited), then the last minute's denials. Keys: `c` and `m` sort,
//! `q` (or Esc, Ctrl-C) quits.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Row, Table};
use ratatui::{DefaultTerminal, Frame};

use super::control::{HostInfo, Request};
use super::hosts::{self, Found, blocked_on, bytes, cpu_seconds, duration, state, worker_name};
use crate::observe::Snapshot;

/// `corral top HOST [--interval DURATION]`.
#[derive(Debug, Args)]
pub(super) struct TopArgs {
    /// The host's pid or run name (see `corral ps`)
    host: String,
    /// How often to refresh
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::units::parse_duration)]
    interval: Duration,
}

/// What the workers table is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    Cpu,
    Memory,
}

/// The last answer, and what moved since the one before: CPU use per
/// worker id (a share of one core), and puts and gets (a pool: tasks
/// done) per second per object, by kind and name.
struct View {
    host: HostInfo,
    snapshot: Snapshot,
    cpu_share: HashMap<u64, f64>,
    rates: HashMap<(String, String), (f64, f64)>,
    sort: Sort,
}

/// Each object's put and get counts (a pool's: 0 and tasks done), by kind
/// and name.
fn counts(snapshot: &Snapshot) -> HashMap<(String, String), (u64, u64)> {
    let objects = snapshot.objects.iter().map(|o| {
        let key = (o.kind.clone(), o.name.clone());
        (key, (o.puts.unwrap_or(0), o.gets.unwrap_or(0)))
    });
    let pools = snapshot.pools.iter().map(|p| {
        let key = ("pool".to_string(), p.name.clone());
        (key, (0, p.succeeded + p.failed))
    });
    objects.chain(pools).collect()
}

/// Why the loop ended.
enum End {
    Quit,
    Gone(std::io::Error),
}

pub(super) fn top(args: TopArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(
        std::io::stdout().is_terminal() && std::io::stdin().is_terminal(),
        "corral top draws on a terminal; for text or JSON, use `corral ps {} [--json]`",
        args.host
    );
    let Some(found) = hosts::find(&args.host)? else {
        return Ok(1);
    };
    let (host, snapshot) = match refresh(&found) {
        Ok(answer) => answer,
        Err(e) => return Ok(hosts::gone(&found, &e)),
    };
    let mut view = View {
        host,
        snapshot,
        cpu_share: HashMap::new(),
        rates: HashMap::new(),
        sort: Sort::Cpu,
    };
    let mut terminal = ratatui::try_init()?;
    let ended = watch(
        &mut terminal,
        &found,
        &mut view,
        args.interval.max(Duration::from_millis(100)),
    );
    ratatui::restore();
    match ended? {
        End::Quit => Ok(0),
        End::Gone(e) => Ok(hosts::gone(&found, &e)),
    }
}

fn refresh(found: &Found) -> std::io::Result<(HostInfo, Snapshot)> {
    let reply = hosts::ask(&found.path, &Request::Ps)?;
    match (reply.host, reply.snapshot) {
        (Some(host), Some(snapshot)) => Ok((host, snapshot)),
        _ => Err(std::io::Error::other(reply.error.unwrap_or_default())),
    }
}

/// Draws, waits for keys until the next refresh, refreshes, until quit.
fn watch(
    terminal: &mut DefaultTerminal,
    found: &Found,
    view: &mut View,
    interval: Duration,
) -> anyhow::Result<End> {
    let mut next = Instant::now() + interval;
    loop {
        terminal.draw(|frame| draw(frame, view))?;
        let left = next.saturating_duration_since(Instant::now());
        if event::poll(left)? {
            if let Event::Key(key) = event::read()?
                && key.kind == KeyEventKind::Press
            {
                match key.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(End::Quit),
                    KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Ok(End::Quit);
                    }
                    KeyCode::Char('c') => view.sort = Sort::Cpu,
                    KeyCode::Char('m') => view.sort = Sort::Memory,
                    _ => {}
                }
            }
            continue;
        }
        let (host, snapshot) = match refresh(found) {
            Ok(answer) => answer,
            Err(e) => return Ok(End::Gone(e)),
        };
        let elapsed_ns = snapshot.uptime_ms.saturating_sub(view.snapshot.uptime_ms) as f64 * 1e6;
        let before: HashMap<u64, u64> = view
            .snapshot
            .workers
            .iter()
            .map(|w| (w.id, w.cpu_ns))
            .collect();
        view.cpu_share = snapshot
            .workers
            .iter()
            .filter_map(|w| {
                let spent = w.cpu_ns.saturating_sub(*before.get(&w.id)?);
                (elapsed_ns > 0.0).then(|| (w.id, spent as f64 / elapsed_ns))
            })
            .collect();
        let before = counts(&view.snapshot);
        let elapsed_s = elapsed_ns / 1e9;
        view.rates = counts(&snapshot)
            .into_iter()
            .filter_map(|(key, (puts, gets))| {
                let (puts_before, gets_before) = *before.get(&key)?;
                let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / elapsed_s;
                (elapsed_s > 0.0).then(|| (key, (rate(puts, puts_before), rate(gets, gets_before))))
            })
            .collect();
        (view.host, view.snapshot) = (host, snapshot);
        next = Instant::now() + interval;
    }
}

fn draw(frame: &mut Frame, view: &View) {
    let objects = view.snapshot.objects.len() as u16;
    let rows = objects.saturating_add(view.snapshot.pools.len() as u16);
    let [header, workers, ipc, denials, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Max(rows.saturating_add(3)),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let host = &view.host;
    frame.render_widget(
        Line::from(format!(
            "corral top: host {} ({} {}), up {}, {} workers alive, {} objects",
            host.pid,
            host.command,
            host.name,
            duration(host.uptime_ms),
            host.workers_alive,
            objects
        )),
        header,
    );
    frame.render_widget(workers_table(view), workers);
    frame.render_widget(objects_table(view), ipc);
    frame.render_widget(Line::from(denials_line(&view.snapshot)), denials);
    frame.render_widget(
        Line::from("c: sort by CPU   m: sort by memory   q: quit")
            .style(Style::default().add_modifier(Modifier::DIM)),
        footer,
    );
}

fn workers_table(view: &View) -> Table<'static> {
    let mut workers: Vec<_> = view.snapshot.workers.iter().collect();
    match view.sort {
        Sort::Cpu => workers.sort_by_key(|w| std::cmp::Reverse(w.cpu_ns)),
        Sort::Memory => workers.sort_by_key(|w| std::cmp::Reverse(w.memory_bytes)),
    }
    let rows = workers.into_iter().map(|w| {
        let share = view.cpu_share.get(&w.id).copied().unwrap_or(0.0);
        Row::new([
            w.name.clone(),
            state(w),
            cpu_seconds(w.cpu_ns),
            format!("{:.0}%", share * 100.0),
            bytes(w.memory_bytes),
            w.handles.to_string(),
            w.host_fds.to_string(),
            duration(w.uptime_ms),
        ])
    });
    let by = match view.sort {
        Sort::Cpu => "CPU",
        Sort::Memory => "memory",
    };
    Table::new(
        rows,
        [
            Constraint::Min(12),
            Constraint::Min(20),
            Constraint::Length(9),
            Constraint::Length(5),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(8),
        ],
    )
    .header(
        Row::new([
            "NAME", "STATE", "CPU", "CPU%", "MEMORY", "HANDLES", "FDS", "UPTIME",
        ])
        .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(Block::bordered().title(format!(" workers, by {by} ")))
}

/// The last minute's denials: how many, and the latest.
fn denials_line(snapshot: &Snapshot) -> String {
    let latest = snapshot.denials.iter().min_by_key(|d| d.ago_ms);
    match latest {
        None => "no denials in the last minute".to_string(),
        Some(d) => format!(
            "denials in the last minute: {}; latest, {} ago: {} denied {} ({})",
            snapshot.denials.len(),
            duration(d.ago_ms),
            d.worker,
            d.action,
            d.rule
        ),
    }
}

/// Who holds `o` (a lock), and how many workers wait on it and for how
/// long the longest has, from what each worker waits on (`lock.acquire
/// file`); else its value (permits, a flag).
fn object_state(snapshot: &Snapshot, o: &crate::ipc::ObjectStats) -> String {
    let mut parts = Vec::new();
    if let Some(id) = o.holder {
        parts.push(format!("held by {}", worker_name(snapshot, id)));
    } else if let Some(value) = o.value {
        parts.push(value.to_string());
    }
    let waiting: Vec<u64> = blocked_on(snapshot, &o.kind, &o.name)
        .map(|w| w.waiting_ms.unwrap_or(0))
        .collect();
    if let Some(longest) = waiting.iter().max() {
        parts.push(format!(
            "{} waiting (longest {})",
            waiting.len(),
            duration(*longest)
        ));
    }
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join("; ")
    }
}

fn objects_table(view: &View) -> Table<'static> {
    let snapshot = &view.snapshot;
    let n = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let rate = |kind: &str, name: &str| view.rates.get(&(kind.to_string(), name.to_string()));
    let per_second = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{r:.0}"));
    let objects = snapshot.objects.iter().map(|o| {
        let r = rate(&o.kind, &o.name);
        let counted = o.puts.is_some();
        Row::new([
            o.kind.clone(),
            o.name.clone(),
            n(o.depth),
            per_second(r.filter(|_| counted).map(|r| r.0)),
            per_second(r.filter(|_| counted).map(|r| r.1)),
            object_state(snapshot, o),
        ])
    });
    let pools = snapshot.pools.iter().map(|p| {
        Row::new([
            "pool".to_string(),
            p.name.clone(),
            "-".to_string(),
            "-".to_string(),
            per_second(rate("pool", &p.name).map(|r| r.1)),
            format!(
                "{} instances, {} ok, {} failed, CPU {}",
                p.instances_alive,
                p.succeeded,
                p.failed,
                cpu_seconds(p.cpu_ns)
            ),
        ])
    });
    Table::new(
        objects.chain(pools),
        [
            Constraint::Length(10),
            Constraint::Min(12),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(["KIND", "OBJECT", "DEPTH", "PUT/S", "GET/S", "STATE"])
            .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(Block::bordered().title(" named objects and pools "))
}
