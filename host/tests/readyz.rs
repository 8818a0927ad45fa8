//! `/readyz` follows the store: `wasmq serve` on a PostgreSQL of its own that the test
//! stops and starts again answers 503 while it is down and 200 once it is back, and
//! serves jobs again without a restart.
//!
//! The cluster is a throwaway one in a temporary directory (initdb, pg_ctl from
//! /usr/lib/postgresql/*/bin), never the shared server of the other tests.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{Proc, command, free_listen, readyz_is, run, text};
use serde_json::{Value, json};
use wasmq_tests::guests;

/// A PostgreSQL cluster in a temporary directory, on a port of its own; stopped on drop.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Cluster {
    /// `initdb` (as the `postgres` user when running as root: PostgreSQL refuses root).
    fn init() -> Cluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_listen()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let cluster = Cluster { dir, bin, port };
        if is_root() {
            let chown = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(cluster.dir.path())
                .status()
                .unwrap();
            assert!(chown.success());
        }
        cluster.pg(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        cluster
    }

    fn data(&self) -> String {
        format!("{}/data", self.dir.path().display())
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg(&self, tool: &str, args: &[&str]) {
        let out = self.try_pg(tool, args);
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }

    fn try_pg(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let exe = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args).output().expect("run a PostgreSQL tool")
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = format!("{}/log", self.dir.path().display());
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    fn stop(&self) {
        self.pg("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Already stopped is fine; a running one must not outlive the test.
        let _ = self.try_pg(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    text(&out.stdout).trim() == "0"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_database_is_down_and_200_once_it_is_back() {
    let cluster = Cluster::init();
    cluster.start();
    let url = cluster.url();
    let created = run(&["key", "create", "--database-url", &url], &[]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let key = text(&created.stdout).trim().to_owned();

    let listen = free_listen();
    let base = format!("http://{listen}");
    let mut server = Proc::spawn(command(&[
        "serve",
        "--database-url",
        &url,
        "--listen",
        &listen,
    ]));
    readyz_is(&base, 200, Duration::from_secs(60)).await;
    let client = [("WASMQ_URL", base.as_str()), ("WASMQ_KEY", key.as_str())];
    let pushed = run(&["module", "push", "echo", guests::ECHO], &client);
    assert!(pushed.status.success(), "{}", text(&pushed.stderr));

    cluster.stop();
    readyz_is(&base, 503, Duration::from_secs(60)).await;
    let problem = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(problem.status(), 503);
    assert_eq!(
        problem.headers()["content-type"],
        "application/problem+json"
    );
    assert!(server.running(), "serve survives the outage");

    cluster.start();
    readyz_is(&base, 200, Duration::from_secs(60)).await;
    let done = run(
        &[
            "job",
            "enqueue",
            "echo",
            "--input",
            r#"{"back": true}"#,
            "--wait",
        ],
        &client,
    );
    assert!(done.status.success(), "{}", text(&done.stderr));
    let result: Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(result, json!({"back": true}));

    server.terminate();
    let status = server.exited(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}\n{}", server.lines().join("\n"));
}
