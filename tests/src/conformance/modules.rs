//! Conformance cases of modules, events, keys and counts.

use super::*;

/// The same bytes again keep the version; new bytes make version 2; bytes by digest.
pub async fn module_versions_and_bytes(store: Arc<dyn Store>) {
    let t = tenant();
    let v1 = store
        .put_module(NewModule {
            tenant: t.clone(),
            name: "thumb".into(),
            kind: ModuleKind::Component,
            digest: sha256_hex(b"one"),
            bytes: b"one".to_vec(),
            limits: Limits {
                fuel: Some(10),
                ..Limits::default()
            },
        })
        .await
        .unwrap();
    assert!(v1.created);
    assert_eq!(v1.module.version, 1);
    assert_eq!(v1.module.size, 3);
    assert_eq!(v1.module.limits.fuel, Some(10));
    let same = store
        .put_module(NewModule {
            tenant: t.clone(),
            name: "thumb".into(),
            kind: ModuleKind::Component,
            digest: sha256_hex(b"one"),
            bytes: b"one".to_vec(),
            limits: v1.module.limits.clone(),
        })
        .await
        .unwrap();
    assert!(!same.created);
    assert_eq!(same.module, v1.module);
    let v2 = put(&store, &t, "thumb", b"two!").await;
    assert_eq!(v2.version, 2);
    assert_eq!(
        store.get_module(&t, "thumb").await.unwrap(),
        Some(v2.clone())
    );
    let versions: Vec<u32> = store
        .module_versions(&t, "thumb")
        .await
        .unwrap()
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, [2, 1]);
    put(&store, &t, "another", b"one").await;
    let names: Vec<(String, u32)> = store
        .list_modules(&t)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.version))
        .collect();
    assert_eq!(names, [("another".into(), 1), ("thumb".into(), 2)]);
    assert_eq!(
        store
            .module_bytes(&v1.module.digest)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(
        store.module_bytes(&v2.digest).await.unwrap().as_deref(),
        Some(&b"two!"[..])
    );
    assert_eq!(
        store.module_bytes(&sha256_hex(b"none")).await.unwrap(),
        None
    );
    assert_eq!(
        store.get_module("someone-else", "thumb").await.unwrap(),
        None
    );

    let wrong = store
        .put_module(NewModule {
            tenant: t.clone(),
            name: "thumb".into(),
            kind: ModuleKind::Command,
            digest: sha256_hex(b"not these bytes"),
            bytes: b"three".to_vec(),
            limits: Limits::default(),
        })
        .await;
    assert!(matches!(wrong, Err(StoreError::Invalid(_))), "{wrong:?}");
    assert_eq!(store.get_module(&t, "thumb").await.unwrap(), Some(v2));
}

/// Deleting a module keeps its bytes for jobs that still wait for them.
pub async fn deleted_module_keeps_bytes_for_waiting_jobs(store: Arc<dyn Store>) {
    let t = tenant();
    let module = put(&store, &t, "gone", b"gone soon").await;
    let queued = enqueue_one(&store, job(&t, "gone", b"")).await;
    store.delete_module(&t, "gone").await.unwrap();
    assert_eq!(store.get_module(&t, "gone").await.unwrap(), None);
    assert!(store.module_versions(&t, "gone").await.unwrap().is_empty());
    assert_eq!(
        store.delete_module(&t, "gone").await,
        Err(StoreError::NotFound)
    );
    let err = store.enqueue(vec![job(&t, "gone", b"")]).await.unwrap_err();
    assert!(matches!(err, StoreError::ModuleNotFound { .. }), "{err:?}");

    let running = claim_one(&store, "default", "w", LEASE).await;
    assert_eq!(running.digest, module.digest);
    assert_eq!(
        store
            .module_bytes(&running.digest)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"gone soon"[..]),
        "a pinned job still runs"
    );
    store
        .finish(vec![Finish::new(
            queued.id,
            1,
            Outcome::Complete { result: vec![] },
        )])
        .await
        .unwrap();
    eventually("prune to remove the finished job", || async {
        (store.prune(Duration::ZERO).await.unwrap() > 0).then_some(())
    })
    .await;
    assert_eq!(store.module_bytes(&module.digest).await.unwrap(), None);
}

