//! Repeated runs do not leak host memory.
//!
//! Resident memory is a property of the whole process, so this is the only test in its
//! binary: nothing else allocates while it measures.

use wasmq_host::runtime::{Limits, Outcome, RunRequest, Runtime, RuntimeConfig};
use wasmq_tests::{guest_bytes, guests};

#[test]
fn ten_thousand_echo_runs_do_not_grow_resident_memory() {
    let rt = Runtime::new(RuntimeConfig {
        slots: 4,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let p = rt.load_bytes_blocking(&guest_bytes(guests::ECHO)).unwrap();
    let run = |n: usize| {
        for i in 0..n {
            let input = format!("{{\"n\": {i}}}").into_bytes();
            let r = rt.run_blocking(
                &p,
                RunRequest {
                    input: input.clone(),
                    limits: Limits::default_max(),
                    ..RunRequest::default()
                },
            );
            assert_eq!(r.outcome, Outcome::Success { result: input });
        }
    };
    run(1_000); // warm up: pools, caches, allocator arenas
    let before = rss_bytes();
    run(9_000);
    let after = rss_bytes();
    let growth = after.saturating_sub(before);
    assert!(
        growth < 16 << 20,
        "resident memory grew by {} KiB over 9,000 runs",
        growth >> 10
    );
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}
