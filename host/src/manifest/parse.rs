//! Reading a manifest: deserializing it, checking what serde cannot (unique
//! names, references between workers, pools and objects) and resolving its
//! paths against the manifest's directory. Errors point at the offending
//! key's line through the shared config loader.

use std::collections::HashSet;
use std::path::Path;

use super::{Manifest, ManifestError, WorkerEntry};
use crate::config::ConfigSource;

impl Manifest {
    /// Reads and checks a manifest file.
    pub fn from_file(path: &Path) -> Result<Manifest, ManifestError> {
        Manifest::check(ConfigSource::read("manifest", path)?)
    }

    /// Parses and checks manifest text; `path` is used in messages and to
    /// resolve component paths.
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        Manifest::check(ConfigSource::new(path, text))
    }

    fn check(source: ConfigSource) -> Result<Manifest, ManifestError> {
        let mut manifest: Manifest = source.deserialize()?;
        let base = source.dir();
        if manifest.workers.is_empty() {
            return Err(source.invalid_at_line(
                1,
                "no workers: add at least one [[worker]] table with `name` and `component`".into(),
            ));
        }
        let mut seen = HashSet::new();
        for (index, worker) in manifest.workers.iter_mut().enumerate() {
            let index = index.to_string();
            let invalid = |key: &str, message: String| {
                source.invalid_at_key(&["worker", &index, key], message)
            };
            // `/` is reserved for the names of spawned children
            // (`parent/child`), so that none can pass for a manifest worker.
            if worker.name.is_empty()
                || worker
                    .name
                    .contains(|c: char| c.is_whitespace() || c == '/')
            {
                return Err(invalid(
                    "name",
                    format!(
                        "worker name {:?} must be non-empty and contain no spaces or `/`",
                        worker.name
                    ),
                ));
            }
            if !seen.insert(worker.name.clone()) {
                return Err(invalid(
                    "name",
                    format!("two workers are named `{}`", worker.name),
                ));
            }
            if worker.count == 0 || worker.count > super::MAX_COUNT {
                return Err(invalid(
                    "count",
                    format!(
                        "worker `{}`: count must be from 1 to {}",
                        worker.name,
                        super::MAX_COUNT
                    ),
                ));
            }
            if let Some(unknown) = worker
                .after
                .iter()
                .find(|a| !seen.contains(*a) || **a == worker.name)
            {
                return Err(invalid(
                    "after",
                    format!(
                        "worker `{}`: `after` names `{unknown}`, which is not a worker defined above it",
                        worker.name
                    ),
                ));
            }
            let resolved = base.join(worker.component.get_ref());
            let span = worker.component.span();
            worker.component = toml::Spanned::new(span, resolved);
            worker.mounts = std::mem::take(&mut worker.mounts)
                .into_iter()
                .map(|m| m.relative_to(base))
                .collect();
        }
        manifest.check_pools(&source)?;
        manifest.check_groups(&source)?;
        if let Some(fs) = &mut manifest.filesystem {
            fs.from = fs.from.take().map(|d| base.join(d));
            fs.save = fs.save.take().map(|d| base.join(d));
        }
        manifest.check_objects(&source)?;
        Ok(manifest)
    }

    /// Checks that the objects' references name what exists.
    fn check_objects(&self, source: &ConfigSource) -> Result<(), ManifestError> {
        let all_names: HashSet<String> = self
            .workers
            .iter()
            .flat_map(WorkerEntry::instance_names)
            .collect();
        for (name, pipe) in &self.pipes {
            if pipe.regrant && pipe.ends.is_none() {
                return Err(source.invalid_at_key(
                    &["pipes", name, "regrant"],
                    format!(
                        "[pipes.{name}]: `regrant` needs `ends`, the two workers whose \
                         restarts get their end back"
                    ),
                ));
            }
            for end in pipe.ends.iter().flatten() {
                if !all_names.contains(end) {
                    return Err(source.invalid_at_key(
                        &["pipes", name, "ends"],
                        format!("[pipes.{name}]: end `{end}` is not the name of any worker"),
                    ));
                }
            }
        }
        for (name, condition) in &self.conditions {
            if !self.locks.contains_key(&condition.lock) {
                return Err(source.invalid_at_key(
                    &["conditions", name, "lock"],
                    format!(
                        "[conditions.{name}]: lock `{}` is not declared in [locks]",
                        condition.lock
                    ),
                ));
            }
        }
        for (name, semaphore) in &self.semaphores {
            if semaphore.max.is_some_and(|max| max < semaphore.value) {
                return Err(source.invalid_at_key(
                    &["semaphores", name, "max"],
                    format!("[semaphores.{name}]: max is below value"),
                ));
            }
        }
        Ok(())
    }

    /// Checks the `[[pool]]` tables and resolves their paths.
    fn check_pools(&mut self, source: &ConfigSource) -> Result<(), ManifestError> {
        let base = source.dir();
        let workers: HashSet<&str> = self.workers.iter().map(|w| w.name.as_str()).collect();
        let mut seen = HashSet::new();
        for (index, pool) in self.pools.iter_mut().enumerate() {
            let index = index.to_string();
            let invalid =
                |key: &str, message: String| source.invalid_at_key(&["pool", &index, key], message);
            let name = &pool.name;
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '/') {
                return Err(invalid(
                    "name",
                    format!("pool name {name:?} must be non-empty and contain no spaces or `/`"),
                ));
            }
            if workers.contains(name.as_str()) || !seen.insert(name.clone()) {
                return Err(invalid(
                    "name",
                    format!("two workers or pools are named `{name}`"),
                ));
            }
            for (key, queue) in [("input", &pool.input), ("output", &pool.output)] {
                if !self.queues.contains_key(queue) {
                    return Err(invalid(
                        key,
                        format!("pool `{name}`: {key} queue `{queue}` is not declared in [queues]"),
                    ));
                }
            }
            if pool.input == pool.output {
                return Err(invalid(
                    "output",
                    format!("pool `{name}`: input and output are both `{}`", pool.input),
                ));
            }
            if pool.workers == Some(0) || pool.chunk == 0 {
                let key = if pool.chunk == 0 { "chunk" } else { "workers" };
                return Err(invalid(
                    key,
                    format!("pool `{name}`: workers and chunk must be at least 1"),
                ));
            }
            if let Some(unknown) = pool
                .producers
                .iter()
                .flatten()
                .find(|p| !workers.contains(p.as_str()))
            {
                return Err(invalid(
                    "producers",
                    format!(
                        "pool `{name}`: producer `{unknown}` is not a [[worker]] of this manifest"
                    ),
                ));
            }
            let span = pool.component.span();
            pool.component = toml::Spanned::new(span, base.join(pool.component.get_ref()));
            pool.mounts = std::mem::take(&mut pool.mounts)
                .into_iter()
                .map(|m| m.relative_to(base))
                .collect();
        }
        Ok(())
    }
}
