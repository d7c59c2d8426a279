//! Family budgets: the memory, CPU time and wall time that a worker and all
//! its descendants draw from together, so that spawning children never
//! multiplies a worker's limits. A leaf beside `meter`: atomics and the worker's meter,
//! nothing of wasmtime, the runtime or the bindings.
//!
//! Like a cgroup, every byte a worker holds and every nanosecond it runs is
//! charged to its own budget and to each ancestor's: a grow that would take
//! any of them past its cap is refused, and a worker whose own or an
//! ancestor's CPU budget is spent is stopped. A worker's bytes go back to
//! its ancestors when it ends; CPU time, once used, stays used. Wall time
//! is a deadline: a child's is never later than its parent's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::meter::WorkerMeter;

/// What one worker and its descendants may hold and use together.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Most bytes (linear memory and tables) the worker and its live
    /// descendants may hold at once. `None`: only the ancestors' caps apply.
    memory_cap: Option<u64>,
    /// Most CPU time, in ns, the worker and all its descendants may use.
    cpu_limit_ns: Option<u64>,
    /// When the worker's wall-time limit ends it, and with it its children.
    wall_deadline: Option<Instant>,
    /// Bytes held now by the worker and its live descendants.
    held: AtomicU64,
    /// CPU time, in ns, booked by the worker's descendants, live or ended.
    descendants_cpu_ns: AtomicU64,
    /// The worker's own meter: its own CPU time.
    meter: Arc<WorkerMeter>,
    /// The parent's budget, which this one's charges also go to.
    parent: Option<Arc<Budget>>,
}

impl Budget {
    /// The budget of a worker starting now whose limits are `memory_cap`,
    /// `cpu_limit` and `wall_limit`, and whose use also counts against
    /// `parent` (if it is a child).
    pub fn new(
        memory_cap: Option<u64>,
        (cpu_limit, wall_limit): (Option<Duration>, Option<Duration>),
        meter: Arc<WorkerMeter>,
        parent: Option<Arc<Budget>>,
    ) -> Arc<Budget> {
        Arc::new(Budget {
            memory_cap,
            cpu_limit_ns: cpu_limit.map(|d| d.as_nanos().min(u64::MAX as u128) as u64),
            // Never later than an ancestor's: a child's carved limit counts
            // from when it starts, a moment after its parent looked.
            wall_deadline: wall_limit
                .and_then(|limit| Instant::now().checked_add(limit))
                .into_iter()
                .chain(parent.as_ref().and_then(|p| p.wall_deadline()))
                .min(),
            held: AtomicU64::new(0),
            descendants_cpu_ns: AtomicU64::new(0),
            meter,
            parent,
        })
    }

    /// This budget and its ancestors', nearest first.
    fn chain(&self) -> impl Iterator<Item = &Budget> {
        std::iter::successors(Some(self), |b| b.parent.as_deref())
    }

