//! One attempt's request at the server's maximum limits, as the benches run it.

use wasmq_host::runtime::{Limits, RunRequest};

pub fn request(input: &[u8]) -> RunRequest {
    RunRequest {
        input: input.to_vec(),
        limits: Limits::default_max(),
        ..RunRequest::default()
    }
}
