//! Builds every guest (examples and test fixtures) for wasm before the tests compile, and
//! writes their paths to `$OUT_DIR/guests.rs`, so tests never run against a stale `.wasm`.
//!
//! The nested cargo uses its own target directory (`target/guests`): sharing the outer
//! build's would deadlock on its lock.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Component guests, built for `wasm32-wasip2`: (constant, package, file stem).
const COMPONENTS: &[(&str, &str, &str)] = &[
    ("ECHO", "echo", "echo"),
    ("WORDCOUNT", "wordcount", "wordcount"),
    ("THUMBNAIL", "thumbnail", "thumbnail"),
    ("RENDER_EMAIL", "render-email", "render_email"),
    ("WEBHOOK", "webhook", "webhook"),
    ("HOSTILE", "hostile-fixture", "hostile_fixture"),
    ("FANOUT", "fanout", "fanout"),
    ("V1_TASK", "v1-fixture", "v1_fixture"),
];

/// Core WASI command guests, built for `wasm32-wasip1`: (constant, package, file stem).
const COMMANDS: &[(&str, &str, &str)] = &[("WASI_COMMAND", "wasi-command", "wasi-command")];

const PROFILE: &str = "guest";

/// Variables cargo sets for build scripts that would change what a nested build does.
const STRIP_VARS: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "DEBUG",
    "OPT_LEVEL",
    "PROFILE",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "NUM_JOBS",
    "RUSTDOCFLAGS",
    "CARGO_LLVM_COV",
];
const STRIP_PREFIXES: &[&str] = &["CARGO_PROFILE_", "CARGO_CFG_", "CARGO_FEATURE_"];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("tests/ lives inside the workspace root")
        .to_path_buf();
    let target_dir = root.join("target").join("guests");

    for dir in ["guest-sdk", "wit", "examples", "tests/fixtures"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.toml").display()
    );
    println!("cargo:rerun-if-changed=build.rs");

    add_targets();
    build("wasm32-wasip2", COMPONENTS, &root, &target_dir);
    build("wasm32-wasip1", COMMANDS, &root, &target_dir);

    let mut out = String::new();
    for (target, guests) in [("wasm32-wasip2", COMPONENTS), ("wasm32-wasip1", COMMANDS)] {
        for (name, package, stem) in guests {
            let path = target_dir
                .join(target)
                .join(PROFILE)
                .join(format!("{stem}.wasm"));
            assert!(
                path.is_file(),
                "guest `{package}` was built but {} does not exist",
                path.display()
            );
            writeln!(out, "/// `{package}`, built for `{target}`.").unwrap();
            writeln!(
                out,
                "pub const {name}: &str = {:?};",
                path.display().to_string()
            )
            .unwrap();
        }
    }
    for (name, path) in interpreted(&root, &target_dir) {
        writeln!(
            out,
            "/// `{name}`, a Python or JavaScript guest (componentized)."
        )
        .unwrap();
        writeln!(out, "pub const {name}: &str = {path:?};").unwrap();
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out_dir.join("guests.rs"), out).expect("write $OUT_DIR/guests.rs");
}

/// The Python and JavaScript guests, built by `tests/interpreted-guests.sh` (which makes
/// its toolchains on first use and rebuilds a guest only when its sources change).
fn interpreted(root: &Path, target_dir: &Path) -> Vec<(String, String)> {
    let script = root.join("tests").join("interpreted-guests.sh");
    println!("cargo:rerun-if-changed={}", script.display());
    let out = Command::new("bash")
        .arg(&script)
        .arg(target_dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        panic!(
            "building the Python and JavaScript guests failed (see above); reproduce with: bash {} {}",
            script.display(),
            target_dir.display()
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, path)| (name.to_owned(), path.to_owned()))
        .collect()
}

/// Installs the wasm targets when rustup is there; without rustup they must already exist.
fn add_targets() {
    let result = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2", "wasm32-wasip1"])
        .output();
    match result {
        Ok(out) if out.status.success() => {}
        Ok(out) => println!(
            "cargo:warning=`rustup target add wasm32-wasip2 wasm32-wasip1` failed; building anyway: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(_) => {} // No rustup: the targets must be installed some other way.
    }
}

fn build(target: &str, guests: &[(&str, &str, &str)], root: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .args(["--profile", PROFILE, "--target", target])
        .arg("--target-dir")
        .arg(target_dir);
    for (_, package, _) in guests {
        cmd.args(["-p", package]);
    }
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if STRIP_VARS.contains(&key) || STRIP_PREFIXES.iter().any(|p| key.starts_with(p)) {
            cmd.env_remove(key);
        }
    }

    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the wasm guests: {e}"));
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        panic!(
            "building the guests for {target} failed (see the cargo output above); \
             reproduce with: cargo build --profile {PROFILE} --target {target} {} --target-dir {}",
            guests
                .iter()
                .map(|(_, p, _)| format!("-p {p}"))
                .collect::<Vec<_>>()
                .join(" "),
            target_dir.display()
        );
    }
}
