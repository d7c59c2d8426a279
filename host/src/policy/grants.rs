//! IPC grants: which named objects a worker may open, and for which
//! operations (put vs get, send vs recv, acquire...).

/// The kinds of named object a run holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// A queue.
    Queue,
    /// A pipe.
    Pipe,
    /// A lock.
    Lock,
    /// A semaphore.
    Semaphore,
    /// An event.
    Event,
    /// A barrier.
    Barrier,
    /// A condition.
    Condition,
}

impl ObjectKind {
    /// Every kind, in the order policy files list them.
    pub const ALL: [ObjectKind; 7] = [
        ObjectKind::Queue,
        ObjectKind::Pipe,
        ObjectKind::Lock,
        ObjectKind::Semaphore,
        ObjectKind::Event,
        ObjectKind::Barrier,
        ObjectKind::Condition,
    ];

    /// The singular name (`queue`).
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Queue => "queue",
            ObjectKind::Pipe => "pipe",
            ObjectKind::Lock => "lock",
            ObjectKind::Semaphore => "semaphore",
            ObjectKind::Event => "event",
            ObjectKind::Barrier => "barrier",
            ObjectKind::Condition => "condition",
        }
    }

    /// The key of the policy file's `[ipc]` table (`queues`).
    pub fn table_key(self) -> &'static str {
        match self {
            ObjectKind::Queue => "queues",
            ObjectKind::Pipe => "pipes",
            ObjectKind::Lock => "locks",
            ObjectKind::Semaphore => "semaphores",
            ObjectKind::Event => "events",
            ObjectKind::Barrier => "barriers",
            ObjectKind::Condition => "conditions",
        }
    }

    /// The operations an object of this kind has.
    pub fn ops(self) -> &'static [Op] {
        match self {
            ObjectKind::Queue => &[Op::Put, Op::Get, Op::Close],
            ObjectKind::Pipe => &[Op::Send, Op::Recv],
            ObjectKind::Lock => &[Op::Acquire],
            ObjectKind::Semaphore => &[Op::Acquire, Op::Release],
            ObjectKind::Event => &[Op::Set, Op::Wait],
            ObjectKind::Barrier => &[Op::Wait, Op::Abort],
            ObjectKind::Condition => &[Op::Wait, Op::Notify],
        }
    }
}

/// One operation on a named object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Queue put, try-put, put-many.
    Put,
    /// Queue get, try-get, get-many, task-done.
    Get,
    /// Queue close (for everyone).
    Close,
    /// Pipe send.
    Send,
    /// Pipe recv, try-recv.
    Recv,
    /// Lock or semaphore acquire.
    Acquire,
    /// Semaphore release.
    Release,
    /// Event set and clear.
    Set,
    /// Event, barrier or condition wait.
    Wait,
    /// Barrier abort and reset.
    Abort,
    /// Condition notify.
    Notify,
}

impl Op {
    /// The name policy files use.
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Close => "close",
            Op::Send => "send",
            Op::Recv => "recv",
            Op::Acquire => "acquire",
            Op::Release => "release",
            Op::Set => "set",
            Op::Wait => "wait",
            Op::Abort => "abort",
            Op::Notify => "notify",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of operations, checked on every call: one AND.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct OpSet(u16);

impl OpSet {
    /// Every operation.
    pub const ALL: OpSet = OpSet(u16::MAX);

    /// Whether `op` is in the set.
    pub fn contains(self, op: Op) -> bool {
        self.0 & op.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Adds `op`.
    pub fn insert(&mut self, op: Op) {
        self.0 |= op.bit();
    }

    /// The union.
    pub fn union(self, other: OpSet) -> OpSet {
        OpSet(self.0 | other.0)
    }
}

/// One `[ipc]` entry: objects of a kind whose name matches a pattern (`*`
/// matches any run of characters, `?` one), and the operations granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpcRule {
    /// The kind of object.
    pub kind: ObjectKind,
    /// The name pattern.
    pub pattern: String,
    /// The operations granted.
    pub ops: OpSet,
}

/// What a worker may open. Nothing unless a rule grants it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpcGrants {
    /// The rules; their grants add up.
    pub rules: Vec<IpcRule>,
}

impl IpcGrants {
    /// The operations granted on the object `name` of `kind` (empty: the
    /// worker may not open it at all).
    pub fn ops_for(&self, kind: ObjectKind, name: &str) -> OpSet {
        self.rules
            .iter()
            .filter(|r| r.kind == kind && glob_match(&r.pattern, name))
            .fold(OpSet::default(), |set, r| set.union(r.ops))
    }
}

/// Matches `name` against a pattern where `*` is any run of characters and
/// `?` any one character.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                backtrack = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    pi = star + 1;
                    ni = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("jobs", "jobs"));
        assert!(!glob_match("jobs", "jobs2"));
        assert!(glob_match("results-*", "results-7"));
        assert!(!glob_match("results-*", "result-7"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("q?", "q1"));
        assert!(!glob_match("q?", "q12"));
        assert!(glob_match("", ""));
    }

    #[test]
    fn grants_add_up_by_kind_and_name() {
        let mut put = OpSet::default();
        put.insert(Op::Put);
        let mut get = OpSet::default();
        get.insert(Op::Get);
        let grants = IpcGrants {
            rules: vec![
                IpcRule {
                    kind: ObjectKind::Queue,
                    pattern: "jobs".into(),
                    ops: put,
                },
                IpcRule {
                    kind: ObjectKind::Queue,
                    pattern: "j*".into(),
                    ops: get,
                },
            ],
        };
        let jobs = grants.ops_for(ObjectKind::Queue, "jobs");
        assert!(jobs.contains(Op::Put) && jobs.contains(Op::Get) && !jobs.contains(Op::Close));
        assert!(grants.ops_for(ObjectKind::Queue, "other").is_empty());
        assert!(grants.ops_for(ObjectKind::Pipe, "jobs").is_empty());
    }
}
