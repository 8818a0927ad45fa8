//! The smallest wasmq task: returns its input bytes unchanged.
//!
//! It shows the bytes form of the SDK ([`wasmq_guest::task!`]) and is the module the
//! benchmarks use to measure instantiate + run overhead, so it does no work of its own.
//!
//! ```text
//! cargo build --profile guest --target wasm32-wasip2 -p echo
//! wasmq run target/wasm32-wasip2/guest/echo.wasm --input 'hello'
//! ```

use wasmq_guest::{Context, TaskError};

fn run(input: Vec<u8>, _cx: &Context) -> Result<Vec<u8>, TaskError> {
    Ok(input)
}

wasmq_guest::task!(run);