/// Subscribers hear of available jobs (idle workers wake) and finished ones (long-polls).
pub async fn subscribers_hear_enqueues_and_finishes(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    let mut events = store.subscribe();
    let queued = enqueue_one(
        &store,
        NewJob {
            queue: "wake-me".into(),
            ..job(&t, "m", b"")
        },
    )
    .await;
    expect_event(&mut events, "JobsAvailable", |e| {
        *e == StoreEvent::JobsAvailable {
            queue: "wake-me".into(),
        }
    })
    .await;
    let running = claim_one(&store, "wake-me", "w", LEASE).await;
    store
        .finish(vec![Finish::new(
            running.id,
            1,
            Outcome::Complete { result: vec![] },
        )])
        .await
        .unwrap();
    expect_event(
        &mut events,
        "JobsFinished",
        |e| matches!(e, StoreEvent::JobsFinished { ids } if ids.contains(&queued.id)),
    )
    .await;
}

/// A created key authenticates as its tenant with its scopes until it is revoked.
pub async fn keys_authenticate_until_revoked(store: Arc<dyn Store>) {
    let t = tenant();
    let key = store
        .create_key(&t, Some("ci"), &[Scope::JobsRead, Scope::JobsWrite])
        .await
        .unwrap();
    assert!(
        key.key.starts_with(&format!("wq_{}_", key.id)),
        "{}",
        key.key
    );
    let who = store
        .authenticate(&key.key)
        .await
        .unwrap()
        .expect("valid key");
    assert_eq!(who.tenant, t);
    assert_eq!(who.key_id, key.id);
    let mut scopes = who.scopes.clone();
    scopes.sort();
    assert_eq!(scopes, vec![Scope::JobsWrite, Scope::JobsRead]);
    assert!(who.allows(Scope::JobsRead));
    assert!(!who.allows(Scope::ModulesWrite));

    assert!(
        !store.revoke_key("someone-else", &key.id).await.unwrap(),
        "only its tenant may revoke it"
    );
    assert!(store.authenticate(&key.key).await.unwrap().is_some());
    assert!(store.revoke_key(&t, &key.id).await.unwrap());
    assert!(
        store.authenticate(&key.key).await.unwrap().is_none(),
        "revoked"
    );
    assert!(
        !store.revoke_key(&t, &key.id).await.unwrap(),
        "already revoked"
    );
}

/// A key with a wrong secret, a malformed key, or an unknown id authenticates nobody;
/// bad tenants and empty scopes are refused.
pub async fn keys_are_checked_whole_and_per_tenant(store: Arc<dyn Store>) {
    let t = tenant();
    let key = store.create_key(&t, None, &[Scope::Admin]).await.unwrap();
    let other = store
        .create_key(&tenant(), None, &[Scope::Admin])
        .await
        .unwrap();
    let mut forged = key.key.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    assert!(store.authenticate(&forged).await.unwrap().is_none());
    // The id of one key with the secret of another.
    let secret = other.key.rsplit('_').next().unwrap();
    let mixed = format!("wq_{}_{secret}", key.id);
    assert!(store.authenticate(&mixed).await.unwrap().is_none());
    for junk in ["", "wq_", "Bearer x", "wq_zz_zz", &key.id] {
        assert!(store.authenticate(junk).await.unwrap().is_none(), "{junk}");
    }
    assert!(matches!(
        store.create_key(&t, None, &[]).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .create_key("Not A Tenant", None, &[Scope::Admin])
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert_ne!(key.key, other.key);
}

/// `count_jobs` tells how many jobs each queue holds in each state.
pub async fn count_jobs_by_queue_and_state(store: Arc<dyn Store>) {
    let t = tenant();
    put(&store, &t, "m", b"m").await;
    for queue in ["count-a", "count-a", "count-b"] {
        enqueue_one(
            &store,
            NewJob {
                queue: queue.into(),
                ..job(&t, "m", b"")
            },
        )
        .await;
    }
    claim_one(&store, "count-b", "w", LEASE).await;
    let counts: HashMap<(String, JobState), u64> = store
        .count_jobs()
        .await
        .unwrap()
        .into_iter()
        .map(|c| ((c.queue, c.state), c.count))
        .collect();
    assert_eq!(
        counts.get(&("count-a".into(), JobState::Available)),
        Some(&2)
    );
    assert_eq!(counts.get(&("count-b".into(), JobState::Running)), Some(&1));
    assert_eq!(counts.get(&("count-b".into(), JobState::Available)), None);
}