    /// Charges `bytes` more to this budget and every ancestor's. Refused as a
    /// whole, and `Err` with the cap that said no, if any would pass its cap.
    pub fn charge_memory(&self, bytes: u64) -> Result<(), u64> {
        for (depth, level) in self.chain().enumerate() {
            let charged = level
                .held
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                    let total = held.checked_add(bytes)?;
                    match level.memory_cap {
                        Some(cap) if total > cap => None,
                        _ => Some(total),
                    }
                });
            if charged.is_err() {
                for undo in self.chain().take(depth) {
                    undo.held.fetch_sub(bytes, Ordering::AcqRel);
                }
                return Err(level.memory_cap.unwrap_or(u64::MAX));
            }
        }
        Ok(())
    }

    /// Gives back `bytes` charged earlier, to this budget and every
    /// ancestor's (when the worker ends).
    pub fn release_memory(&self, bytes: u64) {
        for level in self.chain() {
            level.held.fetch_sub(bytes, Ordering::AcqRel);
        }
    }

    /// The most bytes a new child could hold: what is left under the
    /// tightest cap on the chain. `None`: no cap anywhere.
    pub fn memory_left(&self) -> Option<u64> {
        self.chain()
            .filter_map(|level| {
                let cap = level.memory_cap?;
                Some(cap.saturating_sub(level.held.load(Ordering::Acquire)))
            })
            .min()
    }

    /// Books `ns` of the worker's CPU time to its ancestors' budgets (its
    /// own meter has them already).
    pub fn book_cpu(&self, ns: u64) {
        for level in self.chain().skip(1) {
            level.descendants_cpu_ns.fetch_add(ns, Ordering::Relaxed);
        }
    }

    /// CPU time used against this budget: the worker's own (`own_ns`) and
    /// its descendants'.
    fn cpu_used(&self, own_ns: u64) -> u64 {
        own_ns.saturating_add(self.descendants_cpu_ns.load(Ordering::Relaxed))
    }

    /// Whether this worker must stop: its own budget or an ancestor's is
    /// spent. `own_ns` is the worker's CPU time including the current poll.
    pub fn cpu_spent(&self, own_ns: u64) -> bool {
        let spent = |level: &Budget, own: u64| {
            level
                .cpu_limit_ns
                .is_some_and(|limit| level.cpu_used(own) > limit)
        };
        spent(self, own_ns)
            || self
                .chain()
                .skip(1)
                .any(|level| spent(level, level.meter.booked_cpu_ns()))
    }

    /// The most CPU time a new child could use: what is left of the
    /// tightest budget on the chain. `None`: no limit anywhere.
    pub fn cpu_left(&self) -> Option<Duration> {
        self.chain()
            .filter_map(|level| {
                let limit = level.cpu_limit_ns?;
                Some(limit.saturating_sub(level.cpu_used(level.meter.booked_cpu_ns())))
            })
            .min()
            .map(Duration::from_nanos)
    }

    /// When the worker must end: the nearest wall-time deadline on the
    /// chain. `None`: no limit anywhere.
    pub fn wall_deadline(&self) -> Option<Instant> {
        self.chain().filter_map(|level| level.wall_deadline).min()
    }

    /// The most wall time a new child could run: until
    /// [`wall_deadline`](Self::wall_deadline).
    pub fn wall_left(&self) -> Option<Duration> {
        Some(
            self.wall_deadline()?
                .saturating_duration_since(Instant::now()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(cap: Option<u64>, parent: Option<&Arc<Budget>>) -> Arc<Budget> {
        Budget::new(cap, (None, None), Arc::default(), parent.cloned())
    }

    #[test]
    fn a_child_draws_from_its_parents_memory_and_gives_it_back() {
        let parent = budget(Some(64), None);
        let child = budget(Some(64), Some(&parent));
        parent.charge_memory(10).unwrap();
        assert_eq!(parent.memory_left(), Some(54));
        child.charge_memory(50).unwrap();
        assert_eq!(child.memory_left(), Some(4), "the parent's cap is tighter");
        // Refused by the parent's cap, and nothing left half-charged.
        assert_eq!(child.charge_memory(5), Err(64));
        assert_eq!(child.held.load(Ordering::Acquire), 50);
        assert_eq!(parent.charge_memory(5), Err(64));
        child.release_memory(50);
        assert_eq!(parent.memory_left(), Some(54));
        parent.charge_memory(54).unwrap();
    }

    #[test]
    fn an_uncapped_level_passes_charges_on_to_a_capped_ancestor() {
        let root = budget(Some(100), None);
        let middle = budget(None, Some(&root));
        let leaf = budget(None, Some(&middle));
        leaf.charge_memory(100).unwrap();
        assert_eq!(leaf.charge_memory(1), Err(100));
        assert_eq!(middle.memory_left(), Some(0));
    }

    #[test]
    fn a_childs_cpu_time_counts_against_its_ancestors() {
        let limits = (Some(Duration::from_millis(10)), None);
        let root = Budget::new(None, limits, Arc::default(), None);
        let child = Budget::new(None, (None, None), Arc::default(), Some(root.clone()));
        let sibling = Budget::new(None, (None, None), Arc::default(), Some(root.clone()));
        assert_eq!(root.cpu_left(), Some(Duration::from_millis(10)));
        child.book_cpu(8_000_000);
        assert_eq!(sibling.cpu_left(), Some(Duration::from_millis(2)));
        assert!(!sibling.cpu_spent(0));
        sibling.book_cpu(3_000_000);
        assert!(child.cpu_spent(0), "the family's budget is spent");
        assert!(root.cpu_spent(0));
    }

    #[test]
    fn a_child_runs_no_later_than_its_parents_deadline() {
        let hour = Duration::from_secs(3600);
        let root = Budget::new(None, (None, Some(hour)), Arc::default(), None);
        let child = Budget::new(
            None,
            (None, Some(2 * hour)),
            Arc::default(),
            Some(root.clone()),
        );
        let left = child.wall_left().unwrap();
        assert!(
            left <= hour && left > hour - Duration::from_secs(60),
            "{left:?}"
        );
        assert_eq!(child.wall_deadline(), root.wall_deadline());
        let free = Budget::new(None, (None, None), Arc::default(), None);
        assert_eq!(free.wall_left(), None);
        let spent = Budget::new(None, (None, Some(Duration::ZERO)), Arc::default(), None);
        assert_eq!(spent.wall_left(), Some(Duration::ZERO));
    }
}
