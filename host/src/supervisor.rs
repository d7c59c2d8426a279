//! Supervisor groups, after Erlang/OTP's supervisors: workers that restart
//! together. A group restarts its members by a [`Strategy`] within its own
//! intensity limit; a group that passes its limit fails upward, as one
//! member of the group above it, and the top group gives up by stopping
//! every member. A leaf over restart policies, statuses and events: it
//! knows nothing of wasmtime or of the runtime that asks it what to do.
//!
//! What a restart keeps and what it does not is the runtime's business
//! (`docs/supervision.md`): the shared tree and named objects stay, a
//! dead start's locks are freed, its unacknowledged messages redelivered.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::events::Event;
use crate::restart::{Restart, RestartHistory, RestartPolicy};
use crate::status::{ExitStatus, KillReason};

/// Which members a group restarts when one of them fails (OTP's names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Only the member that failed.
    #[default]
    OneForOne,
    /// Every member: for members that share state and are only right
    /// together.
    OneForAll,
    /// The member that failed and every member listed after it: a
    /// pipeline's later stages, which depend on the earlier ones.
    RestForOne,
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(text: &str) -> Result<Strategy, String> {
        match text {
            "one-for-one" => Ok(Strategy::OneForOne),
            "one-for-all" => Ok(Strategy::OneForAll),
            "rest-for-one" => Ok(Strategy::RestForOne),
            other => Err(format!(
                "`{other}` is not a strategy: one-for-one, one-for-all or rest-for-one"
            )),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::OneForOne => "one-for-one",
            Strategy::OneForAll => "one-for-all",
            Strategy::RestForOne => "rest-for-one",
        })
    }
}

/// A group: its name, strategy and intensity.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// Named in events and messages.
    pub name: String,
    /// Which members restart when one fails.
    pub strategy: Strategy,
    /// The group's intensity (at most `max_restarts` within `within`) and
    /// backoff. Its `when` is unused: each member's own policy says
    /// whether its end calls for a restart.
    pub policy: RestartPolicy,
}

impl GroupSpec {
    /// A one-for-one group with the default intensity and backoff.
    pub fn new(name: impl Into<String>) -> GroupSpec {
        GroupSpec {
            name: name.into(),
            strategy: Strategy::default(),
            policy: RestartPolicy::DEFAULT,
        }
    }
}

/// A tree of groups and their members. Build it (groups, then their
/// members in order), then give each worker its [`Membership`] with
/// [`WorkerSpec::member_of`](crate::WorkerSpec::member_of) before spawning
/// it. Cheap to clone: every clone is the same tree.
#[derive(Clone, Default)]
pub struct SupervisionTree {
    state: Arc<Mutex<TreeState>>,
}

impl fmt::Debug for SupervisionTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("SupervisionTree")
            .field("groups", &state.groups.len())
            .field("members", &state.members.len())
            .finish()
    }
}

/// A group of a [`SupervisionTree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupId(usize);

/// A worker's place in a [`SupervisionTree`]: how its restarts are decided.
#[derive(Clone)]
pub struct Membership {
    tree: SupervisionTree,
    member: usize,
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.tree.lock();
        let member = &state.members[self.member];
        f.debug_struct("Membership")
            .field("name", &member.name)
            .field("group", &state.groups[member.group].spec.name)
            .finish()
    }
}

#[derive(Default)]
struct TreeState {
    groups: Vec<GroupNode>,
    members: Vec<MemberNode>,
}

struct GroupNode {
    spec: GroupSpec,
    parent: Option<usize>,
    children: Vec<Child>,
    history: RestartHistory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Child {
    Member(usize),
    Group(usize),
}

struct MemberNode {
    name: String,
    group: usize,
    /// The member's own restart type, from its latest start.
    when: Restart,
    /// It ended for good: nothing restarts it any more.
    done: bool,
    /// What the group decided for it while it ran, if anything.
    order: Option<Order>,
    /// Bumped with each order: interrupts the start in progress.
    signal: watch::Sender<u64>,
}

enum Order {
    /// Start again after `delay`; `status` is how the interrupted start is
    /// reported.
    Restart { delay: Duration, status: ExitStatus },
    /// End with `status`: the top group gave up.
    Stop { status: ExitStatus },
}

/// What becomes of a member whose start ended.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Start it again after `delay`; the start that ended ended as
    /// `status`.
    Restart {
        /// The backoff before the new start.
        delay: Duration,
        /// How the start that ended ended (for the `restarting` event).
        status: ExitStatus,
    },
    /// It ended for good, as this says.
    End(ExitStatus),
}

