//! Conformance cases of listings.

use super::*;

/// Every job of `tenant`, listed `limit` at a time by following the cursor.
async fn list_all(store: &Arc<dyn Store>, tenant: &str, limit: u32) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut cursor = None;
    loop {
        let filter = JobFilter {
            limit,
            cursor,
            ..JobFilter::default()
        };
        let page = store.list(tenant, &filter).await.unwrap();
        assert!(page.jobs.len() <= limit as usize);
        jobs.extend(page.jobs);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return jobs,
        }
    }
}

/// Listings are newest first, filter by state, module and queue, and page by cursor.
pub async fn list_filters_and_pages_newest_first(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "a", b"a").await;
    put(&store, &t, "b", b"b").await;
    let jobs = (0..25)
        .map(|i| NewJob {
            queue: if i % 2 == 0 { "even" } else { "odd" }.into(),
            ..job(&t, if i % 5 == 0 { "b" } else { "a" }, &[i])
        })
        .collect();
    let all: Vec<i64> = store
        .enqueue(jobs)
        .await
        .unwrap()
        .iter()
        .map(|e| e.job.id)
        .collect();
    let running = store.claim("odd", "w", 3, LEASE).await.unwrap();

    let paged = list_all(&store, &t, 10).await;
    let mut newest_first = all.clone();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(paged.iter().map(|j| j.id).collect::<Vec<_>>(), newest_first);

    let list = |filter: JobFilter| {
        let store = store.clone();
        let t = t.clone();
        async move { store.list(&t, &filter).await.unwrap().jobs }
    };
    let by_module = list(JobFilter {
        module: Some("b".into()),
        ..JobFilter::default()
    })
    .await;
    assert_eq!(by_module.len(), 5);
    assert!(by_module.iter().all(|j| j.module == "b"));
    let by_queue = list(JobFilter {
        queue: Some("even".into()),
        ..JobFilter::default()
    })
    .await;
    assert_eq!(by_queue.len(), 13);
    assert!(by_queue.iter().all(|j| j.queue == "even"));
    let by_state = list(JobFilter {
        state: Some(JobState::Running),
        ..JobFilter::default()
    })
    .await;
    let mut running_ids: Vec<i64> = running.iter().map(|j| j.id).collect();
    running_ids.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(
        by_state.iter().map(|j| j.id).collect::<Vec<_>>(),
        running_ids
    );
    // Finished jobs, by state (stores may index some states and not others).
    store
        .finish(vec![
            Finish::new(
                running[0].id,
                running[0].attempt,
                Outcome::Complete { result: vec![] },
            ),
            Finish::new(
                running[1].id,
                running[1].attempt,
                Outcome::Fail {
                    error: JobError::new(ErrorKind::Trap, "boom"),
                },
            ),
        ])
        .await
        .unwrap();
    for (state, id) in [
        (JobState::Completed, running[0].id),
        (JobState::Failed, running[1].id),
        (JobState::Running, running[2].id),
    ] {
        let ids: Vec<i64> = list(JobFilter {
            state: Some(state),
            ..JobFilter::default()
        })
        .await
        .iter()
        .map(|j| j.id)
        .collect();
        assert_eq!(ids, [id], "listing {state:?} jobs");
    }
    let combined = list(JobFilter {
        state: Some(JobState::Available),
        module: Some("a".into()),
        queue: Some("odd".into()),
        ..JobFilter::default()
    })
    .await;
    assert!(
        combined
            .iter()
            .all(|j| j.state == JobState::Available && j.module == "a" && j.queue == "odd")
    );
    let running_a = running.iter().filter(|j| j.module == "a").count();
    assert_eq!(
        combined.len(),
        10 - running_a,
        "odd jobs of module a, less the claimed ones"
    );
    // Four states now (available, running, completed, failed): pages of three still come
    // newest first across them, and a filter applies in every state.
    let paged = list_all(&store, &t, 3).await;
    assert_eq!(paged.iter().map(|j| j.id).collect::<Vec<_>>(), newest_first);
    let states: HashSet<JobState> = paged.iter().map(|j| j.state).collect();
    assert_eq!(states.len(), 4, "{states:?}");
    let odd_ids: Vec<i64> = list(JobFilter {
        queue: Some("odd".into()),
        ..JobFilter::default()
    })
    .await
    .iter()
    .map(|j| j.id)
    .collect();
    let mut expected: Vec<i64> = all.iter().skip(1).step_by(2).copied().collect();
    expected.reverse();
    assert_eq!(odd_ids, expected, "odd jobs in every state, newest first");
    assert!(
        store
            .list("someone-else", &JobFilter::default())
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
}

/// A schedule's jobs (keys `wasmq:schedule:<name>:<tick>`) are listed by its name, newest
/// first and by cursor, and not another schedule's whose name starts the same.
pub async fn a_schedules_jobs_are_listed_by_its_name(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let keys = [
        Some("wasmq:schedule:nightly:100"),
        Some("wasmq:schedule:nightly-2:100"),
        None,
        Some("wasmq:schedule:nightly:200"),
        Some("wasmq:schedule:other:100"),
        Some("wasmq:schedule:nightly:300"),
    ];
    let jobs = keys
        .iter()
        .map(|key| NewJob {
            idempotency_key: key.map(str::to_owned),
            ..job(&t, "m", b"x")
        })
        .collect();
    let ids: Vec<i64> = store
        .enqueue(jobs)
        .await
        .unwrap()
        .iter()
        .map(|e| e.job.id)
        .collect();
    let by = |schedule: &str, cursor: Option<i64>| JobFilter {
        schedule: Some(schedule.to_owned()),
        limit: 2,
        cursor,
        ..JobFilter::default()
    };
    let first = store.list(&t, &by("nightly", None)).await.unwrap();
    let got: Vec<i64> = first.jobs.iter().map(|j| j.id).collect();
    assert_eq!(got, [ids[5], ids[3]]);
    let rest = store
        .list(&t, &by("nightly", first.next_cursor))
        .await
        .unwrap();
    let got: Vec<i64> = rest.jobs.iter().map(|j| j.id).collect();
    assert_eq!(got, [ids[0]]);
    assert_eq!(rest.next_cursor, None);
    let other = store
        .list_summaries(&t, &by("nightly-2", None))
        .await
        .unwrap();
    assert_eq!(
        other.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        [ids[1]]
    );
    let with_state = JobFilter {
        state: Some(JobState::Completed),
        ..by("nightly", None)
    };
    assert!(store.list(&t, &with_state).await.unwrap().jobs.is_empty());
    assert!(
        store
            .list(&t, &by("night", None))
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
}
