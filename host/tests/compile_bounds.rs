//! Compiles in a child process through the real `wasmq` binary: bounded in time (killed
//! at the deadline, its place free once it is gone) and in memory, and its artifacts
//! load in the serving engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmq_host::runtime::{
    CompileMode, Limits, Outcome, RunError, RunRequest, Runtime, RuntimeConfig, ValidateError,
};
use wasmq_tests::{guest_bytes, guests};

fn config() -> RuntimeConfig {
    RuntimeConfig {
        slots: 2,
        compile_mode: CompileMode::Subprocess {
            program: env!("CARGO_BIN_EXE_wasmq").into(),
        },
        ..RuntimeConfig::default()
    }
}

async fn refused(rt: &Runtime, bytes: Vec<u8>) -> ValidateError {
    match rt.validate(Arc::new(bytes)).await {
        Err(RunError::Invalid(e)) => e,
        Err(other) => panic!("expected a validation error, got {other}"),
        Ok((kind, _)) => panic!("expected refusal, module accepted as {kind:?}"),
    }
}

/// Runs the echo guest `p` on `input` and asserts it answers it.
async fn echoes(rt: &Runtime, p: &wasmq_host::runtime::Prepared, input: &[u8]) {
    let request = RunRequest {
        input: input.to_vec(),
        limits: Limits::default_max(),
        ..Default::default()
    };
    let r = rt.run(p, request).await;
    assert_eq!(
        r.outcome,
        Outcome::Success {
            result: input.to_vec()
        }
    );
}

/// A valid WASI command with 4,000 functions of 400 rounds of arithmetic each (16 MB):
/// it takes many seconds to compile, far past the short bound the tests set.
fn slow_to_compile() -> Vec<u8> {
    functions_of_arithmetic(4_000)
}

/// A valid WASI command with `functions` functions of 400 rounds of arithmetic each
/// (4 KB apiece).
fn functions_of_arithmetic(functions: usize) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn section(id: u8, payload: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        leb(payload.len(), out);
        out.extend_from_slice(payload);
    }
    let n = functions;
    // local.get 0, i32.const 7, i32.mul, i32.const 3, i32.xor, local.set 0
    let round = [0x20, 0x00, 0x41, 0x07, 0x6c, 0x41, 0x03, 0x73, 0x21, 0x00];
    let mut body = vec![0x00]; // no locals besides the parameter
    for _ in 0..400 {
        body.extend_from_slice(&round);
    }
    body.extend_from_slice(&[0x20, 0x00, 0x0b]); // local.get 0, end

    let mut m = b"\0asm\x01\0\0\0".to_vec();
    // Types: (i32) -> i32 and () -> ().
    section(
        1,
        &[0x02, 0x60, 0x01, 0x7f, 0x01, 0x7f, 0x60, 0x00, 0x00],
        &mut m,
    );
    let mut funcs = Vec::new();
    leb(n + 1, &mut funcs);
    funcs.push(0x01);
    funcs.extend(std::iter::repeat_n(0x00, n));
    section(3, &funcs, &mut m);
    section(5, &[0x01, 0x00, 0x01], &mut m); // one memory of one page
    let mut exports = vec![0x02, 0x06];
    exports.extend_from_slice(b"_start\x00\x00\x06memory\x02\x00");
    section(7, &exports, &mut m);
    let mut code = Vec::new();
    leb(n + 1, &mut code);
    code.extend_from_slice(&[0x02, 0x00, 0x0b]); // _start: no locals, end
    for _ in 0..n {
        leb(body.len(), &mut code);
        code.extend_from_slice(&body);
    }
    section(10, &code, &mut m);
    m
}

#[tokio::test]
async fn a_module_compiled_in_a_compile_process_runs() {
    let rt = Runtime::new(config()).unwrap();
    let p = rt
        .load_bytes(Arc::new(guest_bytes(guests::ECHO)))
        .await
        .unwrap();
    echoes(&rt, &p, b"from a child").await;
    assert_eq!(rt.cache_stats().compiles, 1);
    // The compiler's refusal comes back with its words.
    let mut bytes = guest_bytes(guests::ECHO);
    bytes.truncate(bytes.len() / 2);
    let e = refused(&rt, bytes).await;
    assert!(matches!(e, ValidateError::Compile(_)), "{e}");
}

#[tokio::test]
async fn a_compile_past_its_time_bound_is_killed_and_frees_its_place_at_once() {
    let bound = Duration::from_secs(3);
    let rt = Runtime::new(RuntimeConfig {
        compile_timeout: bound,
        concurrent_compiles: 1,
        ..config()
    })
    .unwrap();
    let slow = slow_to_compile();
    let started = Instant::now();
    let e = refused(&rt, slow).await;
    assert!(matches!(e, ValidateError::CompileTimeout(_)), "{e}");
    assert!(e.to_string().contains("3s"), "{e}");
    assert!(started.elapsed() < bound * 2, "{:?}", started.elapsed());
    assert_eq!(
        rt.compiles_in_progress(),
        0,
        "the compile process is gone before the refusal is answered"
    );
    // The next upload gets the only compile slot straight away: were the first compile
    // still running, it would wait many seconds for it.
    let next = Instant::now();
    rt.load_bytes(Arc::new(guest_bytes(guests::ECHO)))
        .await
        .unwrap();
    let took = next.elapsed();
    assert!(took < bound, "echo took {took:?}");
}

#[tokio::test]
async fn a_compile_needing_more_than_the_memory_cap_is_refused() {
    let rt = Runtime::new(RuntimeConfig {
        compile_memory_bytes: 64 << 20,
        ..config()
    })
    .unwrap();
    let e = refused(&rt, guest_bytes(guests::THUMBNAIL)).await;
    assert!(matches!(e, ValidateError::CompileMemory(_)), "{e}");
    assert_eq!(
        e.to_string(),
        "module could not be compiled within the compile memory limit of 64 MiB; make it smaller, or raise the limit"
    );
    // The same module compiles under the default cap.
    let rt = Runtime::new(config()).unwrap();
    rt.load_bytes(Arc::new(guest_bytes(guests::THUMBNAIL)))
        .await
        .unwrap();
}

/// A valid module just under the 64 MiB upload limit, all functions: compiled within the
/// bounds (then it runs) or refused naming the bound it hit; either way another upload
/// compiles beside it meanwhile, and nothing is left compiling after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_module_of_64_mib_of_functions_is_bounded_and_blocks_no_other_upload() {
    let rt = Runtime::new(RuntimeConfig {
        compile_timeout: Duration::from_secs(30),
        concurrent_compiles: 2,
        ..config()
    })
    .unwrap();
    let big = functions_of_arithmetic(16_000);
    let limit = rt.config().max_module_bytes;
    assert!(big.len() > 60 << 20 && big.len() <= limit, "{}", big.len());
    let compiling = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.validate(Arc::new(big)).await })
    };
    while rt.compiles_in_progress() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let echo = rt
        .load_bytes(Arc::new(guest_bytes(guests::ECHO)))
        .await
        .expect("echo compiles beside it");
    assert!(
        !compiling.is_finished(),
        "the big compile was still running"
    );
    match compiling.await.unwrap() {
        Ok(_) => {}
        Err(RunError::Invalid(
            e @ (ValidateError::CompileTimeout(_) | ValidateError::CompileMemory(_)),
        )) => assert!(e.to_string().contains("limit"), "{e}"),
        Err(other) => panic!("refused for another reason: {other}"),
    }
    assert_eq!(rt.compiles_in_progress(), 0);
    echoes(&rt, &echo, b"after").await;
}