impl SupervisionTree {
    /// An empty tree.
    pub fn new() -> SupervisionTree {
        SupervisionTree::default()
    }

    fn lock(&self) -> MutexGuard<'_, TreeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a group, at the top or as the next member of `parent`.
    pub fn add_group(&self, spec: GroupSpec, parent: Option<GroupId>) -> GroupId {
        let mut state = self.lock();
        let id = state.groups.len();
        state.groups.push(GroupNode {
            spec,
            parent: parent.map(|p| p.0),
            children: Vec::new(),
            history: RestartHistory::default(),
        });
        if let Some(parent) = parent {
            state.groups[parent.0].children.push(Child::Group(id));
        }
        GroupId(id)
    }

    /// Adds the next member of `group`, a worker named `name`.
    pub fn add_member(&self, group: GroupId, name: impl Into<String>) -> Membership {
        let mut state = self.lock();
        let id = state.members.len();
        state.members.push(MemberNode {
            name: name.into(),
            group: group.0,
            when: Restart::Never,
            done: false,
            order: None,
            signal: watch::channel(0).0,
        });
        state.groups[group.0].children.push(Child::Member(id));
        Membership {
            tree: self.clone(),
            member: id,
        }
    }
}

impl TreeState {
    /// The members in `child`, in order.
    fn members_of(&self, child: Child, into: &mut Vec<usize>) {
        match child {
            Child::Member(m) => into.push(m),
            Child::Group(g) => {
                for &c in &self.groups[g].children {
                    self.members_of(c, into);
                }
            }
        }
    }

    /// Forgets the restarts of `child`'s groups: restarted by the group
    /// above, a group starts afresh, as an OTP supervisor does.
    fn reset(&mut self, child: Child) {
        if let Child::Group(g) = child {
            self.groups[g].history = RestartHistory::default();
            for c in self.groups[g].children.clone() {
                self.reset(c);
            }
        }
    }

    /// The children of `group` that restart when `failed` does.
    fn affected(&self, group: usize, failed: Child) -> Vec<Child> {
        let children = &self.groups[group].children;
        match self.groups[group].spec.strategy {
            Strategy::OneForOne => vec![failed],
            Strategy::OneForAll => children.clone(),
            Strategy::RestForOne => {
                let at = children.iter().position(|&c| c == failed).unwrap_or(0);
                children[at..].to_vec()
            }
        }
    }

    /// Tells member `m`, if it still runs and restarts at all, to end its
    /// start and take `order`.
    fn order(&mut self, m: usize, order: Order) -> bool {
        if self.members[m].when == Restart::Never {
            return false;
        }
        self.send(m, order)
    }

    /// Tells member `m`, if it has not ended for good, to end its start
    /// and take `order`.
    fn send(&mut self, m: usize, order: Order) -> bool {
        let member = &mut self.members[m];
        if member.done {
            return false;
        }
        member.order = Some(order);
        member.signal.send_modify(|n| *n += 1);
        true
    }
}

impl Membership {
    /// Called before each start of the member, with its restart type: the
    /// receiver whose change interrupts the start, or the status to end
    /// with at once when its tree has given up.
    pub(crate) fn begin_start(&self, when: Restart) -> Result<watch::Receiver<u64>, ExitStatus> {
        let mut state = self.tree.lock();
        let member = &mut state.members[self.member];
        member.when = when;
        match member.order.take() {
            Some(Order::Stop { status }) => {
                member.done = true;
                Err(status)
            }
            // A restart ordered between starts: this start is it.
            Some(Order::Restart { .. }) | None => Ok(member.signal.subscribe()),
        }
    }

