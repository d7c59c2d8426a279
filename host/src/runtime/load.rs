//! Turning a file into something the host can run: recognising what it is,
//! adapting preview1 core modules into components, compiling (or loading the
//! compiled form from the cache) and checking its imports and exports.

use std::path::Path;

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::{ComponentExtern, ComponentItem};

use crate::error::LoadError;
use crate::status::InputKind;

/// An input recognised and, for core modules, adapted: the component bytes
/// the engine compiles.
pub(crate) struct Recognised {
    pub kind: InputKind,
    /// The bytes as read (after `.wat` parsing); the cache key.
    pub original: Vec<u8>,
    /// Whether a core module exports `_start` (so it is adapted as a command).
    pub is_command_module: bool,
}

const WASM_MAGIC: &[u8] = b"\0asm";
const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];
const COMPONENT_LAYER: [u8; 2] = [1, 0];

/// Reads `bytes` (the contents of `path`) as a component, a core module or
/// WebAssembly text, and says plainly what it is when it is none of those.
pub(crate) fn recognise(path: &Path, bytes: Vec<u8>) -> Result<Recognised, LoadError> {
    let bytes = if bytes.starts_with(WASM_MAGIC) {
        bytes
    } else if looks_like_wat(path, &bytes) {
        wat::parse_bytes(&bytes)
            .map_err(|e| LoadError::BadText {
                path: path.to_owned(),
                reason: e.to_string(),
            })?
            .into_owned()
    } else {
        return Err(LoadError::NotWasm {
            path: path.to_owned(),
            looks_like: describe_non_wasm(&bytes),
        });
    };
    if bytes.len() < 8 {
        return Err(LoadError::Invalid {
            path: path.to_owned(),
            reason: "the file ends inside the 8-byte WebAssembly header".into(),
        });
    }
    if bytes[4..8] == CORE_VERSION {
        let is_command_module = core_module_exports(&bytes).iter().any(|e| e == "_start");
        Ok(Recognised {
            kind: InputKind::CoreModule,
            original: bytes,
            is_command_module,
        })
    } else if bytes[6..8] == COMPONENT_LAYER {
        Ok(Recognised {
            kind: InputKind::Component,
            original: bytes,
            is_command_module: false,
        })
    } else {
        Err(LoadError::Invalid {
            path: path.to_owned(),
            reason: format!(
                "unknown WebAssembly version/layer {:02x?}: neither a core module (01 00 00 00) \
                 nor a component (.. .. 01 00)",
                &bytes[4..8]
            ),
        })
    }
}

impl Recognised {
    /// The bytes of the component to compile: the input itself, or the core
    /// module wrapped with the matching preview1 adapter.
    pub fn component_bytes(&self, path: &Path) -> Result<Vec<u8>, LoadError> {
        match self.kind {
            InputKind::Component => Ok(self.original.clone()),
            InputKind::CoreModule => {
                // A broken module is the user's problem to hear about as such,
                // not as an adapter failure.
                wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
                    .validate_all(&self.original)
                    .map_err(|e| LoadError::Invalid {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    })?;
                adapt_core_module(path, &self.original, self.is_command_module)
            }
        }
    }

    /// What separates two compilations of the same bytes in the cache.
    pub fn cache_flavor(&self) -> &'static str {
        match (self.kind, self.is_command_module) {
            (InputKind::Component, _) => "component",
            // `+exit-code`: adapted with `proc_exit` rerouted (see
            // `exit_with_code`), unlike what earlier versions cached.
            (InputKind::CoreModule, true) => "p1-command+exit-code",
            (InputKind::CoreModule, false) => "p1-reactor+exit-code",
        }
    }
}

fn looks_like_wat(path: &Path, bytes: &[u8]) -> bool {
    if path.extension().is_some_and(|e| e == "wat" || e == "wast") {
        return true;
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]);
    let trimmed = text.trim_start();
    trimmed.starts_with("(module") || trimmed.starts_with("(component")
}

