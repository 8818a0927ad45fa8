//! The store conformance suite against a real PostgreSQL (a fresh database per test).

macro_rules! fresh_store {
    () => {
        std::sync::Arc::new(
            wasmq_host::queue::postgres::PgStore::connect(
                &wasmq_tests::pg::fresh_database().await,
                8,
            )
            .await
            .expect("connect to the test database"),
        )
    };
}

wasmq_tests::store_conformance_tests!(fresh_store!());

/// PostgreSQL hands lone jobs to idle workers of its process (and runs them ahead).
mod handoff {
    wasmq_tests::store_handoff_tests!(fresh_store!());
}

mod nodes {
    use std::sync::Arc;
    use std::time::Duration;

    use sqlx::Connection;
    use wasmq_host::queue::postgres::PgStore;
    use wasmq_host::queue::{ErrorKind, Finish, JobError, NewJob, Outcome, Store, StoreEvent};
    use wasmq_tests::guests;
    use wasmq_tests::harness::put_module;

    /// Two stores on one database are two nodes. Each hears the other's enqueues and
    /// finishes (LISTEN/NOTIFY), and its own exactly once: it tells its own subscribers
    /// as soon as the statement commits and drops its own notifications when they come
    /// back.
    #[tokio::test]
    async fn each_node_hears_every_enqueue_and_finish_once() {
        let url = wasmq_tests::pg::fresh_database().await;
        let a: Arc<dyn Store> = Arc::new(PgStore::connect(&url, 4).await.unwrap());
        let b: Arc<dyn Store> = Arc::new(PgStore::connect(&url, 4).await.unwrap());
        put_module(&a, "echo", guests::ECHO).await;
        let (mut on_a, mut on_b) = (a.subscribe(), b.subscribe());

        let new = NewJob {
            queue: "nodes".into(),
            ..NewJob::new("echo", b"{}".to_vec())
        };
        let id = a.enqueue(vec![new.clone()]).await.unwrap()[0].job.id;
        let claimed = b
            .claim("nodes", "w", 1, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        let complete = Outcome::Complete { result: vec![] };
        assert_eq!(
            b.finish(vec![Finish::new(id, 1, complete)]).await.unwrap(),
            [true]
        );
        // A job given back wakes its queue everywhere; one to retry later wakes nobody.
        let other = a.enqueue(vec![new]).await.unwrap()[0].job.id;
        let lease = Duration::from_secs(30);
        assert_eq!(b.claim("nodes", "w", 1, lease).await.unwrap().len(), 1);
        let release = Finish::new(other, 1, Outcome::Release);
        assert_eq!(b.finish(vec![release]).await.unwrap(), [true]);
        assert_eq!(b.claim("nodes", "w", 1, lease).await.unwrap().len(), 1);
        let later = Outcome::Retry {
            error: JobError::new(ErrorKind::Trap, "again later"),
            retry_at: chrono::Utc::now() + chrono::Duration::hours(1),
        };
        assert_eq!(
            b.finish(vec![Finish::new(other, 1, later)]).await.unwrap(),
            [true]
        );

        // A notification from outside both stores, sent after everything above: they are
        // delivered in commit order, so once a node hears it, its listener has passed
        // every notification before it, its own included (which it must drop).
        let mut outside = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("SELECT pg_notify('wasmq_jobs', 'marker')")
            .execute(&mut outside)
            .await
            .unwrap();
        let marker = StoreEvent::JobsAvailable {
            queue: "marker".into(),
        };
        let available = format!(
            "{:?}",
            StoreEvent::JobsAvailable {
                queue: "nodes".into()
            }
        );
        // Two enqueues and a release; one completion.
        let mut expected = vec![
            available.clone(),
            available.clone(),
            available,
            format!("{:?}", StoreEvent::JobsFinished { ids: vec![id] }),
        ];
        expected.sort();
        assert_eq!(
            heard_until(&mut on_a, &marker).await,
            expected,
            "node A (enqueued)"
        );
        assert_eq!(
            heard_until(&mut on_b, &marker).await,
            expected,
            "node B (ran it)"
        );
    }

    /// A pause committed on node A holds on node B at once: B's next claim, made before B
    /// can have heard of it, takes no job of the paused tenant (its plain claim looks at
    /// the pauses in the statement). Once B hears the notification it claims the other
    /// tenant's jobs of the queue again, and a resume on A lets B claim the rest.
    #[tokio::test]
    async fn a_pause_holds_on_every_node_from_its_commit() {
        use wasmq_host::queue::{Limits, ModuleKind, NewModule};
        let url = wasmq_tests::pg::fresh_database().await;
        let a: Arc<dyn Store> = Arc::new(PgStore::connect(&url, 4).await.unwrap());
        let b: Arc<dyn Store> = Arc::new(PgStore::connect(&url, 4).await.unwrap());
        let lease = Duration::from_secs(30);
        for tenant in ["paused", "other"] {
            a.put_module(NewModule {
                tenant: tenant.into(),
                name: "m".into(),
                kind: ModuleKind::Component,
                digest: wasmq_host::runtime::digest(b"m"),
                bytes: b"m".to_vec(),
                limits: Limits::default(),
            })
            .await
            .unwrap();
        }
        let enqueue = |tenant: &str| NewJob {
            tenant: tenant.into(),
            queue: "q".into(),
            ..NewJob::new("m", b"{}".to_vec())
        };
        let jobs: Vec<NewJob> = vec![enqueue("paused"), enqueue("paused"), enqueue("other")];
        let ids: Vec<i64> = a
            .enqueue(jobs)
            .await
            .unwrap()
            .iter()
            .map(|e| e.job.id)
            .collect();
        // B has read the pauses (none) before A pauses.
        assert!(b.claim("empty", "w", 1, lease).await.unwrap().is_empty());

        assert!(a.pause_queue("paused", "q").await.unwrap());
        let claimed = b.claim("q", "w", 10, lease).await.unwrap();
        assert!(
            claimed.iter().all(|j| j.tenant != "paused"),
            "claimed a paused job: {claimed:?}"
        );
        let other = if claimed.is_empty() {
            // B had not heard of it yet: it claims once it has.
            wasmq_tests::harness::eventually(Duration::from_secs(10), "B hears the pause", || {
                let b = b.clone();
                async move {
                    let claimed = b.claim("q", "w", 10, lease).await.unwrap();
                    (!claimed.is_empty()).then_some(claimed)
                }
            })
            .await
        } else {
            claimed
        };
        assert_eq!(other.iter().map(|j| j.id).collect::<Vec<_>>(), vec![ids[2]]);
        assert!(b.claim("q", "w", 10, lease).await.unwrap().is_empty());

        assert!(a.resume_queue("paused", "q").await.unwrap());
        let mut rest: Vec<i64> = b
            .claim("q", "w", 10, lease)
            .await
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        rest.sort_unstable();
        assert_eq!(rest, ids[..2]);
    }

    /// The events `rx` hears before `marker` (debug-printed, sorted); fails if `marker`
    /// does not come within ten seconds.
    async fn heard_until(
        rx: &mut tokio::sync::broadcast::Receiver<StoreEvent>,
        marker: &StoreEvent,
    ) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut events = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(event)) if event == *marker => break,
                Ok(Ok(event)) => events.push(format!("{event:?}")),
                Ok(Err(e)) => panic!("the event stream failed: {e}"),
                Err(_) => panic!("the marker notification did not come: {events:?}"),
            }
        }
        events.sort();
        events
    }

    /// A fan-in whose dependencies finish on two nodes at once, from several tasks on
    /// each: the dependent is released once, and both nodes' workers hear of it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fan_in_finished_on_two_nodes_releases_its_dependent_once() {
        use wasmq_host::queue::{Dependency, JobState};
        let url = wasmq_tests::pg::fresh_database().await;
        let a: Arc<dyn Store> = Arc::new(PgStore::connect(&url, 8).await.unwrap());
        let b: Arc<dyn Store> = Arc::new(PgStore::connect(&url, 8).await.unwrap());
        put_module(&a, "echo", guests::ECHO).await;
        let job = |queue: &str| NewJob {
            queue: queue.into(),
            ..NewJob::new("echo", b"{}".to_vec())
        };
        let parents: Vec<NewJob> = (0..400).map(|_| job("fan")).collect();
        let parents = a.enqueue(parents).await.unwrap();
        let child = NewJob {
            depends_on: parents.iter().map(|e| Dependency::Job(e.job.id)).collect(),
            ..job("fan-in")
        };
        let child = b.enqueue(vec![child]).await.unwrap().remove(0).job;
        assert_eq!(child.state, JobState::Waiting);
        let lease = Duration::from_secs(60);
        let claimed = a.claim("fan", "w", 400, lease).await.unwrap();
        assert_eq!(claimed.len(), 400);
        let (mut on_a, mut on_b) = (a.subscribe(), b.subscribe());
        let tasks: Vec<_> = claimed
            .chunks(25)
            .enumerate()
            .map(|(i, chunk)| {
                let node = if i % 2 == 0 { a.clone() } else { b.clone() };
                let chunk = chunk.to_vec();
                tokio::spawn(async move {
                    for job in chunk {
                        let complete = Outcome::Complete { result: vec![] };
                        let done = node.finish(vec![Finish::new(job.id, 1, complete)]).await;
                        assert_eq!(done.unwrap(), [true]);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let released = a.get("default", child.id).await.unwrap().unwrap();
        assert_eq!(released.state, JobState::Available, "{released:?}");
        let woken = StoreEvent::JobsAvailable {
            queue: "fan-in".into(),
        };
        for (node, events) in [("A", &mut on_a), ("B", &mut on_b)] {
            let heard = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    match events.recv().await {
                        Ok(event) if event == woken => return,
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(e) => panic!("node {node}: {e}"),
                    }
                }
            })
            .await;
            assert!(heard.is_ok(), "node {node} was not told of the release");
        }
        let taken = b.claim("fan-in", "w", 10, lease).await.unwrap();
        assert_eq!(taken.len(), 1);
        assert!(a.claim("fan-in", "w", 10, lease).await.unwrap().is_empty());
    }

    /// Claimers on two nodes, eight tasks each, drain a queue under a cap: a tenant's
    /// `max_running` of 3, then (uncapped) its limit of 2 on the queue. The jobs the
    /// claimers hold, and the running jobs sampled from the store meanwhile, never pass
    /// the cap, and every job completes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn caps_hold_across_nodes_under_concurrent_claims() {
        use wasmq_host::queue::QuotaChange;
        let url = wasmq_tests::pg::fresh_database().await;
        let a: Arc<dyn Store> = Arc::new(PgStore::connect(&url, 8).await.unwrap());
        let b: Arc<dyn Store> = Arc::new(PgStore::connect(&url, 8).await.unwrap());
        put_module(&a, "echo", guests::ECHO).await;
        let max_running = |n: Option<u64>| QuotaChange {
            max_running: Some(n),
            ..QuotaChange::default()
        };
        a.set_tenant_quotas("default", &max_running(Some(3)))
            .await
            .unwrap();
        drain_under_cap([a.clone(), b.clone()], "capped", 3).await;
        b.set_tenant_quotas("default", &max_running(None))
            .await
            .unwrap();
        b.set_queue_limit("default", "limited", Some(2))
            .await
            .unwrap();
        drain_under_cap([a.clone(), b.clone()], "limited", 2).await;
    }

    /// Enqueues 60 jobs of tenant `default` in `queue` and drains them from 16 tasks on
    /// the two `nodes`, checking `cap` on what they hold and on the store's count.
    async fn drain_under_cap(nodes: [Arc<dyn Store>; 2], queue: &str, cap: u64) {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
        const JOBS: u64 = 60;
        let new = NewJob {
            queue: queue.into(),
            ..NewJob::new("echo", b"{}".to_vec())
        };
        nodes[0].enqueue(vec![new; JOBS as usize]).await.unwrap();
        let (held, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let claimers: Vec<_> = (0..16)
            .map(|i| {
                let (node, queue) = (nodes[i % 2].clone(), queue.to_owned());
                let (held, done) = (held.clone(), done.clone());
                tokio::spawn(async move {
                    while done.load(SeqCst) < JOBS {
                        let claimed = node
                            .claim(&queue, &format!("w{i}"), 2, Duration::from_secs(60))
                            .await
                            .unwrap();
                        let n = claimed.len() as u64;
                        // Counted after the claim's commit, uncounted before the finish's:
                        // never more than the store counts running.
                        let now = held.fetch_add(n, SeqCst) + n;
                        assert!(now <= cap, "{now} jobs held at once, over the cap {cap}");
                        tokio::task::yield_now().await;
                        held.fetch_sub(n, SeqCst);
                        let complete = Outcome::Complete { result: vec![] };
                        let reports = (claimed.iter())
                            .map(|j| Finish::new(j.id, j.attempt, complete.clone()))
                            .collect();
                        node.finish(reports).await.unwrap();
                        done.fetch_add(n, SeqCst);
                    }
                })
            })
            .collect();
        let sampler = {
            let (node, queue, stop) = (nodes[1].clone(), queue.to_owned(), stop.clone());
            tokio::spawn(async move {
                let mut samples = 0u32;
                while !stop.load(SeqCst) {
                    let queues = node.queues("default").await.unwrap();
                    let running = queues
                        .iter()
                        .find(|q| q.name == queue)
                        .map_or(0, |q| q.running);
                    assert!(running <= cap, "{running} running, over the cap {cap}");
                    samples += 1;
                }
                samples
            })
        };
        for claimer in claimers {
            claimer.await.unwrap();
        }
        stop.store(true, SeqCst);
        assert!(sampler.await.unwrap() > 0);
        let left = nodes[0].queues("default").await.unwrap();
        assert!(
            left.iter()
                .all(|q| q.name != queue || q.running == 0 && q.available == 0)
        );
    }
}

