//! `[[group]]` tables: supervisor groups of a manifest's workers (and of
//! other groups), checked against the workers they name and turned into a
//! [`SupervisionTree`].
//!
//! ```toml
//! [[group]]
//! name = "pipeline"
//! strategy = "rest-for-one"    # one-for-one (default), one-for-all
//! members = ["source", "square", "sink"]   # workers or groups, in order
//! max-restarts = 5             # the group's intensity: at most 5 restarts
//! restart-within = "60s"       # within 60 s, else it fails upward
//! backoff = "10ms"             # before each restart, doubling...
//! max-backoff = "5s"           # ...up to this
//! ```
//!
//! A member worker restarts by its own `restart` (`on-failure` when it
//! sets none); the group counts the restarts and applies its strategy.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Deserialize;

use super::{Manifest, ManifestError};
use crate::config::ConfigSource;
use crate::restart::{Restart, RestartPolicy};
use crate::supervisor::{GroupId, GroupSpec, Membership, Strategy, SupervisionTree};
use crate::units::serde_opt;

/// One `[[group]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GroupEntry {
    /// Named in events and messages; unique among workers, pools, groups.
    pub name: String,
    /// Which members restart when one fails.
    #[serde(default)]
    pub strategy: Strategy,
    /// `[[worker]]` and `[[group]]` names, in order (what `rest-for-one`
    /// follows). A worker with `count` > 1 brings each of its instances.
    pub members: Vec<String>,
    /// At most this many restarts within `restart-within`; one more and
    /// the group fails upward.
    pub max_restarts: Option<u32>,
    /// The window of `max-restarts`.
    #[serde(default, deserialize_with = "serde_opt::duration")]
    pub restart_within: Option<Duration>,
    /// The delay before a first restart, doubled for each one in the window.
    #[serde(default, deserialize_with = "serde_opt::duration")]
    pub backoff: Option<Duration>,
    /// The longest delay between restarts.
    #[serde(default, deserialize_with = "serde_opt::duration")]
    pub max_backoff: Option<Duration>,
}

impl GroupEntry {
    fn spec(&self) -> GroupSpec {
        GroupSpec {
            name: self.name.clone(),
            strategy: self.strategy,
            policy: RestartPolicy::from_keys(
                Restart::OnFailure,
                self.max_restarts,
                self.restart_within,
                (self.backoff, self.max_backoff),
            ),
        }
    }
}

impl Manifest {
    /// The group whose member `name` (a worker or a group) is, if any.
    pub fn group_of(&self, name: &str) -> Option<&GroupEntry> {
        self.groups
            .iter()
            .find(|g| g.members.iter().any(|m| m == name))
    }

    /// The manifest's groups as a tree, and each member worker instance's
    /// membership by instance name. Empty without `[[group]]` tables.
    pub fn supervision(&self) -> HashMap<String, Membership> {
        let tree = SupervisionTree::new();
        let mut memberships = HashMap::new();
        for top in self
            .groups
            .iter()
            .filter(|g| self.group_of(&g.name).is_none())
        {
            self.add_group(&tree, top, None, &mut memberships);
        }
        memberships
    }

    fn add_group(
        &self,
        tree: &SupervisionTree,
        entry: &GroupEntry,
        parent: Option<GroupId>,
        memberships: &mut HashMap<String, Membership>,
    ) {
        let id = tree.add_group(entry.spec(), parent);
        for member in &entry.members {
            if let Some(group) = self.groups.iter().find(|g| g.name == *member) {
                self.add_group(tree, group, Some(id), memberships);
            } else if let Some(worker) = self.workers.iter().find(|w| w.name == *member) {
                for name in worker.instance_names() {
                    let membership = tree.add_member(id, name.clone());
                    memberships.insert(name, membership);
                }
            }
        }
    }

    /// Checks the `[[group]]` tables: names, members that exist and belong
    /// to one group each, no group inside itself, and member workers that
    /// leave their restarts to the group.
    pub(super) fn check_groups(&self, source: &ConfigSource) -> Result<(), ManifestError> {
        let workers: HashSet<&str> = self.workers.iter().map(|w| w.name.as_str()).collect();
        let pools: HashSet<&str> = self.pools.iter().map(|p| p.name.as_str()).collect();
        let groups: HashSet<&str> = self.groups.iter().map(|g| g.name.as_str()).collect();
        let mut seen = HashSet::new();
        let mut placed: HashMap<&str, &str> = HashMap::new();
        for (index, group) in self.groups.iter().enumerate() {
            let index = index.to_string();
            let invalid = |key: &str, message: String| {
                source.invalid_at_key(&["group", &index, key], message)
            };
            let name = group.name.as_str();
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '/') {
                return Err(invalid(
                    "name",
                    format!("group name {name:?} must be non-empty and contain no spaces or `/`"),
                ));
            }
            if workers.contains(name) || pools.contains(name) || !seen.insert(name) {
                return Err(invalid(
                    "name",
                    format!("two workers, pools or groups are named `{name}`"),
                ));
            }
            if group.members.is_empty() {
                return Err(invalid("members", format!("group `{name}` has no members")));
            }
            for member in &group.members {
                if !workers.contains(member.as_str()) && !groups.contains(member.as_str()) {
                    return Err(invalid(
                        "members",
                        format!(
                            "group `{name}`: member `{member}` is not a [[worker]] or [[group]] \
                             of this manifest"
                        ),
                    ));
                }
                if let Some(other) = placed.insert(member, name) {
                    return Err(invalid(
                        "members",
                        format!("`{member}` is a member of both `{other}` and `{name}`"),
                    ));
                }
            }
        }
        // Each group has at most one parent: walking up from any group
        // either ends at a top group or comes back round.
        for group in &self.groups {
            let mut at = group.name.as_str();
            for _ in 0..self.groups.len() {
                match placed.get(at) {
                    Some(&parent) if parent == group.name => {
                        let index = self.groups.iter().position(|g| g.name == parent);
                        return Err(source.invalid_at_key(
                            &["group", &index.unwrap_or(0).to_string(), "members"],
                            format!("group `{parent}` is a member of itself"),
                        ));
                    }
                    Some(&parent) => at = parent,
                    None => break,
                }
            }
        }
        for (index, worker) in self.workers.iter().enumerate() {
            let Some(&group) = placed.get(worker.name.as_str()) else {
                continue;
            };
            let index = index.to_string();
            let invalid = |key: &str, message: String| {
                source.invalid_at_key(&["worker", &index, key], message)
            };
            let name = &worker.name;
            if !worker.after.is_empty() {
                return Err(invalid(
                    "after",
                    format!("worker `{name}` is in group `{group}`, which starts it: drop `after`"),
                ));
            }
            let own_intensity = [
                ("max-restarts", worker.max_restarts.is_some()),
                ("restart-within", worker.restart_within.is_some()),
                ("backoff", worker.backoff.is_some()),
                ("max-backoff", worker.max_backoff.is_some()),
            ];
            if let Some((key, _)) = own_intensity.iter().find(|(_, set)| *set) {
                return Err(invalid(
                    key,
                    format!(
                        "worker `{name}` is in group `{group}`, which counts its restarts: \
                         set `{key}` on the [[group]]"
                    ),
                ));
            }
        }
        Ok(())
    }
}