/// A short description of what a non-Wasm file looks like, so the user sees
/// at once that they passed the wrong file.
fn describe_non_wasm(bytes: &[u8]) -> String {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (
            b"\x7fELF",
            "an ELF executable or library (a native binary, not WebAssembly)",
        ),
        (b"MZ", "a Windows PE executable"),
        (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
        (
            b"\xca\xfe\xba\xbe",
            "a Mach-O universal binary or Java class file",
        ),
        (b"\x1f\x8b", "gzip-compressed data (decompress it first)"),
        (b"PK\x03\x04", "a zip archive"),
        (b"\x89PNG", "a PNG image"),
        (b"%PDF", "a PDF document"),
        (b"#!", "a script"),
    ];
    if bytes.is_empty() {
        return "an empty file".into();
    }
    if let Some((_, what)) = SIGNATURES.iter().find(|(sig, _)| bytes.starts_with(sig)) {
        return (*what).into();
    }
    let head = &bytes[..bytes.len().min(512)];
    let text = String::from_utf8_lossy(head);
    let printable = text
        .chars()
        .filter(|c| !c.is_control() || c.is_whitespace())
        .count();
    if printable * 10 >= text.chars().count() * 9 {
        let first_line: String = text.lines().next().unwrap_or("").chars().take(60).collect();
        format!("a text file starting with {first_line:?}")
    } else {
        let hex: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("binary data starting with {}", hex.join(" "))
    }
}

fn core_module_exports(bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let Ok(wasmparser::Payload::ExportSection(reader)) = payload {
            names.extend(reader.into_iter().flatten().map(|e| e.name.to_string()));
        }
    }
    names
}

/// Wraps a preview1 core module into a component with the preview1 adapter
/// shipped for this wasmtime version: the command adapter when the module has
/// `_start`, the reactor adapter otherwise.
fn adapt_core_module(path: &Path, module: &[u8], command: bool) -> Result<Vec<u8>, LoadError> {
    use wasi_preview1_component_adapter_provider as adapters;
    let adapter = if command {
        adapters::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER
    } else {
        adapters::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER
    };
    let adapt = || -> anyhow::Result<Vec<u8>> {
        let module = exit_with_code(module)?;
        wit_component::ComponentEncoder::default()
            .module(&module)?
            .adapter(adapters::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, adapter)?
            .validate(true)
            .encode()
    };
    adapt().map_err(|e| LoadError::Adapt {
        path: path.to_owned(),
        reason: format!("{e:#}"),
    })
}

/// The module and name of the preview1 call that ends the process.
const PROC_EXIT: (&str, &str) = ("wasi_snapshot_preview1", "proc_exit");

/// Where `proc_exit` is rerouted: WASI 0.2's exit with a code, which the
/// host provides.
const EXIT_WITH_CODE: (&str, &str) = ("wasi:cli/exit@0.2.12", "exit-with-code");

/// The WIT of [`EXIT_WITH_CODE`], as the preview1 adapter of this wasmtime
/// version declares it (its world imports the same interface).
const EXIT_WIT: &str = "
package wasi:cli@0.2.12;

@since(version = 0.2.0)
interface exit {
  @since(version = 0.2.0)
  exit: func(status: result);

  @since(version = 0.2.12)
  exit-with-code: func(status-code: u8);
}

world corral-preview1-exit {
  import exit;
}
";

