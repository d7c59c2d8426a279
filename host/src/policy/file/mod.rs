//! Policy files: TOML with named profiles, inheritance (`extends`), units
//! (`64MiB`, `500ms`); unknown keys and bad values are errors naming the
//! file, line and key.
//!
//! ```toml
//! [profiles.base]
//! memory = "64MiB"          # linear memory, all memories together
//! cpu = "2s"                # CPU time
//! timeout = "30s"           # wall time
//! env = ["LANG=C", "TZ"]    # K=V, or a name copied from the host
//! mounts = ["@shared:/", "./data:/data:ro"]
//! stdout = "1MiB"           # output caps: the rest is dropped, with a notice
//! fuel = 50_000_000         # deterministic metering (instructions, about)
//! stack = "256KiB"          # wasm stack
//! max-handles = 10_000      # open files, directories, streams, sockets
//! max-host-fds = 1024       # host file descriptors (host mounts, sockets)
//!
//! [profiles.base.network]
//! connect = ["127.0.0.1:8000-8100"]
//! bind = ["127.0.0.1:9000"]
//! udp = []
//! lookup = false
//!
//! [profiles.base.ipc]
//! queues = { jobs = ["get"], "results-*" = ["put"] }
//! locks = { "*" = ["acquire"] }
//!
//! [profiles.strict]
//! extends = "base"
//! memory = "16MiB"
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::grants::{IpcGrants, IpcRule, ObjectKind, OpSet};
use super::network::{AddrRule, NetworkPolicy};
use super::{Counts, Deterministic, Limits, Policy, SpawnPolicy};
use crate::config::{ConfigError, ConfigSource};
use crate::units::serde_opt;
use crate::vfs::MountSpec;

/// Why a policy file or profile cannot be used: the config error every
/// config file shares, naming the file, line and key.
pub type PolicyError = ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    profiles: BTreeMap<String, toml::Spanned<ProfileToml>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ProfileToml {
    extends: Option<toml::Spanned<String>>,
    #[serde(default, deserialize_with = "serde_opt::size")]
    memory: Option<u64>,
    #[serde(default, deserialize_with = "serde_opt::duration")]
    cpu: Option<Duration>,
    #[serde(default, deserialize_with = "serde_opt::duration")]
    timeout: Option<Duration>,
    fuel: Option<u64>,
    #[serde(default, deserialize_with = "serde_opt::size")]
    stack: Option<u64>,
    instances: Option<u32>,
    tables: Option<u32>,
    memories: Option<u32>,
    max_handles: Option<u32>,
    max_host_fds: Option<u32>,
    env: Option<Vec<String>>,
    mounts: Option<Vec<toml::Spanned<String>>>,
    #[serde(default, deserialize_with = "serde_opt::size")]
    stdout: Option<u64>,
    #[serde(default, deserialize_with = "serde_opt::size")]
    stderr: Option<u64>,
    deterministic: Option<DeterministicToml>,
    network: Option<NetworkToml>,
    ipc: Option<IpcToml>,
    spawn: Option<SpawnToml>,
}

