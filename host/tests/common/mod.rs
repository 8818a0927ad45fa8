//! Running the real `wasmq` binary from tests: a clean environment, free loopback ports,
//! a child whose log lines are collected as they come, SIGTERM, and waits with deadlines.
//!
//! Each test binary uses only some of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_wasmq");

/// `wasmq ARGS` with no `WASMQ_*` variable of the caller's shell and no `wasmq.toml`, so
/// only what the test sets reaches it.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("WASMQ_") || var == "RUST_LOG" {
            cmd.env_remove(var);
        }
    }
    cmd.env("WASMQ_CONFIG", "/dev/null").env("NO_COLOR", "1");
    cmd
}

/// Runs `wasmq ARGS` with `env` to the end.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(args);
    cmd.envs(env.iter().copied());
    cmd.output().expect("run wasmq")
}

/// Stdout or stderr as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A loopback address nobody listens on right now.
pub fn free_listen() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").to_string()
}

/// A running `wasmq` process whose stdout and stderr lines are collected. Killed on drop
/// if still running, so a failed test leaves no process behind.
pub struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `cmd` with both outputs piped and read line by line.
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wasmq");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for pipe in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err),
        ] {
            let lines = lines.clone();
            // Drains to the end, so the process never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Proc { child, lines }
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until a line contains `needle`, and returns it.
    pub async fn line_containing(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "wasmq exited ({status}) before logging `{needle}`:\n{}",
                    self.lines().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "no line with `{needle}` within {within:?}:\n{}",
                self.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
    }

    /// Sends SIGKILL: the process ends at once, with nothing cleaned up.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap the killed process");
    }

    /// Waits for the process to exit, and for its last lines to be read.
    pub async fn exited(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The readers end at EOF; give them the moment they need to finish.
                let settle = Instant::now() + Duration::from_secs(2);
                while Arc::strong_count(&self.lines) > 1 && Instant::now() < settle {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "wasmq did not exit within {within:?}:\n{}",
                self.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `wasmq worker` on `url` with `extra` flags, once it says it has started.
pub async fn worker(url: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["worker", "--database-url", url];
    args.extend(extra);
    let mut proc = Proc::spawn(command(&args));
    proc.line_containing("worker starting", Duration::from_secs(60))
        .await;
    proc
}

/// Polls `GET {base}/readyz` until it answers `status`, failing after `within`. A check
/// may take as long as the store's connection timeout to fail, so each waits up to 20 s.
pub async fn readyz_is(base: &str, status: u16, within: Duration) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let deadline = Instant::now() + within;
    let mut last: String;
    loop {
        match http.get(format!("{base}/readyz")).send().await {
            Ok(r) if r.status().as_u16() == status => return,
            Ok(r) => last = format!("{}", r.status()),
            Err(e) => last = e.to_string(),
        }
        assert!(
            Instant::now() < deadline,
            "/readyz did not answer {status} within {within:?} (last: {last})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
