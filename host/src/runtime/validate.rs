//! Upload-time checks: size, kind, and the imports a guest may use.

use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::types::ComponentItem;
use wasmtime::{Engine, ExternType};

/// The two kinds of module wasmq runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleKind {
    /// A component of world `wasmq:task/task`.
    Component,
    /// A core WASI command module (`wasm32-wasip1`, `_start`): stdin is the input,
    /// stdout the result, stderr the log.
    Command,
}

impl ModuleKind {
    /// `component` or `command`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ModuleKind::Component => "component",
            ModuleKind::Command => "command",
        }
    }
}

/// Why a module was refused. Messages are meant for the uploader.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// Larger than the module limit.
    #[error("module is {size} bytes; the limit is {max} bytes")]
    TooLarge {
        /// Size of the upload.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not a Wasm binary at all (or a precompiled artifact, which is never accepted).
    #[error("{0}")]
    NotWasm(String),
    /// The compiler rejected it.
    #[error("module failed to compile: {0}")]
    Compile(String),
    /// Compiling took longer than allowed.
    #[error(
        "module took longer than {0:?} to compile (the server's compile time limit); make it smaller, or raise the limit"
    )]
    CompileTimeout(Duration),
    /// Compiling needed more memory than a compile may use.
    #[error("module could not be compiled within the compile memory limit of {} MiB; make it smaller, or raise the limit", .0 >> 20)]
    CompileMemory(u64),
    /// Its linear memories start larger than the memory limit allows.
    #[error("module declares {} of initial memory; the limit is {}", mib(*declared), mib(*limit))]
    InitialMemory {
        /// Initial bytes of all the memories the module defines.
        declared: u64,
        /// The memory limit.
        limit: u64,
    },
    /// It imports something tasks may not use.
    #[error("module imports `{0}`, which tasks may not use (allowed: wasmq:task/host and WASI)")]
    DisallowedImport(String),
    /// It lacks an export the host calls.
    #[error("{0}")]
    MissingExport(String),
}

/// SHA-256 of `bytes` as lower-case hex: the module's identity everywhere.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub(crate) fn check_size(bytes: &[u8], max: usize) -> Result<(), ValidateError> {
    if bytes.len() > max {
        return Err(ValidateError::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    Ok(())
}

/// `n` bytes in MiB with thousands separators: `2,500 MiB` (rounded up, so a cap is
/// never shown smaller than what it refused).
pub(crate) fn mib(n: u64) -> String {
    let digits = n.div_ceil(1 << 20).to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out + " MiB"
}

/// Initial bytes of every linear memory the module (or any core module inside the
/// component) defines, imported ones aside. Read from the binary before compiling,
/// so an oversized module is refused in our words, not the instance allocator's.
/// Unparseable bytes count as 0: the compiler then says what is wrong with them.
pub(crate) fn initial_memory_bytes(bytes: &[u8]) -> u64 {
    let mut total = 0u64;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        if let wasmparser::Payload::MemorySection(reader) = payload {
            for memory in reader.into_iter().flatten() {
                let page = 1u64 << memory.page_size_log2.unwrap_or(16).min(16);
                total = total.saturating_add(memory.initial.saturating_mul(page));
            }
        }
    }
    total
}

/// Refuses a module whose initial memory alone is over `limit`.
pub(crate) fn check_initial_memory(declared: u64, limit: u64) -> Result<(), ValidateError> {
    if declared > limit {
        return Err(ValidateError::InitialMemory { declared, limit });
    }
    Ok(())
}

const MAGIC: &[u8; 4] = b"\0asm";

/// Tells a component from a core module by the binary header.
pub(crate) fn detect_kind(bytes: &[u8]) -> Result<ModuleKind, ValidateError> {
    if Engine::detect_precompiled(bytes).is_some() {
        return Err(ValidateError::NotWasm(
            "precompiled artifacts are not accepted; upload the .wasm file".into(),
        ));
    }
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(ValidateError::NotWasm(
            "not a WebAssembly binary (it does not start with \\0asm)".into(),
        ));
    }
    match bytes[4..8] {
        [0x01, 0x00, 0x00, 0x00] => Ok(ModuleKind::Command),
        [_, _, 0x01, 0x00] => Ok(ModuleKind::Component),
        _ => Err(ValidateError::NotWasm(
            "unknown WebAssembly binary version or layer".into(),
        )),
    }
}

/// The import namespaces a component may use: the wasmq host and WASI (which the
/// linker provides with nothing granted).
fn component_import_allowed(name: &str) -> bool {
    name.starts_with("wasmq:task/") || name.starts_with("wasi:")
}

/// Rejects a component importing anything but the allowed interfaces.
pub(crate) fn check_component_imports(
    engine: &Engine,
    component: &wasmtime::component::Component,
) -> Result<(), ValidateError> {
    for (name, item) in component.component_type().imports(engine) {
        let allowed = component_import_allowed(name)
            && matches!(item.ty, ComponentItem::ComponentInstance(_));
        if !allowed {
            return Err(ValidateError::DisallowedImport(name.to_owned()));
        }
    }
    Ok(())
}

/// Whether a component imports what its module's grants feed: outbound HTTP or config.
pub(crate) fn wants_grants(component: &wasmtime::component::Component) -> bool {
    component
        .component_type()
        .imports(component.engine())
        .any(|(name, _)| {
            name.starts_with("wasi:http/outgoing-handler") || name.starts_with("wasi:config/store")
        })
}

/// Rejects a core module that is not a WASI command.
pub(crate) fn check_command_module(module: &wasmtime::Module) -> Result<(), ValidateError> {
    for import in module.imports() {
        if import.module() != "wasi_snapshot_preview1" {
            return Err(ValidateError::DisallowedImport(format!(
                "{}::{}",
                import.module(),
                import.name()
            )));
        }
    }
    match module.get_export("_start") {
        Some(ExternType::Func(_)) => Ok(()),
        _ => Err(ValidateError::MissingExport(
            "core module has no `_start` function: build it as a WASI command (wasm32-wasip1 binary) or as a wasmq:task component".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_kinds_apart_by_header() {
        assert_eq!(
            detect_kind(b"\0asm\x01\0\0\0").unwrap(),
            ModuleKind::Command
        );
        assert_eq!(
            detect_kind(b"\0asm\x0d\0\x01\0").unwrap(),
            ModuleKind::Component
        );
        assert!(matches!(
            detect_kind(b"hello world"),
            Err(ValidateError::NotWasm(_))
        ));
    }

    #[test]
    fn sizes_read_in_mib_with_separators() {
        assert_eq!(mib(2_500 << 20), "2,500 MiB");
        assert_eq!(mib(64 << 20), "64 MiB");
        assert_eq!(mib(1), "1 MiB");
        assert_eq!(mib(1_234_567 << 20), "1,234,567 MiB");
    }

    #[test]
    fn allows_only_wasmq_and_wasi() {
        assert!(component_import_allowed("wasmq:task/host@0.1.0"));
        assert!(component_import_allowed("wasi:cli/stdout@0.2.3"));
        assert!(!component_import_allowed("acme:evil/backdoor"));
    }
}