/// `[ipc]`: kind (`queues`...) → name pattern → operations.
type IpcToml = BTreeMap<String, BTreeMap<String, toml::Spanned<Vec<String>>>>;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DeterministicToml {
    seed: u64,
    /// RFC 3339, e.g. `2024-01-01T00:00:00Z`; default: the Unix epoch.
    start: Option<toml::Spanned<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct NetworkToml {
    connect: Option<Vec<toml::Spanned<String>>>,
    bind: Option<Vec<toml::Spanned<String>>>,
    udp: Option<Vec<toml::Spanned<String>>>,
    lookup: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SpawnToml {
    components: Option<Vec<String>>,
    max_children: Option<u32>,
    max_descendants: Option<u32>,
}

/// A profile resolved through its `extends` chain: everything a worker's
/// spec needs from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The profile's name.
    pub name: String,
    /// Memory, CPU time, wall time.
    pub limits: Limits,
    /// `K=V` entries, or names whose value is copied from the host.
    pub env: Vec<String>,
    /// What the worker sees of the filesystem.
    pub mounts: Vec<MountSpec>,
    /// The run-time grants.
    pub policy: Policy,
}

impl Profile {
    /// Loads the profile a reference names: `FILE` (its `default` or only
    /// profile) or `FILE#PROFILE`, with FILE relative to `base`.
    pub fn load(reference: &str, base: &Path) -> Result<Profile, PolicyError> {
        let (file, profile) = match reference.rsplit_once('#') {
            Some((file, profile)) => (file, Some(profile)),
            None => (reference, None),
        };
        PolicyFile::from_file(&base.join(file))?.profile(profile)
    }
}

/// A parsed policy file.
#[derive(Debug, Clone)]
pub struct PolicyFile {
    source: ConfigSource,
    profiles: BTreeMap<String, toml::Spanned<ProfileToml>>,
}

impl PolicyFile {
    /// Reads and checks a policy file: every profile must resolve.
    pub fn from_file(path: &Path) -> Result<PolicyFile, PolicyError> {
        PolicyFile::check(ConfigSource::read("policy file", path)?)
    }

    /// Parses and checks policy text; `path` names it in messages and
    /// anchors relative host directories in mounts.
    pub fn parse(path: &Path, text: &str) -> Result<PolicyFile, PolicyError> {
        PolicyFile::check(ConfigSource::new(path, text))
    }

    fn check(source: ConfigSource) -> Result<PolicyFile, PolicyError> {
        let parsed: FileToml = source.deserialize()?;
        let file = PolicyFile {
            source,
            profiles: parsed.profiles,
        };
        if file.profiles.is_empty() {
            return Err(file
                .source
                .error("no profiles: a policy file holds [profiles.NAME] tables".into()));
        }
        for (name, profile) in &file.profiles {
            if let Some(stack) = profile.get_ref().stack {
                super::check_stack(stack).map_err(|e| {
                    file.source
                        .invalid_at_key(&["profiles", name, "stack"], format!("stack: {e}"))
                })?;
            }
        }
        for name in file.profiles.keys() {
            file.profile(Some(name))?;
        }
        Ok(file)
    }

    /// The profiles' names, sorted.
    pub fn profile_names(&self) -> Vec<&str> {
        self.profiles.keys().map(String::as_str).collect()
    }

    /// Resolves a profile. `None` picks `default`, or the only profile.
    pub fn profile(&self, name: Option<&str>) -> Result<Profile, PolicyError> {
        let name = match name {
            Some(name) => name.to_string(),
            None if self.profiles.contains_key("default") => "default".into(),
            None if self.profiles.len() == 1 => {
                self.profiles.keys().next().cloned().unwrap_or_default()
            }
            None => {
                return Err(self.source.error(format!(
                    "several profiles ({}) and none is `default`: name one (FILE#PROFILE)",
                    self.profile_names().join(", ")
                )));
            }
        };
        let merged = self.merged(&name)?;
        self.resolve(&name, &merged)
    }

    /// The profile with its ancestors' settings beneath its own.
    fn merged(&self, name: &str) -> Result<ProfileToml, PolicyError> {
        let mut chain: Vec<&toml::Spanned<ProfileToml>> = Vec::new();
        let mut seen = HashSet::new();
        let mut current = name.to_string();
        loop {
            let Some(profile) = self.profiles.get(&current) else {
                return Err(self.source.error(format!(
                    "no profile `{current}` (profiles: {})",
                    self.profile_names().join(", ")
                )));
            };
            if !seen.insert(current.clone()) {
                return Err(self.source.invalid(
                    profile.span(),
                    format!("profile `{current}` extends itself through its parents"),
                ));
            }
            chain.push(profile);
            match &profile.get_ref().extends {
                Some(parent) if !self.profiles.contains_key(parent.get_ref()) => {
                    return Err(self.source.invalid(
                        parent.span(),
                        format!("`extends = \"{}\"`: no such profile", parent.get_ref()),
                    ));
                }
                Some(parent) => current = parent.get_ref().clone(),
                None => break,
            }
        }
        let mut merged = ProfileToml::default();
        for profile in chain.into_iter().rev() {
            merged = overlay(merged, profile.get_ref().clone());
        }
        Ok(merged)
    }

    fn resolve(&self, name: &str, p: &ProfileToml) -> Result<Profile, PolicyError> {
        let base = self.source.dir();
        let mounts = p
            .mounts
            .iter()
            .flatten()
            .map(|m| {
                m.get_ref()
                    .parse::<MountSpec>()
                    .map(|spec| spec.relative_to(base))
                    .map_err(|e| self.source.invalid(m.span(), format!("mounts: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rules = |key: &str, list: &Option<Vec<toml::Spanned<String>>>| {
            list.iter()
                .flatten()
                .map(|r| {
                    r.get_ref()
                        .parse::<AddrRule>()
                        .map_err(|e| self.source.invalid(r.span(), format!("network.{key}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let net = p.network.clone().unwrap_or_default();
        let network = NetworkPolicy {
            connect: rules("connect", &net.connect)?,
            bind: rules("bind", &net.bind)?,
            udp: rules("udp", &net.udp)?,
            lookup: net.lookup.unwrap_or(false),
        };
        let ipc = self.ipc_grants(p.ipc.as_ref())?;
        let deterministic = match &p.deterministic {
            None => None,
            Some(d) => Some(Deterministic {
                seed: d.seed,
                start: match &d.start {
                    None => SystemTime::UNIX_EPOCH,
                    Some(text) => humantime::parse_rfc3339(text.get_ref()).map_err(|e| {
                        self.source.invalid(
                            text.span(),
                            format!("deterministic.start: {e} (write e.g. 2024-01-01T00:00:00Z)"),
                        )
                    })?,
                },
            }),
        };
        let spawn = p.spawn.clone().unwrap_or_default();
        Ok(Profile {
            name: name.to_string(),
            limits: Limits {
                memory: p.memory,
                cpu_time: p.cpu,
                wall_time: p.timeout,
            },
            env: p.env.clone().unwrap_or_default(),
            mounts,
            policy: Policy {
                name: name.to_string(),
                network,
                ipc: Some(ipc),
                spawn: SpawnPolicy {
                    components: spawn.components.unwrap_or_default(),
                    max_children: spawn
                        .max_children
                        .unwrap_or(SpawnPolicy::DEFAULT_MAX_CHILDREN),
                    max_descendants: spawn
                        .max_descendants
                        .unwrap_or(SpawnPolicy::DEFAULT_MAX_DESCENDANTS),
                },
                stdout_limit: p.stdout,
                stderr_limit: p.stderr,
                counts: Counts {
                    instances: p.instances,
                    tables: p.tables,
                    memories: p.memories,
                    handles: p.max_handles,
                    host_fds: p.max_host_fds,
                },
                fuel: p.fuel,
                stack: p.stack,
                deterministic,
            },
        })
    }

    fn ipc_grants(&self, ipc: Option<&IpcToml>) -> Result<IpcGrants, PolicyError> {
        let mut rules = Vec::new();
        for (table, objects) in ipc.into_iter().flatten() {
            let Some(kind) = ObjectKind::ALL
                .iter()
                .copied()
                .find(|k| k.table_key() == table)
            else {
                let span = objects.values().next().map_or(0..0, |v| v.span());
                let keys: Vec<&str> = ObjectKind::ALL.iter().map(|k| k.table_key()).collect();
                return Err(self.source.invalid(
                    span,
                    format!(
                        "ipc: unknown key `{table}` (expected one of {})",
                        keys.join(", ")
                    ),
                ));
            };
            for (pattern, ops) in objects {
                let mut set = OpSet::default();
                for op in ops.get_ref() {
                    match (op.as_str(), kind.ops().iter().find(|o| o.name() == op)) {
                        ("*", _) => kind.ops().iter().for_each(|o| set.insert(*o)),
                        (_, Some(o)) => set.insert(*o),
                        (_, None) => {
                            let valid: Vec<&str> = kind.ops().iter().map(|o| o.name()).collect();
                            return Err(self.source.invalid(
                                ops.span(),
                                format!(
                                    "ipc.{table}.{pattern}: `{op}` is not an operation of a {} (valid: {}, *)",
                                    kind.name(),
                                    valid.join(", ")
                                ),
                            ));
                        }
                    }
                }
                rules.push(IpcRule {
                    kind,
                    pattern: pattern.clone(),
                    ops: set,
                });
            }
        }
        Ok(IpcGrants { rules })
    }
}

/// `child`'s settings over `parent`'s; nested tables merge key by key.
fn overlay(parent: ProfileToml, child: ProfileToml) -> ProfileToml {
    let network = match (parent.network, child.network) {
        (Some(p), Some(c)) => Some(NetworkToml {
            connect: c.connect.or(p.connect),
            bind: c.bind.or(p.bind),
            udp: c.udp.or(p.udp),
            lookup: c.lookup.or(p.lookup),
        }),
        (p, c) => c.or(p),
    };
    let ipc = match (parent.ipc, child.ipc) {
        (Some(mut p), Some(c)) => {
            p.extend(c);
            Some(p)
        }
        (p, c) => c.or(p),
    };
    let spawn = match (parent.spawn, child.spawn) {
        (Some(p), Some(c)) => Some(SpawnToml {
            components: c.components.or(p.components),
            max_children: c.max_children.or(p.max_children),
            max_descendants: c.max_descendants.or(p.max_descendants),
        }),
        (p, c) => c.or(p),
    };
    ProfileToml {
        extends: None,
        memory: child.memory.or(parent.memory),
        cpu: child.cpu.or(parent.cpu),
        timeout: child.timeout.or(parent.timeout),
        fuel: child.fuel.or(parent.fuel),
        stack: child.stack.or(parent.stack),
        instances: child.instances.or(parent.instances),
        tables: child.tables.or(parent.tables),
        memories: child.memories.or(parent.memories),
        max_handles: child.max_handles.or(parent.max_handles),
        max_host_fds: child.max_host_fds.or(parent.max_host_fds),
        env: child.env.or(parent.env),
        mounts: child.mounts.or(parent.mounts),
        stdout: child.stdout.or(parent.stdout),
        stderr: child.stderr.or(parent.stderr),
        deterministic: child.deterministic.or(parent.deterministic),
        network,
        ipc,
        spawn,
    }
}

#[cfg(test)]
mod tests;
