//! The module cache: compiled once per process, precompiled artifacts on disk.
//!
//! Keyed by the SHA-256 digest of the module's bytes. Artifacts on disk are named by
//! digest *and* the engine's compatibility hash, so a wasmtime upgrade or a changed
//! engine configuration simply misses and recompiles. Artifacts are written only by
//! this host (atomically, via a temporary file and a rename) and read only from its own
//! directory; a user-supplied precompiled artifact is never loaded (see `validate`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use super::validate::{self, ModuleKind, ValidateError};
use super::{Prepared, RunError};

/// A module compiled for this engine.
pub(crate) enum Compiled {
    Component(Component),
    Command(Module),
}

/// Compiled modules by digest, bounded (least recently used goes first), plus the
/// optional on-disk artifact directory.
pub struct ModuleCache {
    entries: Mutex<Lru>,
    dir: Option<PathBuf>,
    engine_tag: String,
}

struct Lru {
    map: HashMap<String, (Prepared, u64)>,
    clock: u64,
    capacity: usize,
}

impl ModuleCache {
    pub(crate) fn new(dir: Option<PathBuf>, capacity: usize, engine: &Engine) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self {
            entries: Mutex::new(Lru {
                map: HashMap::new(),
                clock: 0,
                capacity: capacity.max(1),
            }),
            dir,
            engine_tag: format!("{:016x}", h.finish()),
        }
    }

    pub(crate) fn get(&self, digest: &str) -> Option<Prepared> {
        let mut lru = self.entries.lock().expect("cache lock");
        lru.clock += 1;
        let now = lru.clock;
        lru.map.get_mut(digest).map(|(p, used)| {
            *used = now;
            p.clone()
        })
    }

    pub(crate) fn insert(&self, digest: String, prepared: Prepared) {
        let mut lru = self.entries.lock().expect("cache lock");
        lru.clock += 1;
        let now = lru.clock;
        if lru.map.len() >= lru.capacity && !lru.map.contains_key(&digest) {
            let oldest = lru
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                lru.map.remove(&k);
            }
        }
        lru.map.insert(digest, (prepared, now));
    }

    pub(crate) fn remove(&self, digest: &str) {
        self.entries.lock().expect("cache lock").map.remove(digest);
    }

    pub(crate) fn remove_artifacts(&self, digest: &str) {
        for kind in [ModuleKind::Component, ModuleKind::Command] {
            if let Some(p) = self.artifact_path(digest, kind) {
                let _ = std::fs::remove_file(p);
            }
        }
    }

    /// Modules held in memory.
    pub fn len(&self) -> usize {
        self.entries.lock().expect("cache lock").map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn artifact_path(&self, digest: &str, kind: ModuleKind) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| {
            d.join(format!(
                "{digest}-{}-{}.cwasm",
                kind.as_str(),
                self.engine_tag
            ))
        })
    }

    /// Loads the precompiled artifact if there is a usable one, else compiles (and
    /// stores the artifact). Imports are checked either way.
    pub(crate) fn compile_or_load(
        &self,
        engine: &Engine,
        digest: &str,
        kind: ModuleKind,
        bytes: &[u8],
    ) -> Result<Compiled, RunError> {
        let path = self.artifact_path(digest, kind);
        let compiled = match path.as_deref().and_then(|p| load_artifact(engine, kind, p)) {
            Some(c) => c,
            None => {
                let c = compile(engine, kind, bytes)?;
                if let Some(p) = &path
                    && let Err(e) = store_artifact(&c, p)
                {
                    tracing::warn!(path = %p.display(), error = %e, "could not cache compiled module");
                }
                c
            }
        };
        match &compiled {
            Compiled::Component(c) => validate::check_component_imports(engine, c)?,
            Compiled::Command(m) => validate::check_command_module(m)?,
        }
        Ok(compiled)
    }
}

fn compile(engine: &Engine, kind: ModuleKind, bytes: &[u8]) -> Result<Compiled, ValidateError> {
    let err = |e: wasmtime::Error| ValidateError::Compile(format!("{e:#}"));
    Ok(match kind {
        ModuleKind::Component => {
            Compiled::Component(Component::from_binary(engine, bytes).map_err(err)?)
        }
        ModuleKind::Command => Compiled::Command(Module::from_binary(engine, bytes).map_err(err)?),
    })
}

/// Loads an artifact this host wrote. A stale or damaged one is removed and `None`
/// returned, so the caller recompiles.
#[allow(unsafe_code)]
fn load_artifact(engine: &Engine, kind: ModuleKind, path: &Path) -> Option<Compiled> {
    // Read into memory rather than mmap: a file truncated under a live mapping (by an
    // operator, or a disk filling up) would crash the process with SIGBUS.
    let bytes = std::fs::read(path).ok()?;
    // SAFETY: `deserialize` trusts the bytes to be an artifact produced by a compatible
    // wasmtime. The file lives in the host's own artifact directory, was written by
    // `store_artifact` (temporary file + rename, so never half-written), and is named by
    // the engine's compatibility hash; wasmtime additionally checks the header against
    // this engine. Users can never place files there: uploads are raw Wasm, and
    // precompiled uploads are refused in `validate::detect_kind`.
    let loaded = unsafe {
        match kind {
            ModuleKind::Component => {
                Component::deserialize(engine, &bytes).map(Compiled::Component)
            }
            ModuleKind::Command => Module::deserialize(engine, &bytes).map(Compiled::Command),
        }
    };
    match loaded {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "discarding unusable compiled module");
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

fn store_artifact(compiled: &Compiled, path: &Path) -> anyhow::Result<()> {
    let bytes = match compiled {
        Compiled::Component(c) => c.serialize()?,
        Compiled::Command(m) => m.serialize()?,
    };
    let dir = path.parent().expect("artifact path has a parent");
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile_in(dir)?;
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn tempfile_in(dir: &Path) -> std::io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    Ok(dir.join(format!(".tmp-{}-{n}", std::process::id())))
}
