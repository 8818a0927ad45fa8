//! The module cache: compiled once per process, precompiled artifacts on disk.
//!
//! Keyed by the SHA-256 digest of the module's bytes. Artifacts on disk are named by
//! digest *and* the engine's compatibility hash, so a wasmtime upgrade or a changed
//! engine configuration simply misses and recompiles. Artifacts are written only by
//! this host, only for modules that passed every check (atomically, via a temporary
//! file and a rename), and read only from its own directory; a user-supplied
//! precompiled artifact is never loaded (see `validate`). Both levels are bounded in
//! bytes and drop the least recently used first.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use super::Prepared;
use super::validate::ModuleKind;

/// A module compiled for this engine.
pub(crate) enum Compiled {
    Component(Component),
    Command(Module),
}

impl Compiled {
    /// Bytes of compiled code and data this module keeps mapped.
    pub(crate) fn image_bytes(&self) -> u64 {
        let r = match self {
            Compiled::Component(c) => c.image_range(),
            Compiled::Command(m) => m.image_range(),
        };
        (r.end as usize).saturating_sub(r.start as usize) as u64
    }

    pub(crate) fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        match self {
            Compiled::Component(c) => c.serialize(),
            Compiled::Command(m) => m.serialize(),
        }
    }
}

/// How modules were loaded since the runtime started: found compiled in memory, loaded
/// from an artifact, or compiled. The process's `/metrics` counts the same, as
/// `wasmq_module_loads_total{from="memory|artifact|compile"}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Loads answered from memory.
    pub memory_hits: u64,
    /// Compiles run (in process or in a compile process), refused ones included.
    pub compiles: u64,
    /// Modules loaded from an artifact on disk instead of compiled.
    pub artifact_loads: u64,
}

/// Compiled modules by digest, bounded in count and bytes (least recently used goes
/// first), plus the optional on-disk artifact directory, bounded in bytes.
pub struct ModuleCache {
    entries: Mutex<Lru>,
    dir: Option<PathBuf>,
    dir_max_bytes: u64,
    engine_tag: String,
    memory_hits: AtomicU64,
    compiles: AtomicU64,
    artifact_loads: AtomicU64,
}

struct Lru {
    map: HashMap<String, Entry>,
    clock: u64,
    capacity: usize,
    max_bytes: u64,
    bytes: u64,
}

struct Entry {
    prepared: Prepared,
    used: u64,
    size: u64,
}

/// Bounds of the two cache levels.
pub(crate) struct CacheBounds {
    pub(crate) dir: Option<PathBuf>,
    pub(crate) dir_max_bytes: u64,
    pub(crate) count: usize,
    pub(crate) max_bytes: u64,
}