    /// Decides what becomes of the member after a start: `ended` is how it
    /// ended, `None` when its group interrupted it; `wants_restart` is what
    /// its own policy says of that end; `stopping` is true once it was
    /// terminated or asked to shut down. Returns the verdict and the
    /// events of the groups that acted on it.
    pub(crate) fn after_start(
        &self,
        ended: Option<ExitStatus>,
        wants_restart: bool,
        stopping: bool,
    ) -> (Verdict, Vec<Event>) {
        let mut state = self.tree.lock();
        let m = self.member;
        let order = state.members[m].order.take();
        let status = match (ended, order) {
            (None, Some(Order::Restart { delay, status })) if !stopping => {
                return (Verdict::Restart { delay, status }, Vec::new());
            }
            (None, Some(Order::Stop { status })) => {
                state.members[m].done = true;
                return (Verdict::End(status), Vec::new());
            }
            (None, _) => ExitStatus::Killed {
                reason: KillReason::Terminated,
            },
            // It ended by itself as its group acted: its own end decides.
            (Some(status), _) => status,
        };
        if stopping || !wants_restart {
            state.members[m].done = true;
            return (Verdict::End(status), Vec::new());
        }
        let mut events = Vec::new();
        let (now, cause) = (Instant::now(), state.members[m].name.clone());
        let mut failed = Child::Member(m);
        let mut group = state.members[m].group;
        loop {
            let policy = state.groups[group].spec.policy;
            let name = state.groups[group].spec.name.clone();
            if let Some(delay) = state.groups[group].history.next(&policy, now) {
                let mut members = Vec::new();
                for child in state.affected(group, failed) {
                    state.reset(child);
                    state.members_of(child, &mut members);
                }
                let order = |state: &mut TreeState, other: usize| {
                    let status = ExitStatus::Killed {
                        reason: KillReason::GroupRestart {
                            group: name.clone(),
                            failed: cause.clone(),
                        },
                    };
                    state.order(other, Order::Restart { delay, status })
                };
                let mut restarted = Vec::new();
                for other in members {
                    if other == m || order(&mut state, other) {
                        restarted.push(state.members[other].name.clone());
                    }
                }
                events.push(Event::GroupRestarting {
                    group: name,
                    strategy: state.groups[group].spec.strategy.to_string(),
                    cause,
                    status: status.clone(),
                    restart: state.groups[group].history.total(),
                    members: restarted,
                });
                return (Verdict::Restart { delay, status }, events);
            }
            events.push(Event::GroupGaveUp {
                group: name.clone(),
                cause: cause.clone(),
                restarts: state.groups[group].history.total(),
                max_restarts: policy.max_restarts,
                within_ms: u64::try_from(policy.within.as_millis()).unwrap_or(u64::MAX),
            });
            match state.groups[group].parent {
                Some(parent) => (failed, group) = (Child::Group(group), parent),
                None => {
                    let mut members = Vec::new();
                    state.members_of(Child::Group(group), &mut members);
                    for other in members.into_iter().filter(|&other| other != m) {
                        let status = ExitStatus::Killed {
                            reason: KillReason::GroupGaveUp {
                                group: name.clone(),
                            },
                        };
                        // A member that does not restart still stops: the
                        // group it belongs to is over.
                        state.send(other, Order::Stop { status });
                    }
                    state.members[m].done = true;
                    return (Verdict::End(status), events);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trapped() -> ExitStatus {
        ExitStatus::Trapped {
            message: "unreachable".into(),
            backtrace: Vec::new(),
        }
    }

    fn group(strategy: Strategy, max_restarts: u32) -> GroupSpec {
        GroupSpec {
            name: format!("{strategy}"),
            strategy,
            policy: RestartPolicy {
                max_restarts,
                backoff: Duration::ZERO,
                ..RestartPolicy::DEFAULT
            },
        }
    }

    /// A started pipeline of three on-failure members.
    fn pipeline(strategy: Strategy) -> (Vec<Membership>, Vec<watch::Receiver<u64>>) {
        let tree = SupervisionTree::new();
        let g = tree.add_group(group(strategy, 5), None);
        let members: Vec<Membership> = ["a", "b", "c"]
            .iter()
            .map(|n| tree.add_member(g, *n))
            .collect();
        let signals = members
            .iter()
            .map(|m| m.begin_start(Restart::OnFailure).unwrap())
            .collect();
        (members, signals)
    }

    fn interrupted(signals: &[watch::Receiver<u64>]) -> Vec<bool> {
        signals.iter().map(|s| s.has_changed().unwrap()).collect()
    }

    #[test]
    fn each_strategy_restarts_its_members() {
        let cases = [
            (Strategy::OneForOne, [false, false, false]),
            (Strategy::OneForAll, [true, false, true]),
            (Strategy::RestForOne, [false, false, true]),
        ];
        for (strategy, expected) in cases {
            let (members, signals) = pipeline(strategy);
            let (verdict, events) = members[1].after_start(Some(trapped()), true, false);
            assert!(matches!(verdict, Verdict::Restart { .. }), "{verdict:?}");
            assert_eq!(interrupted(&signals), expected, "{strategy}");
            let Event::GroupRestarting { members: named, .. } = &events[0] else {
                panic!("{events:?}");
            };
            assert!(named.contains(&"b".to_string()), "{named:?}");
            // An interrupted member restarts, told why.
            if expected[2] {
                let (verdict, _) = members[2].after_start(None, false, false);
                let Verdict::Restart { status, .. } = verdict else {
                    panic!("{verdict:?}");
                };
                assert!(status.summary().contains("`b`"), "{status}");
            }
        }
    }

    #[test]
    fn a_clean_end_or_a_stopping_member_restarts_nobody() {
        let (members, signals) = pipeline(Strategy::OneForAll);
        let (verdict, events) =
            members[0].after_start(Some(ExitStatus::Exited { code: 0 }), false, false);
        assert!(matches!(verdict, Verdict::End(_)) && events.is_empty());
        let (verdict, _) = members[1].after_start(Some(trapped()), true, true);
        assert!(matches!(verdict, Verdict::End(_)));
        assert_eq!(interrupted(&signals), [false, false, false]);
        // A finished member is not restarted by a sibling's failure.
        let (_, events) = members[2].after_start(Some(trapped()), true, false);
        let Event::GroupRestarting { members: named, .. } = &events[0] else {
            panic!("{events:?}");
        };
        assert_eq!(named, &["c"]);
    }

    #[test]
    fn past_its_intensity_a_nested_group_fails_upward_and_the_top_gives_up() {
        let tree = SupervisionTree::new();
        let top = tree.add_group(group(Strategy::OneForOne, 1), None);
        let first = tree.add_member(top, "first");
        let inner = tree.add_group(group(Strategy::OneForAll, 1), Some(top));
        let (x, y) = (tree.add_member(inner, "x"), tree.add_member(inner, "y"));
        let sf = first.begin_start(Restart::OnFailure).unwrap();
        let sy = y.begin_start(Restart::OnFailure).unwrap();
        x.begin_start(Restart::OnFailure).unwrap();
        // Inner restart 1: within its intensity.
        let (verdict, _) = x.after_start(Some(trapped()), true, false);
        assert!(matches!(verdict, Verdict::Restart { .. }));
        assert!(sy.has_changed().unwrap() && !sf.has_changed().unwrap());
        y.after_start(None, false, false);
        let sy = y.begin_start(Restart::OnFailure).unwrap();
        x.begin_start(Restart::OnFailure).unwrap();
        // Inner restart 2: the inner group fails; the top restarts it whole
        // (one-for-one leaves `first` alone) with a fresh intensity.
        let (verdict, events) = x.after_start(Some(trapped()), true, false);
        assert!(matches!(verdict, Verdict::Restart { .. }), "{verdict:?}");
        assert!(matches!(events[0], Event::GroupGaveUp { .. }), "{events:?}");
        assert!(
            matches!(events[1], Event::GroupRestarting { .. }),
            "{events:?}"
        );
        assert!(sy.has_changed().unwrap() && !sf.has_changed().unwrap());
        y.after_start(None, false, false);
        y.begin_start(Restart::OnFailure).unwrap();
        x.begin_start(Restart::OnFailure).unwrap();
        let (verdict, _) = x.after_start(Some(trapped()), true, false);
        assert!(matches!(verdict, Verdict::Restart { .. }), "{verdict:?}");
        y.after_start(None, false, false);
        y.begin_start(Restart::OnFailure).unwrap();
        x.begin_start(Restart::OnFailure).unwrap();
        // The inner group fails again, and the top is past its intensity:
        // everyone stops, the failing member with its own status.
        let (verdict, events) = x.after_start(Some(trapped()), true, false);
        assert!(
            matches!(&verdict, Verdict::End(ExitStatus::Trapped { .. })),
            "{verdict:?}"
        );
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(sf.has_changed().unwrap());
        let (verdict, _) = first.after_start(None, false, false);
        let Verdict::End(status) = verdict else {
            panic!("{verdict:?}")
        };
        assert!(status.summary().contains("gave up"), "{status}");
        // A member between starts when the top gave up does not start again.
        assert!(y.begin_start(Restart::OnFailure).is_err());
    }
}
