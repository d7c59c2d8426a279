//! Loading programs: compiling (or mapping from the compile cache),
//! linking, and inspecting files; the [`Program`] handle workers are
//! spawned from, and the registry of a run's spawnable programs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::Engine;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre};
use wasmtime_wasi::p2::bindings::CommandPre;

use super::variant::{VariantKey, VariantProgram};
use super::{Runtime, WorkerState, load};
use crate::error::LoadError;
use crate::events::Event;
use crate::run::Run;
use crate::status::{CacheOutcome, InputKind};
use crate::worker::micros;

impl Runtime {
    /// Loads a worker program from a file: a component, a WASI preview1
    /// core module (adapted in-process) or WebAssembly text.
    ///
    /// Blocks the calling thread while compiling (~100 ms for a small
    /// component, seconds for a large one) unless the compile cache has it.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Program, LoadError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        self.load_bytes(path, bytes)
    }

    /// Like [`load`](Self::load), from bytes already in memory; `path` is only
    /// used in messages.
    pub fn load_bytes(&self, path: impl AsRef<Path>, bytes: Vec<u8>) -> Result<Program, LoadError> {
        let path = path.as_ref();
        let started = Instant::now();
        let compiled = self.compile(path, bytes)?;
        let engine = &self.inner.engine;
        let missing = load::missing_imports(engine, &compiled.component);
        if !missing.is_empty() {
            return Err(LoadError::MissingImports {
                path: path.to_owned(),
                imports: missing,
            });
        }
        let run_export = load::find_run_export(engine, &compiled.component);
        let task = load::find_task_exports(engine, &compiled.component);
        if run_export.is_none() && task.is_none() {
            let exports = compiled
                .component
                .component_type()
                .exports(engine)
                .map(|(name, _)| name.to_string())
                .collect();
            return Err(LoadError::NoEntryPoint {
                path: path.to_owned(),
                exports,
            });
        }
        let link_error = |e: wasmtime::Error| LoadError::Link {
            path: path.to_owned(),
            reason: format!("{e:#}"),
        };
        let pre = self
            .inner
            .linker
            .instantiate_pre(&compiled.component)
            .map_err(link_error)?;
        let command = match run_export {
            Some(_) => Some(CommandPre::new(pre.clone()).map_err(link_error)?),
            None => None,
        };
        self.emit(Event::Loaded {
            path: path.display().to_string(),
            kind: compiled.kind,
            cache: compiled.cache,
            micros: micros(started),
        });
        Ok(Program(Arc::new(ProgramInner {
            path: path.to_owned(),
            kind: compiled.kind,
            cache: compiled.cache,
            input: compiled.input,
            pre,
            command,
            task,
            variants: Mutex::new(HashMap::new()),
        })))
    }

    /// Describes a file without requiring that it can run here: its kind,
    /// imports (and whether this host provides each), and exports.
    pub fn inspect(&self, path: impl AsRef<Path>) -> Result<Inspection, LoadError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        let compiled = self.compile(path, bytes)?;
        let engine = &self.inner.engine;
        let ty = compiled.component.component_type();
        let missing = load::missing_imports(engine, &compiled.component);
        let imports = load::describe_items(ty.imports(engine))
            .into_iter()
            .map(|(name, kind)| InspectedItem {
                provided: !missing.contains(&name),
                name,
                kind,
            })
            .collect();
        let exports = load::describe_items(ty.exports(engine))
            .into_iter()
            .map(|(name, kind)| InspectedItem {
                name,
                kind,
                provided: true,
            })
            .collect();
        let link_problem = if missing.is_empty() {
            self.inner
                .linker
                .instantiate_pre(&compiled.component)
                .err()
                .map(|e| format!("{e:#}"))
        } else {
            None
        };
        Ok(Inspection {
            kind: compiled.kind,
            run_export: load::find_run_export(engine, &compiled.component),
            imports,
            exports,
            link_problem,
            cache: compiled.cache,
        })
    }

    /// Compiles (or loads from cache) and stores the result, so later runs
    /// start without compiling. Returns whether the cache already had it.
    pub fn precompile(&self, path: impl AsRef<Path>) -> Result<CacheOutcome, LoadError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(self.compile(path, bytes)?.cache)
    }

    fn compile(&self, path: &Path, bytes: Vec<u8>) -> Result<Compiled, LoadError> {
        let input = Arc::new(load::recognise(path, bytes)?);
        let (component, cache) = self.compile_for(&self.inner.engine, path, &input)?;
        Ok(Compiled {
            kind: input.kind,
            component,
            cache,
            input,
        })
    }

    /// Compiles `input` for `engine`, or maps it from the compile cache.
    pub(super) fn compile_for(
        &self,
        engine: &Engine,
        path: &Path,
        input: &load::Recognised,
    ) -> Result<(Component, CacheOutcome), LoadError> {
        let entry = self.inner.cache.as_ref().map(|cache| {
            (
                cache,
                cache.entry_path(engine, &input.original, input.cache_flavor()),
            )
        });
        if let Some((cache, entry)) = &entry
            && let Some(component) = cache.load(engine, entry)
        {
            return Ok((component, CacheOutcome::Hit));
        }
        let component = load::compile(engine, path, &input.component_bytes(path)?)?;
        let outcome = match &entry {
            Some((cache, entry)) => {
                cache.store(&component, entry);
                CacheOutcome::Miss
            }
            None => CacheOutcome::Disabled,
        };
        Ok((component, outcome))
    }
}

