//! `corral top HOST`: a live view of a running host, refreshed from its
//! control socket: its workers sorted by CPU or memory, its named objects
//! below. Keys: `c` and `m` sort, `q` (or Esc, Ctrl-C) quits.

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
use super::hosts::{self, Found, duration, state};
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

/// The last answer, and CPU use since the one before (per worker id, as a
/// share of one core).
struct View {
    host: HostInfo,
    snapshot: Snapshot,
    cpu_share: HashMap<u64, f64>,
    sort: Sort,
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
        (view.host, view.snapshot) = (host, snapshot);
        next = Instant::now() + interval;
    }
}

fn draw(frame: &mut Frame, view: &View) {
    let objects = view.snapshot.objects.len() as u16;
    let [header, workers, ipc, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Max(objects.saturating_add(3)),
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
    frame.render_widget(objects_table(&view.snapshot), ipc);
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
            format!("{:.2}s", w.cpu_ns as f64 / 1e9),
            format!("{:.0}%", share * 100.0),
            bytesize::ByteSize(w.memory_bytes)
                .display()
                .iec_short()
                .to_string(),
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

fn objects_table(snapshot: &Snapshot) -> Table<'static> {
    let n = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let rows = snapshot.objects.iter().map(|o| {
        let holder = o.holder.map(|id| {
            snapshot
                .workers
                .iter()
                .find(|w| w.id == id)
                .map_or_else(|| format!("worker {id}"), |w| w.name.clone())
        });
        Row::new([
            o.kind.clone(),
            o.name.clone(),
            n(o.depth),
            n(o.puts),
            n(o.gets),
            holder.map_or_else(|| n(o.value), |h| format!("held by {h}")),
        ])
    });
    Table::new(
        rows,
        [
            Constraint::Length(10),
            Constraint::Min(12),
            Constraint::Length(8),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(["KIND", "OBJECT", "DEPTH", "PUTS", "GETS", "STATE"])
            .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(Block::bordered().title(" named objects "))
}
