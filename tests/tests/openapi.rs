//! The OpenAPI document over real HTTP: every field of a job, module, schedule and tenant answer
//! has a typed schema (a client generated from it can read the answers), and the answers
//! a real job gives name only fields the document declares.

mod support;

use serde_json::{Value, json};
use wasmq_tests::guests;

use support::Server;

/// The schema `schema` stands for: a `$ref` followed, the non-null member of a nullable
/// `oneOf`, an array's items.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return resolve(doc, &doc["components"]["schemas"][name]);
    }
    if let Some(members) = schema["oneOf"].as_array() {
        let typed: Vec<&Value> = members
            .iter()
            .filter(|m| m["type"] != json!("null"))
            .collect();
        if let [one] = typed.as_slice() {
            return resolve(doc, one);
        }
    }
    if is_type(schema, "array") {
        return resolve(doc, &schema["items"]);
    }
    schema
}

/// Whether `schema` is of JSON type `ty` (alone, or with `null`).
fn is_type(schema: &Value, ty: &str) -> bool {
    schema["type"] == json!(ty)
        || schema["type"]
            .as_array()
            .is_some_and(|t| t.contains(&json!(ty)))
}

/// An object schema that says nothing of its fields.
fn is_bare_object(schema: &Value) -> bool {
    let object = is_type(schema, "object");
    let untyped = schema.as_object().is_some_and(|o| {
        !o.contains_key("type") && !o.contains_key("enum") && !o.contains_key("oneOf")
    });
    (object && schema.get("properties").is_none()) || untyped
}

/// Asserts that every property of component `name` but `free` (the user's own JSON) has a
/// typed schema, and the schemas it refers to likewise; returns its properties.
fn assert_typed<'a>(
    doc: &'a Value,
    name: &str,
    free: &[&str],
) -> &'a serde_json::Map<String, Value> {
    let properties = doc["components"]["schemas"][name]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema {name} has no properties"));
    for (field, schema) in properties {
        if free.contains(&field.as_str()) {
            continue;
        }
        let target = resolve(doc, schema);
        assert!(
            !is_bare_object(target),
            "{name}.{field} is a bare object in the OpenAPI: {schema}"
        );
        if let Some(r) = schema["$ref"]
            .as_str()
            .or(schema["oneOf"][1]["$ref"].as_str())
            .or(schema["items"]["$ref"].as_str())
            && target.get("properties").is_some()
        {
            assert_typed(doc, r.trim_start_matches("#/components/schemas/"), &[]);
        }
    }
    properties
}

fn enum_of(doc: &Value, schema: &Value) -> Vec<String> {
    let mut names: Vec<String> = resolve(doc, schema)["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("not an enum: {schema}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_of_an_answer_has_a_typed_schema() {
    let s = Server::start().await;
    let doc: Value = s
        .http
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let job = assert_typed(&doc, "JobView", &["input", "result"]);
    assert_typed(&doc, "ModuleView", &[]);
    assert_typed(&doc, "ScheduleView", &["input"]);
    let tenant = assert_typed(&doc, "TenantView", &[]);
    let quotas = resolve(&doc, &tenant["quotas"]);
    assert!(
        is_type(&quotas["properties"]["enqueue_rate"], "number"),
        "{quotas}"
    );
    let problem = &doc["components"]["schemas"]["Problem"]["properties"];
    assert!(is_type(&problem["quota"], "string"), "{problem}");
    let queue = assert_typed(&doc, "QueueView", &[]);
    assert!(is_type(&queue["max_running"], "integer"), "{queue:?}");
    assert_typed(&doc, "QueueLimitRequest", &[]);
    for path in [
        "/v1/tenant",
        "/v1/tenants/{name}",
        "/v1/queues/{name}/limit",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} is not in the OpenAPI"
        );
    }

    let usage = resolve(&doc, &job["usage"]);
    for field in ["fuel", "memory_peak_bytes", "duration_ms"] {
        assert!(is_type(&usage["properties"][field], "integer"), "{usage}");
    }
    let error = resolve(&doc, &job["error"]);
    assert_eq!(
        enum_of(&doc, &error["properties"]["kind"]),
        [
            "cancelled",
            "dependency_failed",
            "lost",
            "memory_limit",
            "module_missing",
            "out_of_fuel",
            "output_limit",
            "task_error",
            "timeout",
            "trap"
        ]
    );
    assert_eq!(
        enum_of(&doc, &resolve(&doc, &job["history"])["properties"]["kind"]),
        enum_of(&doc, &error["properties"]["kind"])
    );
    assert_eq!(
        enum_of(&doc, &job["state"]),
        [
            "available",
            "cancelled",
            "completed",
            "failed",
            "retryable",
            "running",
            "scheduled",
            "waiting"
        ]
    );
    assert!(is_type(&job["dependents"], "integer"), "{job:?}");
    assert!(
        is_type(&job["depends_on"], "array") && is_type(&job["depends_on"]["items"], "integer"),
        "{job:?}"
    );
    let limits = resolve(&doc, &job["limits"]);
    assert!(
        is_type(&limits["properties"]["fuel"], "integer"),
        "{limits}"
    );
    let progress = resolve(&doc, &job["progress"]);
    assert!(
        is_type(&progress["properties"]["percent"], "integer"),
        "{progress}"
    );

    // A real job's answer names only declared fields, each of its declared kind.
    s.push(&s.admin, "echo", guests::ECHO).await;
    let (_, enqueued) = s
        .enqueue(
            &s.admin,
            json!({"module": "echo", "input": {"a": 1}, "limits": {"fuel": 1000000000}}),
        )
        .await;
    let done = s.wait(&s.admin, enqueued["id"].as_i64().unwrap()).await;
    for (field, value) in done.as_object().unwrap() {
        assert!(job.contains_key(field), "`{field}` is not in the OpenAPI");
        let declared = resolve(&doc, &job[field]);
        if field == "input" || field == "result" {
            continue; // the user's own JSON
        }
        // An object, or each object of an array (history); null says nothing.
        let objects: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for object in objects.into_iter().filter_map(Value::as_object) {
            for inner in object.keys() {
                assert!(
                    declared["properties"].get(inner).is_some(),
                    "`{field}.{inner}` is not in the OpenAPI"
                );
            }
        }
    }
    assert!(done["usage"]["fuel"].is_u64(), "{done}");
    assert_eq!(done["limits"]["fuel"], 1_000_000_000, "{done}");
    s.stop().await;
}
