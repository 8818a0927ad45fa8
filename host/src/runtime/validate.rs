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
    #[error("module took longer than {0:?} to compile")]
    CompileTimeout(Duration),
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
    fn allows_only_wasmq_and_wasi() {
        assert!(component_import_allowed("wasmq:task/host@0.1.0"));
        assert!(component_import_allowed("wasi:cli/stdout@0.2.3"));
        assert!(!component_import_allowed("acme:evil/backdoor"));
    }
}