/// Plans at depth: with many jobs stored, every statement run on each claim, heartbeat,
/// finish and maintenance round reaches jobs through an index, in the generic plan that
/// every connection uses (`plan_cache_mode=force_generic_plan`).
mod plans {
    use std::sync::Arc;

    use sqlx::{Connection, Row};
    use wasmq_host::queue::postgres::{HOT_STATEMENTS, PgStore};
    use wasmq_host::queue::{NewJob, Store};
    use wasmq_tests::guests;
    use wasmq_tests::harness::put_module;

    #[tokio::test]
    async fn hot_statements_never_scan_the_jobs_table() {
        let url = wasmq_tests::pg::fresh_database().await;
        let store: Arc<dyn Store> = Arc::new(PgStore::connect(&url, 4).await.unwrap());
        put_module(&store, "echo", guests::ECHO).await;
        // A deep queue: the old claim's join with its `LIMIT $3` subquery was planned for
        // a tenth of these rows, a hash join over a scan of every job.
        for _ in 0..20 {
            let jobs = (0..5_000)
                .map(|_| NewJob {
                    queue: "q1".into(),
                    ..NewJob::new("echo", b"{}".to_vec())
                })
                .collect();
            store.enqueue(jobs).await.unwrap();
        }
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("ANALYZE wasmq_jobs")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("SET plan_cache_mode = force_generic_plan")
            .execute(&mut conn)
            .await
            .unwrap();
        let mut scans = Vec::new();
        for (i, (name, sql, types, args)) in HOT_STATEMENTS.iter().enumerate() {
            let prepare = format!("PREPARE s{i}({types}) AS {sql}");
            sqlx::raw_sql(sqlx::AssertSqlSafe(prepare))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let explain = format!("EXPLAIN EXECUTE s{i}({args})");
            let plan: Vec<String> = sqlx::raw_sql(sqlx::AssertSqlSafe(explain))
                .fetch_all(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .iter()
                .map(|row| row.get::<String, _>(0))
                .collect();
            let plan = plan.join("\n");
            if plan.contains("Seq Scan on wasmq_jobs") {
                scans.push(format!("{name}:\n{plan}"));
            }
        }
        assert!(scans.is_empty(), "{}", scans.join("\n\n"));
    }
}
