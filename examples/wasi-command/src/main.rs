//! A wasmq task as a plain WASI command: no SDK, only stdin, stdout, stderr and the exit
//! code, as any language with a WASI target could write it.
//!
//! The job input is stdin: `{"numbers": [1, 2, 3]}`. The result is stdout:
//! `{"sum": 6, "count": 3}`. One line goes to stderr, which wasmq puts in the job log.
//! Invalid input prints an error to stderr and exits with code 2; any nonzero exit is a
//! retryable failure.
//!
//! ```text
//! cargo build --profile guest --target wasm32-wasip1 -p wasi-command
//! wasmq run target/wasm32-wasip1/guest/wasi-command.wasm --input '{"numbers": [1, 2, 3]}'
//! ```

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    numbers: Vec<serde_json::Number>,
}

#[derive(Serialize)]
struct Output {
    sum: serde_json::Number,
    count: usize,
}

/// The sum, as an integer when every number is one (`6`, not `6.0`).
fn sum(numbers: &[serde_json::Number]) -> Option<serde_json::Number> {
    let ints: Option<Vec<i64>> = numbers.iter().map(serde_json::Number::as_i64).collect();
    if let Some(total) = ints.and_then(|v| v.iter().try_fold(0i64, |a, &b| a.checked_add(b))) {
        return Some(total.into());
    }
    let total: f64 = numbers.iter().filter_map(serde_json::Number::as_f64).sum();
    serde_json::Number::from_f64(total)
}

fn main() {
    let mut raw = Vec::new();
    if let Err(err) = std::io::stdin().read_to_end(&mut raw) {
        eprintln!("error: cannot read stdin: {err}");
        std::process::exit(2);
    }
    let input: Input = match serde_json::from_slice(&raw) {
        Ok(input) => input,
        Err(err) => {
            eprintln!("error: input must be JSON like {{\"numbers\": [1, 2, 3]}}: {err}");
            std::process::exit(2);
        }
    };
    eprintln!("summing {} numbers", input.numbers.len());
    let Some(total) = sum(&input.numbers) else {
        eprintln!("error: the sum is not a finite number");
        std::process::exit(2);
    };
    let output = Output {
        sum: total,
        count: input.numbers.len(),
    };
    let mut stdout = std::io::stdout().lock();
    if serde_json::to_writer(&mut stdout, &output).is_err() || stdout.flush().is_err() {
        eprintln!("error: cannot write the result to stdout");
        std::process::exit(2);
    }
}
