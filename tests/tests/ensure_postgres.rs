//! `.ci/ensure-postgres` on throwaway machine layouts: each branch (already running, a
//! cluster on another port, a stopped or running one, nothing installed, a broken
//! install) does what it says and prints a line, and no failure is silent.
//!
//! The script runs with a `PATH` of shims standing in for Debian's `pg_isready`,
//! `pg_lsclusters`, `pg_ctlcluster` and `apt-get` (plus links to the few real tools it
//! uses), and `WASMQ_PG_CONF_ROOT` pointing at a temp dir; it never sees the real cluster.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The shims share state under `$FAKE`: `clusters` (lines `VERSION CLUSTER STATUS`),
/// `running/V-C` (the port a started cluster listens on, read from its config at start,
/// as a real server does), `actions` (every `pg_ctlcluster` and `apt-get` call).
const PG_LSCLUSTERS: &str = r#"#!/usr/bin/env bash
[ -s "$FAKE/clusters" ] || exit 0
while read -r v c status; do
    port=$(sed -n 's/^port = \([0-9]*\).*/\1/p' "$WASMQ_PG_CONF_ROOT/$v/$c/postgresql.conf")
    [ "$1" = -h ] || echo "Ver Cluster Port Status Owner Data directory Log file"
    echo "$v $c $port $status postgres /var/lib/postgresql/$v/$c /var/log/postgresql/postgresql-$v-$c.log"
done <"$FAKE/clusters"
"#;

const PG_ISREADY: &str = r#"#!/usr/bin/env bash
port=5432
while [ $# -gt 0 ]; do
    case $1 in -p) port=$2; shift 2 ;; *) shift ;; esac
done
[ -z "${FAKE_NEVER_READY:-}" ] && cat "$FAKE"/running/* 2>/dev/null | grep -qx "$port"
"#;

const PG_CTLCLUSTER: &str = r#"#!/usr/bin/env bash
[ "$1" = --skip-systemctl-redirect ] && shift
v=$1 c=$2 action=$3
echo "pg_ctlcluster $v $c $action" >>"$FAKE/actions"
grep -q "^$v $c " "$FAKE/clusters" || { echo "Error: no cluster $v/$c" >&2; exit 1; }
port=$(sed -n 's/^port = \([0-9]*\).*/\1/p' "$WASMQ_PG_CONF_ROOT/$v/$c/postgresql.conf")
set_status() { sed -i "s/^$v $c .*/$v $c $1/" "$FAKE/clusters"; }
case $action in
    start | restart) echo "$port" >"$FAKE/running/$v-$c"; set_status online ;;
    stop) rm -f "$FAKE/running/$v-$c"; set_status down ;;
    reload) ;; # a reload keeps the port the server is listening on
    *) echo "unknown action $action" >&2; exit 1 ;;
esac
"#;