impl ModuleCache {
    pub(crate) fn new(bounds: CacheBounds, engine: &Engine) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self {
            entries: Mutex::new(Lru {
                map: HashMap::new(),
                clock: 0,
                capacity: bounds.count.max(1),
                max_bytes: bounds.max_bytes,
                bytes: 0,
            }),
            dir: bounds.dir,
            dir_max_bytes: bounds.dir_max_bytes,
            engine_tag: format!("{:016x}", h.finish()),
            memory_hits: AtomicU64::new(0),
            compiles: AtomicU64::new(0),
            artifact_loads: AtomicU64::new(0),
        }
    }

    /// The module compiled for `digest`, if kept (a hit, counted), marked recently used.
    pub(crate) fn get(&self, digest: &str) -> Option<Prepared> {
        let mut lru = self.entries.lock().expect("cache lock");
        lru.clock += 1;
        let now = lru.clock;
        let hit = lru.map.get_mut(digest).map(|e| {
            e.used = now;
            e.prepared.clone()
        });
        drop(lru);
        if hit.is_some() {
            count(&self.memory_hits, "memory");
        }
        hit
    }

    /// Keeps `prepared` (of `size` bytes), dropping the least recently used modules
    /// until both bounds hold. A module larger than the whole byte bound is not kept.
    pub(crate) fn insert(&self, digest: String, prepared: Prepared, size: u64) {
        let mut guard = self.entries.lock().expect("cache lock");
        let lru = &mut *guard;
        if let Some(old) = lru.map.remove(&digest) {
            lru.bytes -= old.size;
        }
        if size > lru.max_bytes {
            return;
        }
        while lru.map.len() >= lru.capacity || lru.bytes + size > lru.max_bytes {
            let Some(oldest) = lru
                .map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = lru.map.remove(&oldest) {
                lru.bytes -= e.size;
            }
        }
        lru.clock += 1;
        let used = lru.clock;
        lru.bytes += size;
        lru.map.insert(
            digest,
            Entry {
                prepared,
                used,
                size,
            },
        );
    }

    pub(crate) fn remove(&self, digest: &str) {
        let mut lru = self.entries.lock().expect("cache lock");
        if let Some(e) = lru.map.remove(digest) {
            lru.bytes -= e.size;
        }
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

    /// Bytes of compiled code held in memory.
    pub fn bytes(&self) -> u64 {
        self.entries.lock().expect("cache lock").bytes
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            compiles: self.compiles.load(Ordering::Relaxed),
            artifact_loads: self.artifact_loads.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_compile(&self) {
        count(&self.compiles, "compile");
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

    /// Whether an artifact directory is configured (so artifacts are worth producing).
    pub(crate) fn has_dir(&self) -> bool {
        self.dir.is_some()
    }

    /// Loads the artifact this host wrote for `digest`, if there is a usable one, and
    /// marks it recently used. A stale or damaged one is removed and `None` returned.
    pub(crate) fn load_artifact(
        &self,
        engine: &Engine,
        digest: &str,
        kind: ModuleKind,
    ) -> Option<Compiled> {
        let path = self.artifact_path(digest, kind)?;
        // Read into memory rather than mmap: a file truncated under a live mapping (by an
        // operator, or a disk filling up) would crash the process with SIGBUS.
        let bytes = std::fs::read(&path).ok()?;
        match deserialize(engine, kind, &bytes) {
            Ok(c) => {
                count(&self.artifact_loads, "artifact");
                // The modification time is the recency the directory bound evicts by.
                let _ = std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(SystemTime::now()));
                Some(c)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding unusable compiled module");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Writes the artifact of an accepted module, then deletes the least recently used
    /// artifacts until the directory is within its byte bound. Failures are logged: the
    /// cache is an optimisation.
    pub(crate) fn store_artifact(&self, digest: &str, kind: ModuleKind, artifact: &[u8]) {
        let Some(path) = self.artifact_path(digest, kind) else {
            return;
        };
        if let Err(e) = write_atomically(&path, artifact) {
            tracing::warn!(path = %path.display(), error = %e, "could not cache compiled module");
            return;
        }
        if let Some(dir) = &self.dir {
            evict_artifacts(dir, self.dir_max_bytes, &path);
        }
    }
}

/// Deletes the least recently modified `.cwasm` files of `dir` until the rest fit in
/// `max_bytes`, never `keep` (the artifact just written).
/// One load answered `from` memory, an artifact or a compile: here and in `/metrics`.
fn count(counter: &AtomicU64, from: &'static str) {
    counter.fetch_add(1, Ordering::Relaxed);
    crate::metrics::inc("wasmq_module_loads_total", &[("from", from)], 1);
}

fn evict_artifacts(dir: &Path, max_bytes: u64, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
    files.sort();
    for (_, len, path) in files {
        if total <= max_bytes {
            break;
        }
        if path == keep {
            continue;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
}

/// Loads an artifact produced by this host's own compiler (its artifact directory or
/// its own compile process).
#[allow(unsafe_code)]
pub(crate) fn deserialize(
    engine: &Engine,
    kind: ModuleKind,
    bytes: &[u8],
) -> wasmtime::Result<Compiled> {
    // SAFETY: `deserialize` trusts the bytes to be an artifact produced by a compatible
    // wasmtime. They come either from the host's own artifact directory, written by
    // `store_artifact` (temporary file + rename, so never half-written) and named by the
    // engine's compatibility hash, or from the stdout of a compile process running this
    // very binary; wasmtime additionally checks the header against this engine. Users
    // can never supply them: uploads are raw Wasm, and precompiled uploads are refused
    // in `validate::detect_kind`.
    unsafe {
        match kind {
            ModuleKind::Component => Component::deserialize(engine, bytes).map(Compiled::Component),
            ModuleKind::Command => Module::deserialize(engine, bytes).map(Compiled::Command),
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().expect("artifact path has a parent");
    std::fs::create_dir_all(dir)?;
    let n = N.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".tmp-{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