/// `module` with its `proc_exit` import taken from `wasi:cli/exit`'s
/// `exit-with-code` instead of the preview1 adapter. The stock adapter maps
/// `proc_exit(N)` to `exit(err)` for any N other than 0, so every failure
/// would exit 1; `exit-with-code` keeps N (0-255; the low byte of larger
/// values, as a POSIX exit status). Both take one i32 in the core ABI.
/// A module without `proc_exit` is returned as it is.
fn exit_with_code(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    // The sections, each as its id, the range of its contents, and where
    // its header starts.
    let mut reader = wasmparser::BinaryReader::new(module, 0);
    reader.skip(|r| r.read_bytes(8).map(|_| ()))?;
    let mut imports = None;
    while !reader.eof() {
        let header = reader.original_position();
        let id = reader.read_u8()?;
        let size = reader.read_var_u32()? as usize;
        let start = reader.original_position();
        reader.skip(|r| r.read_bytes(size).map(|_| ()))?;
        if id == 2 {
            imports = Some((header, start..start + size));
            break;
        }
    }
    let Some((header, section)) = imports else {
        return Ok(module.to_vec());
    };
    let reader = wasmparser::ImportSectionReader::new(wasmparser::BinaryReader::new(
        &module[section.clone()],
        section.start,
    ))?;
    let count = reader.count();
    let mut entries = Vec::new();
    let mut found = false;
    let mut items = reader.into_iter_with_offsets().peekable();
    while let Some(item) = items.next() {
        let (start, group) = item?;
        let end = match items.peek() {
            Some(Ok((next, _))) => *next,
            _ => section.end,
        };
        let raw = &module[start..end];
        match group {
            wasmparser::Imports::Single(_, import) if (import.module, import.name) == PROC_EXIT => {
                found = true;
                // The entry is the two names, then its type: keep the type.
                let names = import_names_len(raw)?;
                push_name(&mut entries, EXIT_WITH_CODE.0);
                push_name(&mut entries, EXIT_WITH_CODE.1);
                entries.extend_from_slice(&raw[names..]);
            }
            _ => entries.extend_from_slice(raw),
        }
    }
    if !found {
        return Ok(module.to_vec());
    }
    let mut body = Vec::new();
    push_leb(&mut body, count.into());
    body.extend_from_slice(&entries);
    let mut out = module[..header].to_vec();
    out.push(2);
    push_leb(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    out.extend_from_slice(&module[section.end..]);
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve.push_str("corral-preview1-exit.wit", EXIT_WIT)?;
    let world = resolve.select_world(&[package], Some("corral-preview1-exit"))?;
    wit_component::embed_component_metadata(
        &mut out,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )?;
    Ok(out)
}

/// The length of an import entry's module and field names (each a LEB128
/// length and its bytes), where its type begins.
fn import_names_len(raw: &[u8]) -> anyhow::Result<usize> {
    let mut reader = wasmparser::BinaryReader::new(raw, 0);
    reader.read_string()?;
    reader.read_string()?;
    Ok(reader.original_position())
}

fn push_name(out: &mut Vec<u8>, name: &str) {
    push_leb(out, name.len() as u64);
    out.extend_from_slice(name.as_bytes());
}

fn push_leb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Compiles component bytes, turning the engine's error into a `LoadError`.
pub(crate) fn compile(engine: &Engine, path: &Path, bytes: &[u8]) -> Result<Component, LoadError> {
    Component::from_binary(engine, bytes).map_err(|e| LoadError::Invalid {
        path: path.to_owned(),
        reason: format!("{e:#}"),
    })
}

/// Whether the host provides the interface named by a component import such
/// as `wasi:cli/stdout@0.2.3`: any 0.2.x version of a WASI interface, any 0.1.x
/// of a Corral one, as the linker's semver matching accepts.
fn is_provided(import: &str) -> bool {
    let (name, version) = import.split_once('@').unwrap_or((import, ""));
    let Some((package, interface)) = name.split_once('/') else {
        return false;
    };
    let compatible = match package.split(':').next() {
        Some("wasi") => version.starts_with("0.2."),
        Some("corral") => version.starts_with("0.1."),
        _ => false,
    };
    compatible
        && crate::bindings::PROVIDED_INTERFACES
            .iter()
            .any(|(pkg, ifaces)| *pkg == package && ifaces.contains(&interface))
}

/// Imports of `component` that this host cannot satisfy, by name.
pub(crate) fn missing_imports(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .filter(|name| !is_provided(name))
        .collect()
}

/// The names of a component's exports, with the kind of each.
pub(crate) fn describe_items<'a>(
    items: impl Iterator<Item = (&'a str, ComponentExtern<'a>)>,
) -> Vec<(String, &'static str)> {
    items
        .map(|(name, item)| {
            let kind = match item.ty {
                ComponentItem::ComponentFunc(_) => "function",
                ComponentItem::CoreFunc(_) => "core function",
                ComponentItem::Module(_) => "core module",
                ComponentItem::Component(_) => "component",
                ComponentItem::ComponentInstance(_) => "instance",
                ComponentItem::Type(_) => "type",
                ComponentItem::Resource(_) => "resource",
            };
            (name.to_string(), kind)
        })
        .collect()
}

/// The export a command worker must have: `wasi:cli/run` at a 0.2.x version.
pub(crate) fn find_run_export(engine: &Engine, component: &Component) -> Option<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name)
        .find(|name| name.starts_with("wasi:cli/run@0.2."))
        .map(str::to_string)
}

/// The pool-task exports, if the component has them: `handle` of
/// `corral:worker/task@0.1.x`, and `handle-batch` of `task-batch` if present.
pub(crate) fn find_task_exports(
    engine: &Engine,
    component: &Component,
) -> Option<super::TaskExports> {
    let interface = |prefix: &str| {
        component
            .component_type()
            .exports(engine)
            .map(|(name, _)| name)
            .find(|name| name.starts_with(prefix))
            .and_then(|name| component.get_export_index(None, name))
    };
    let task = interface("corral:worker/task@0.1.")?;
    let handle = component.get_export_index(Some(&task), "handle")?;
    let handle_batch = interface("corral:worker/task-batch@0.1.")
        .and_then(|batch| component.get_export_index(Some(&batch), "handle-batch"));
    Some(super::TaskExports {
        handle,
        handle_batch,
    })
}
