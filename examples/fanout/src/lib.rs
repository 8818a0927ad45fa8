//! A page was published: enqueue one reindex job per locale, as child jobs.
//!
//! Input `{"page": 7, "locales": ["en", "de"], "module": "reindex"}` (`module` optional,
//! default `reindex`); each child gets `{"page": 7, "locale": "en"}`. The children are
//! created only if this job completes, so a retry never doubles them. The result is
//! `{"page": 7, "children": [ids]}`.
//!
//! ```text
//! cargo build --profile guest --target wasm32-wasip2 -p fanout
//! wasmq module put fanout target/wasm32-wasip2/guest/fanout.wasm
//! wasmq enqueue fanout --input '{"page": 7, "locales": ["en", "de", "fr"]}'
//! ```

use serde::{Deserialize, Serialize};
use serde_json::json;
use wasmq_guest::{Context, TaskError};

#[derive(Deserialize)]
struct Published {
    page: u64,
    locales: Vec<String>,
    #[serde(default = "reindex")]
    module: String,
}

fn reindex() -> String {
    "reindex".into()
}

#[derive(Serialize)]
struct Fanned {
    page: u64,
    children: Vec<u64>,
}

fn run(input: Published, cx: &Context) -> Result<Fanned, TaskError> {
    if input.locales.is_empty() {
        return Err(TaskError::fatal("no locales to reindex"));
    }
    let mut children = Vec::with_capacity(input.locales.len());
    for locale in &input.locales {
        let child = json!({ "page": input.page, "locale": locale });
        children.push(cx.enqueue(&input.module, &child)?);
    }
    cx.info(format!(
        "page {}: {} reindex jobs",
        input.page,
        children.len()
    ));
    Ok(Fanned {
        page: input.page,
        children,
    })
}

wasmq_guest::json_task!(run);
