//! Tenant quotas from the binary: `wasmq key create --scope operator` mints the only key
//! that may set them, `wasmq tenant set|show` over a real server, and `wasmq serve`'s
//! default quotas from a flag, the environment and `wasmq.toml`; `wasmq queue limit`.

mod common;

use std::time::Duration;

use common::{Proc, command, free_listen, readyz_is, run, text};
use serde_json::{Value, json};
use wasmq_tests::harness::fresh_store_with_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_commands_set_and_show_quotas() {
    let (_store, url) = fresh_store_with_url().await;
    let key = |tenant: &str, scope: Option<&str>| {
        let mut args = vec!["key", "create", "--database-url", &url, "--tenant", tenant];
        args.extend(scope.map(|s| ["--scope", s]).into_iter().flatten());
        let out = run(&args, &[]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    };
    let operator = key("ops", Some("operator"));
    // No scope named: every scope but `operator`.
    let acme = key("acme", None);

    let listen = free_listen();
    let mut serve = command(&[
        "serve",
        "--database-url",
        &url,
        "--listen",
        &listen,
        "--tenant-max-schedules",
        "4",
    ]);
    serve.env("WASMQ_TENANT_MAX_RUNNING", "9");
    let file = std::env::temp_dir().join(format!("wasmq-tenants-{}.toml", std::process::id()));
    std::fs::write(&file, "tenant_max_unfinished_jobs = 50\n").unwrap();
    serve.env("WASMQ_CONFIG", &file);
    let mut server = Proc::spawn(serve);
    let base = format!("http://{listen}");
    readyz_is(&base, 200, Duration::from_secs(60)).await;
    let as_key =
        |key: &str, args: &[&str]| run(args, &[("WASMQ_URL", base.as_str()), ("WASMQ_KEY", key)]);
    let ok = |key: &str, args: &[&str]| -> Value {
        let out = as_key(key, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };

    let set = [
        "tenant",
        "set",
        "acme",
        "--enqueue-rate",
        "5",
        "--max-unfinished-jobs",
        "100",
        "--max-module-bytes",
        "1MiB",
    ];
    let view = ok(&operator, &set);
    assert_eq!(
        view["quotas"],
        json!({"max_unfinished_jobs": 100, "max_module_bytes": 1 << 20, "enqueue_rate": 5.0,
               "enqueue_burst": 5, "max_running": 9, "max_schedules": 4})
    );
    let refused = as_key(&acme, &set);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("403"),
        "{}",
        text(&refused.stderr)
    );

    let view = ok(
        &operator,
        &["tenant", "set", "acme", "--enqueue-rate", "default"],
    );
    assert_eq!(view["quotas"]["enqueue_rate"], Value::Null);
    assert_eq!(view["quotas"]["max_unfinished_jobs"], 100);
    assert_eq!(
        ok(&operator, &["tenant", "show", "acme"])["quotas"],
        view["quotas"]
    );
    let own = ok(&acme, &["tenant", "show"]);
    assert_eq!(
        (&own["tenant"], &own["quotas"]),
        (&json!("acme"), &view["quotas"])
    );
    assert_eq!(own["usage"]["unfinished_jobs"], 0);

    // The operator's own tenant sets nothing: the defaults from flag, environment, file.
    let defaults = ok(&operator, &["tenant", "show"])["quotas"].clone();
    assert_eq!(
        (
            &defaults["max_schedules"],
            &defaults["max_running"],
            &defaults["max_unfinished_jobs"]
        ),
        (&json!(4), &json!(9), &json!(50))
    );

    // A queue's limit, set and removed by the tenant's own key; a bad one refused.
    let limited = ok(&acme, &["queue", "limit", "mail", "3"]);
    assert_eq!(
        (&limited["name"], &limited["max_running"]),
        (&json!("mail"), &json!(3))
    );
    let listed = ok(&acme, &["queue", "list"]);
    assert_eq!(listed["queues"][0]["max_running"], 3, "{listed}");
    let removed = ok(&acme, &["queue", "limit", "mail", "none"]);
    assert!(removed.get("max_running").is_none(), "{removed}");
    assert!(
        !as_key(&acme, &["queue", "limit", "mail", "many"])
            .status
            .success()
    );
    // Workers enforce the default, so `wasmq worker` takes it as `serve` does.
    let help = text(&run(&["worker", "--help"], &[]).stdout);
    assert!(help.contains("--tenant-max-running"), "{help}");

    server.terminate();
    assert!(server.exited(Duration::from_secs(30)).await.success());
    let _ = std::fs::remove_file(file);
}
