//! Counts the words, lines and characters of a text and lists its most frequent words.
//!
//! It shows a JSON task ([`wasmq_guest::json_task!`]) with logging and progress.
//!
//! Input `{"text": "..."}`; output
//! `{"words": N, "lines": N, "chars": N, "top": [["word", count], ...]}` where `top` holds
//! up to five words (lowercased, trimmed of punctuation), most frequent first, ties in
//! alphabetical order.
//!
//! ```text
//! cargo build --profile guest --target wasm32-wasip2 -p wordcount
//! wasmq run target/wasm32-wasip2/guest/wordcount.wasm --input '{"text": "the cat and the hat"}'
//! ```

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use wasmq_guest::{Context, TaskError};

#[derive(Deserialize)]
struct Input {
    text: String,
}

#[derive(Serialize)]
struct Output {
    words: usize,
    lines: usize,
    chars: usize,
    top: Vec<(String, usize)>,
}

const TOP: usize = 5;

fn run(input: Input, cx: &Context) -> Result<Output, TaskError> {
    let text = input.text;
    cx.info(format!("counting {} bytes of text", text.len()));

    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut words = 0;
    for word in text.split_whitespace() {
        words += 1;
        let key = word
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        if !key.is_empty() {
            *counts.entry(key).or_default() += 1;
        }
    }
    cx.progress(80, Some("counted"));

    let mut top: Vec<(String, usize)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(TOP);

    Ok(Output {
        words,
        lines: text.lines().count(),
        chars: text.chars().count(),
        top,
    })
}

wasmq_guest::json_task!(run);