/// Installs the `pg_*` shims and, unless `FAKE_APT=empty`, a stopped cluster 16/main on
/// 5432 with Debian's default configuration; `FAKE_APT=fail` fails like a broken mirror.
const APT_GET: &str = r#"#!/usr/bin/env bash
echo "apt-get $*" >>"$FAKE/actions"
[ "${FAKE_APT:-}" = fail ] && { echo "E: Unable to fetch some archives" >&2; exit 100; }
[ "$1" = install ] || exit 0
cp "$FAKE"/pkg/* "$FAKE/bin/"
[ "${FAKE_APT:-}" = empty ] && exit 0
mkdir -p "$WASMQ_PG_CONF_ROOT/16/main"
printf 'local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n' >"$WASMQ_PG_CONF_ROOT/16/main/pg_hba.conf"
printf "listen_addresses = 'localhost'\nport = 5432\t\t\t\t# (change requires restart)\n" >"$WASMQ_PG_CONF_ROOT/16/main/postgresql.conf"
echo "16 main down" >>"$FAKE/clusters"
"#;

/// Real tools the script and shims use; nothing else is on their `PATH`.
const TOOLS: &[&str] = &[
    "bash", "env", "awk", "sed", "grep", "mktemp", "cat", "rm", "seq", "sleep", "tail", "cp",
    "mkdir", "printf", "echo",
];

/// A fake machine: a temp dir with the shims, the tool links and the config root.
struct Machine {
    dir: tempfile::TempDir,
}

/// What a run of the script left.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    actions: String,
}

impl Machine {
    /// A machine where PostgreSQL is not installed at all.
    fn bare() -> Machine {
        let dir = tempfile::tempdir().expect("temp dir");
        let m = Machine { dir };
        for sub in ["bin", "pkg", "tools", "running", "conf"] {
            fs::create_dir_all(m.path(sub)).unwrap();
        }
        fs::write(m.path("clusters"), "").unwrap();
        fs::write(m.path("actions"), "").unwrap();
        for (name, text) in [
            ("pg_lsclusters", PG_LSCLUSTERS),
            ("pg_isready", PG_ISREADY),
            ("pg_ctlcluster", PG_CTLCLUSTER),
        ] {
            write_exe(&m.path("pkg").join(name), text);
        }
        write_exe(&m.path("bin/apt-get"), APT_GET);
        for tool in TOOLS {
            let real = which(tool);
            symlink(&real, m.path("tools").join(tool)).unwrap();
        }
        m
    }

    /// A machine with postgresql-common and a cluster `version/main` configured for
    /// `port`, running or not.
    fn with_cluster(version: &str, port: u16, online: bool) -> Machine {
        let m = Machine::bare();
        for name in ["pg_lsclusters", "pg_isready", "pg_ctlcluster"] {
            fs::copy(m.path("pkg").join(name), m.path("bin").join(name)).unwrap();
        }
        let conf = m.path("conf").join(version).join("main");
        fs::create_dir_all(&conf).unwrap();
        fs::write(
            conf.join("pg_hba.conf"),
            "local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        fs::write(
            conf.join("postgresql.conf"),
            format!("listen_addresses = 'localhost'\nport = {port}\t\t\t\t# (change requires restart)\nmax_connections = 100\n"),
        )
        .unwrap();
        let status = if online { "online" } else { "down" };
        fs::write(m.path("clusters"), format!("{version} main {status}\n")).unwrap();
        if online {
            fs::write(
                m.path("running").join(format!("{version}-main")),
                format!("{port}\n"),
            )
            .unwrap();
        }
        m
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn conf(&self, version: &str, file: &str) -> String {
        fs::read_to_string(self.path("conf").join(version).join("main").join(file)).unwrap()
    }

    /// Runs `.ci/ensure-postgres` on this machine, with `env` added.
    fn run(&self, env: &[(&str, &str)]) -> Run {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/ensure-postgres");
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            self.path("tools").display()
        );
        let out = Command::new(self.path("tools/bash"))
            .arg(&script)
            .env_clear()
            .env("PATH", path)
            .env("FAKE", self.dir.path())
            .env("WASMQ_PG_CONF_ROOT", self.path("conf"))
            .env("WASMQ_PG_WAIT_SECS", "3")
            .envs(env.iter().copied())
            .output()
            .expect("run .ci/ensure-postgres");
        let run = Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            actions: fs::read_to_string(self.path("actions")).unwrap(),
        };
        // Never silent: whatever happened, the last line says so.
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(
            all.lines().any(|l| l.starts_with("ensure-postgres: ")),
            "the script said nothing (exit {:?}); stdout: {:?}, stderr: {:?}",
            run.code,
            run.stdout,
            run.stderr
        );
        run
    }

    /// Whether the fake server accepts connections on 5432 now.
    fn ready(&self) -> bool {
        fs::read_dir(self.path("running"))
            .unwrap()
            .flatten()
            .any(|e| fs::read_to_string(e.path()).unwrap().trim() == "5432")
    }
}

impl Run {
    fn assert_ok(&self) {
        assert_eq!(
            self.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        assert!(
            self.stdout
                .contains("accepting connections at 127.0.0.1:5432"),
            "stdout: {}",
            self.stdout
        );
    }

    fn assert_failed_saying(&self, what: &str) {
        assert_ne!(self.code, Some(0), "stdout: {}", self.stdout);
        assert!(
            self.stderr.contains(what),
            "stderr should say {what:?}; stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
    }
}

fn write_exe(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn which(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH");
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{tool}` is not on PATH"))
}

#[test]
fn a_server_already_on_5432_is_left_alone() {
    let m = Machine::with_cluster("16", 5432, true);
    let hba = m.conf("16", "pg_hba.conf");
    let run = m.run(&[]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(
        run.stdout.contains("already accepting connections"),
        "{}",
        run.stdout
    );
    assert_eq!(run.actions, "", "nothing installed, started or reloaded");
    assert_eq!(m.conf("16", "pg_hba.conf"), hba, "config untouched");
}

#[test]
fn a_stopped_cluster_on_another_port_is_moved_to_5432_and_started() {
    let m = Machine::with_cluster("15", 5433, false);
    let run = m.run(&[]);
    run.assert_ok();
    assert!(run.stdout.contains("setting port = 5432"), "{}", run.stdout);
    assert!(
        run.stdout.contains("starting cluster 15/main"),
        "{}",
        run.stdout
    );
    assert_eq!(run.actions, "pg_ctlcluster 15 main start\n");
    let conf = m.conf("15", "postgresql.conf");
    assert!(conf.contains("\nport = 5432\n"), "{conf}");
    assert!(!conf.contains("5433"), "{conf}");
    assert!(
        conf.contains("max_connections = 100"),
        "the rest is kept: {conf}"
    );
    let hba = m.conf("15", "pg_hba.conf");
    assert!(
        hba.starts_with("# wasmq: trust loopback\nhost all all 127.0.0.1/32 trust\n"),
        "{hba}"
    );
    assert!(
        hba.contains("local all postgres peer"),
        "the rest is kept: {hba}"
    );
    assert!(m.ready());

    // Idempotent: a second run finds it running and changes nothing.
    fs::write(m.path("actions"), "").unwrap();
    let again = m.run(&[]);
    assert!(
        again.stdout.contains("already accepting connections"),
        "{}",
        again.stdout
    );
    assert_eq!(again.actions, "");
    assert_eq!(m.conf("15", "pg_hba.conf"), hba);
}

#[test]
fn a_running_cluster_on_another_port_is_restarted_not_reloaded() {
    let m = Machine::with_cluster("15", 5433, true);
    let run = m.run(&[]);
    run.assert_ok();
    assert_eq!(run.actions, "pg_ctlcluster 15 main restart\n");
    assert!(m.ready(), "a reload would have kept it on 5433");
}

#[test]
fn a_stopped_cluster_on_5432_is_started() {
    let m = Machine::with_cluster("16", 5432, false);
    let run = m.run(&[]);
    run.assert_ok();
    assert!(!run.stdout.contains("setting port"), "{}", run.stdout);
    assert_eq!(run.actions, "pg_ctlcluster 16 main start\n");
}

#[test]
fn a_machine_without_postgresql_gets_it_installed_and_started() {
    let m = Machine::bare();
    let run = m.run(&[]);
    run.assert_ok();
    assert!(
        run.stdout
            .contains("no PostgreSQL cluster found; installing"),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.actions,
        "apt-get update -qq\napt-get install -y -qq postgresql\npg_ctlcluster 16 main start\n"
    );
    assert!(
        m.conf("16", "pg_hba.conf")
            .starts_with("# wasmq: trust loopback\n")
    );
}

#[test]
fn an_install_that_leaves_no_cluster_fails_saying_so() {
    let m = Machine::bare();
    let run = m.run(&[("FAKE_APT", "empty")]);
    run.assert_failed_saying("no cluster even after installing postgresql");
}

#[test]
fn a_failing_apt_get_fails_naming_the_command() {
    let m = Machine::bare();
    let run = m.run(&[("FAKE_APT", "fail")]);
    run.assert_failed_saying("failed: `apt-get update -qq` exited with 100");
}

#[test]
fn a_server_that_never_answers_fails_after_the_wait() {
    let m = Machine::with_cluster("16", 5432, false);
    let run = m.run(&[("FAKE_NEVER_READY", "1"), ("WASMQ_PG_WAIT_SECS", "1")]);
    run.assert_failed_saying("did not become ready at 127.0.0.1:5432 within 1s");
    assert_eq!(run.actions, "pg_ctlcluster 16 main start\n");
}