struct Compiled {
    kind: InputKind,
    component: Component,
    cache: CacheOutcome,
    input: Arc<load::Recognised>,
}

/// A loaded worker program: compiled, linked against the host and ready to
/// instantiate in microseconds. Cheap to clone; spawn as many workers from
/// it as the host holds.
#[derive(Clone)]
pub struct Program(pub(super) Arc<ProgramInner>);

pub(super) struct ProgramInner {
    pub path: PathBuf,
    kind: InputKind,
    cache: CacheOutcome,
    /// The input as read: variant engines compile it again.
    pub input: Arc<load::Recognised>,
    pre: InstancePre<WorkerState>,
    pub command: Option<CommandPre<WorkerState>>,
    task: Option<TaskExports>,
    /// This program compiled for variant engines, by variant.
    pub variants: Mutex<HashMap<VariantKey, Arc<VariantProgram>>>,
}

/// Where a pool task's functions are, found once at load.
#[derive(Clone, Copy)]
pub(crate) struct TaskExports {
    /// `corral:worker/task#handle`.
    pub handle: ComponentExportIndex,
    /// `corral:worker/task-batch#handle-batch`, if exported.
    pub handle_batch: Option<ComponentExportIndex>,
}

impl Program {
    /// The file the program was loaded from.
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// What the file held.
    pub fn kind(&self) -> InputKind {
        self.0.kind
    }

    /// Whether loading was served by the compile cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.0.cache
    }

    /// Whether it has a `main` (exports `wasi:cli/run`): it can be spawned.
    pub fn is_command(&self) -> bool {
        self.0.command.is_some()
    }

    /// Whether it exports the pool `task` interface: a `Pool` can run it.
    pub fn is_task(&self) -> bool {
        self.0.task.is_some()
    }

    pub(crate) fn instance_pre(&self) -> &InstancePre<WorkerState> {
        &self.0.pre
    }

    pub(crate) fn task_exports(&self) -> Option<TaskExports> {
        self.0.task
    }
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("path", &self.0.path)
            .field("kind", &self.0.kind)
            .field("cache", &self.0.cache)
            .finish()
    }
}

/// What [`Runtime::inspect`] found in a file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    /// What the file held.
    pub kind: InputKind,
    /// The `wasi:cli/run` export that makes it a worker, if any.
    pub run_export: Option<String>,
    /// The component's imports (after adaptation, for core modules).
    pub imports: Vec<InspectedItem>,
    /// The component's exports.
    pub exports: Vec<InspectedItem>,
    /// Why linking against this host fails although every import is known.
    pub link_problem: Option<String>,
    /// Whether the compile cache served it.
    pub cache: CacheOutcome,
}

impl Inspection {
    /// Whether the file fits the `corral:worker/worker` world on this host:
    /// every import provided and `wasi:cli/run` exported.
    pub fn fits_worker(&self) -> bool {
        self.run_export.is_some()
            && self.link_problem.is_none()
            && self.imports.iter().all(|i| i.provided)
    }
}

/// One import or export of an inspected component.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InspectedItem {
    /// Its full name, e.g. `wasi:cli/stdout@0.2.3`.
    pub name: String,
    /// `instance`, `function`, `type`...
    pub kind: &'static str,
    /// For imports: whether this host provides it.
    pub provided: bool,
}

impl Run {
    /// Makes `program` available to workers of the run that may spawn
    /// (`corral:worker/process.child.spawn`) under `name`.
    pub fn register_component(&self, name: impl Into<String>, program: Program) {
        self.register(name.into(), program);
    }

    /// The program registered under `name`.
    pub fn component(&self, name: &str) -> Option<Program> {
        self.registered(name)
    }
}
