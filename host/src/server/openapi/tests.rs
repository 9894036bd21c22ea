//! The document against the handlers, the problem codes and the types it describes.

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;

fn doc() -> Value {
    serde_json::from_slice(&document_json().expect("the document")).expect("it parses")
}

/// `(method, path)` of every `.route(...)` in the router's source.
fn routes() -> Vec<(String, String)> {
    let src = include_str!("../mod.rs");
    let start = src.find("pub fn router(").expect("the router");
    let end = start + src[start..].find(".fallback(").expect("the router's end");
    let mut out = Vec::new();
    for part in src[start..end].split(".route(").skip(1) {
        let path = part.split('"').nth(1).expect("a route's path");
        let handlers = &part[part.find(',').expect("a route's handler")..];
        for m in ["get", "post", "put", "patch", "delete"] {
            // `get(x)` first, or `.get(x)` chained.
            if handlers.contains(&format!("{m}(")) {
                out.push((m.to_string(), path.to_string()));
            }
        }
    }
    out
}

#[test]
fn the_document_names_every_route_and_nothing_else() {
    let doc = doc();
    let paths = doc["paths"].as_object().expect("paths");
    let routes = routes();
    assert!(
        routes.iter().filter(|(_, p)| p.starts_with("/v1/")).count() >= 14,
        "{routes:?}"
    );
    for (m, p) in &routes {
        assert!(
            paths.get(p).and_then(|x| x.get(m)).is_some(),
            "{} {p} is routed but not in the OpenAPI document: annotate its handler with #[utoipa::path] and list it in ApiDoc",
            m.to_uppercase()
        );
    }
    for (p, ops) in paths {
        for m in ops.as_object().expect("path item").keys() {
            assert!(
                routes.iter().any(|(rm, rp)| rm == m && rp == p),
                "the OpenAPI document has {} {p}, which is not routed",
                m.to_uppercase()
            );
        }
    }
}

/// Every `{"$ref": "#/..."}` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_openapi_3_1_and_every_reference_resolves() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "mailhost serve");
    assert!(doc["info"]["version"].is_string());
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 50, "{found:?}");
    for r in &found {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("`{r}` is not a reference inside the document"));
        assert!(doc.pointer(pointer).is_some(), "`{r}` does not resolve");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let at = format!("{} {path}", method.to_uppercase());
            let id = op["operationId"].as_str().expect("an operationId");
            assert!(ids.insert(id.to_string()), "{at}: operationId `{id}` twice");
            assert!(op["summary"].is_string(), "{at} has no summary");
            let open = !path.starts_with("/v1/") || path == "/v1/openapi.json";
            let security = op.get("security").and_then(Value::as_array);
            if open {
                assert!(security.is_none(), "{at} needs no token");
            } else {
                let security = security.unwrap_or_else(|| panic!("{at} names no scope"));
                for req in security {
                    for scope in req["bearer"].as_array().expect("a bearer requirement") {
                        assert!(
                            ["send", "admin"].contains(&scope.as_str().unwrap_or("")),
                            "{at}: scope {scope}"
                        );
                    }
                }
                assert!(
                    op["responses"].get("401").is_some(),
                    "{at}: no 401 response"
                );
            }
            for (status, resp) in op["responses"].as_object().expect("responses") {
                if status.starts_with('4') || status.starts_with('5') {
                    let r = match resp.get("$ref").and_then(Value::as_str) {
                        Some(r) => doc.pointer(&r[1..]).expect("resolves"),
                        None => resp,
                    };
                    assert!(
                        r["content"].get("application/problem+json").is_some(),
                        "{at}: {status} is not a problem document"
                    );
                    assert!(
                        CODES.iter().any(|c| c.status.to_string() == *status),
                        "{at}: {status} has no problem codes"
                    );
                }
            }
        }
    }
}

/// `(status, code)` of every problem the handlers make, read from their source.
fn problems_in_source() -> BTreeSet<(u16, String)> {
    let sources = [
        include_str!("../mod.rs"),
        include_str!("../body.rs"),
        include_str!("../messages.rs"),
        include_str!("../status.rs"),
        include_str!("../ops.rs"),
        include_str!("../batches.rs"),
        include_str!("../batches/upload.rs"),
        include_str!("../auth.rs"),
        include_str!("mod.rs"),
    ];
    let fixed = [
        ("Problem::unauthorized(", 401, "unauthorized"),
        ("Problem::not_found(", 404, "not-found"),
        ("Problem::internal(", 500, "internal"),
    ];
    let with_code = [
        ("Problem::bad_request(", 400),
        ("Problem::forbidden(", 403),
        ("Problem::conflict(", 409),
        ("Problem::unavailable(", 503),
    ];
    let statuses = [
        ("StatusCode::BAD_REQUEST", 400),
        ("StatusCode::PAYLOAD_TOO_LARGE", 413),
        ("StatusCode::UNSUPPORTED_MEDIA_TYPE", 415),
        ("StatusCode::UNPROCESSABLE_ENTITY", 422),
        ("StatusCode::BAD_GATEWAY", 502),
    ];
    let first_literal = |s: &str| s.split('"').nth(1).map(str::to_string);
    let mut out = BTreeSet::new();
    for src in sources {
        // The test itself names these calls; read only the code above it.
        let src = src.split("#[cfg(test)]").next().unwrap_or(src);
        for (call, status, code) in fixed {
            if src.contains(call) {
                out.insert((status, code.to_string()));
            }
        }
        for (call, status) in with_code {
            for part in src.split(call).skip(1) {
                let code = first_literal(part).expect("a code");
                out.insert((status, code));
            }
        }
        for part in src.split("Problem::new(").skip(1) {
            let (name, status) = statuses
                .iter()
                .find(|(n, _)| part.trim_start().starts_with(n))
                .unwrap_or_else(|| panic!("a status this test knows: {}", &part[..60]));
            let code = first_literal(part).unwrap_or_else(|| panic!("a code after {name}"));
            out.insert((*status, code));
        }
    }
    out
}

#[test]
fn the_document_lists_every_problem_code_the_handlers_answer_with() {
    let made = problems_in_source();
    assert!(made.len() >= 20, "{made:?}");
    let listed: BTreeSet<(u16, String)> = CODES
        .iter()
        .map(|c| (c.status, c.code.to_string()))
        .collect();
    let missing: Vec<_> = made.difference(&listed).collect();
    assert!(missing.is_empty(), "codes not in CODES: {missing:?}");
    let unused: Vec<_> = listed.difference(&made).collect();
    assert!(
        unused.is_empty(),
        "codes in CODES no handler answers with: {unused:?}"
    );
    let doc = doc();
    for c in CODES {
        let name = doc["components"]["responses"]
            .as_object()
            .expect("responses")
            .iter()
            .find(|(_, r)| {
                r["content"]["application/problem+json"]["examples"]
                    .get(c.code)
                    .is_some_and(|e| e["value"]["status"] == c.status)
            });
        assert!(
            name.is_some(),
            "`{}` has no example in the document",
            c.code
        );
    }
}

/// A validator for the schema `schema` (which may refer into the document).
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let root = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
        "components": doc["components"],
    });
    jsonschema::validator_for(&root).expect("a valid JSON Schema")
}

#[test]
fn every_example_fits_its_schema() {
    let doc = doc();
    let mut checked = 0;
    let mut check = |at: &str, content: &Value| {
        let Some(schema) = content.get("schema") else {
            return;
        };
        let v = validator(&doc, schema);
        let mut examples: Vec<Value> = content
            .get("examples")
            .and_then(Value::as_object)
            .map(|e| e.values().map(|x| x["value"].clone()).collect())
            .unwrap_or_default();
        examples.extend(content.get("example").cloned());
        if let Some(s) = schema.get("$ref").and_then(Value::as_str) {
            let target = doc.pointer(&s[1..]).expect("resolves");
            examples.extend(target.get("example").cloned());
            examples.extend(
                target
                    .get("examples")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
        for e in examples {
            let errors: Vec<String> = v.iter_errors(&e).map(|x| x.to_string()).collect();
            assert!(
                errors.is_empty(),
                "{at}: the example {e} does not fit: {errors:?}"
            );
            checked += 1;
        }
    };
    for (name, r) in doc["components"]["responses"]
        .as_object()
        .expect("responses")
    {
        for (ct, c) in r["content"].as_object().expect("content") {
            check(&format!("response {name} {ct}"), c);
        }
    }
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let at = format!("{} {path}", method.to_uppercase());
            if let Some(c) = op["requestBody"]["content"].as_object() {
                for (ct, c) in c {
                    check(&format!("{at} request {ct}"), c);
                }
            }
            for (status, r) in op["responses"].as_object().expect("responses") {
                if let Some(c) = r.get("content").and_then(Value::as_object) {
                    for (ct, c) in c {
                        check(&format!("{at} {status} {ct}"), c);
                    }
                }
            }
        }
    }
    assert!(checked >= 30, "only {checked} examples");
}

/// The keys `value` serializes to equal the properties of schema `name`
/// (after `allOf`), and every required property is among them.
fn same_fields(doc: &Value, name: &str, value: &Value, not_in_api: &[&str]) {
    fn props(doc: &Value, s: &Value, out: &mut BTreeSet<String>, req: &mut BTreeSet<String>) {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            return props(doc, doc.pointer(&r[1..]).expect("resolves"), out, req);
        }
        for part in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            props(doc, part, out, req);
        }
        if let Some(p) = s.get("properties").and_then(Value::as_object) {
            out.extend(p.keys().cloned());
        }
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            req.insert(r.as_str().expect("a name").to_string());
        }
    }
    let (mut documented, mut required) = (BTreeSet::new(), BTreeSet::new());
    props(
        doc,
        &doc["components"]["schemas"][name],
        &mut documented,
        &mut required,
    );
    let keys: BTreeSet<String> = value
        .as_object()
        .expect("an object")
        .keys()
        .filter(|k| !not_in_api.contains(&k.as_str()))
        .cloned()
        .collect();
    assert_eq!(
        keys, documented,
        "schema {name} and its type part: update server/openapi.rs"
    );
    assert!(
        required.is_subset(&keys),
        "schema {name} requires {required:?}"
    );
}

#[test]
fn described_types_match_their_schemas() {
    use crate::outbox::batches::{BatchRecord, BatchStatus};
    use crate::outbox::{AttemptRecord, MessageRecord, Priority, State};
    let doc = doc();
    let mut req = serde_json::to_value(crate::message::MessageRequest::default()).expect("json");
    for k in super::super::ROUTING_KEYS {
        req[*k] = Value::Null;
    }
    same_fields(&doc, "MessageSubmission", &req, &[]);
    let att = serde_json::to_value(crate::message::AttachmentRequest::default()).expect("json");
    // The API refuses `path` (a file on the server): 400 attachment-path.
    same_fields(&doc, "Attachment", &att, &["path"]);
    let record = MessageRecord {
        id: "m".into(),
        state: State::Queued,
        action: "send".into(),
        user: None,
        tenant: None,
        purpose: None,
        idempotency_key: None,
        message_id: "<x@y>".into(),
        mime: None,
        envelope_from: "a@b".into(),
        envelope_to: vec![],
        options_json: "{}".into(),
        decision_json: "{}".into(),
        chain_pos: 0,
        position_since: None,
        priority: Priority::Single,
        attempts_count: 0,
        next_attempt_at: 0,
        lease_owner: None,
        lease_until: None,
        last_error: None,
        created_at: 0,
        updated_at: 0,
        batch_id: Some("b".into()),
    };
    same_fields(&doc, "MessageRecord", &s(&record), &[]);
    let attempt = AttemptRecord {
        at: 0,
        chain_pos: 0,
        candidate: "sink".into(),
        plugin: None,
        class: "ok".into(),
        code: None,
        text: String::new(),
    };
    same_fields(&doc, "AttemptRecord", &s(&attempt), &[]);
    let batch = BatchRecord {
        id: "b".into(),
        label: None,
        tenant: None,
        user: None,
        idempotency_key: None,
        total: 1,
        per_minute: 0,
        created_at: 0,
    };
    same_fields(&doc, "BatchRecord", &s(&batch), &[]);
    let status = BatchStatus {
        batch,
        counts: Default::default(),
        failures: Default::default(),
        done: false,
        next_due: Some(0),
    };
    same_fields(&doc, "BatchStatus", &s(&status), &[]);
    let candidate = crate::policy::Candidate {
        label: "sink".into(),
        account: None,
        plugin: None,
        mode: "smtp".into(),
    };
    same_fields(&doc, "Candidate", &s(&candidate), &[]);
    let composed = crate::engine::Composed {
        candidate,
        kind: "draft".into(),
        draft_id: String::new(),
        web_link: String::new(),
        message: String::new(),
        attempts: vec![],
    };
    same_fields(&doc, "Composed", &s(&composed), &[]);
    let try_ = crate::engine::Attempt {
        candidate: "sink".into(),
        plugin: None,
        number: 1,
        outcome: "ok".into(),
        message: String::new(),
        elapsed_ms: 0,
    };
    same_fields(&doc, "Attempt", &s(&try_), &[]);
    let rate = &doc["components"]["schemas"]["BatchRequest"]["properties"]["rate"];
    assert_eq!(
        rate["maximum"].as_u64(),
        Some(u64::from(crate::outbox::MAX_BATCH_PER_MINUTE)),
        "{rate}"
    );
    // Every state and priority the types have, the schemas have.
    for st in State::ALL {
        let schema = &doc["components"]["schemas"]["State"]["enum"];
        assert!(
            schema
                .as_array()
                .expect("an enum")
                .contains(&Value::from(st.as_str())),
            "{st:?}"
        );
    }
    for p in [Priority::Single, Priority::Batch] {
        let schema = &doc["components"]["schemas"]["Priority"]["enum"];
        assert!(
            schema.as_array().expect("an enum").contains(&s(&p)),
            "{p:?}"
        );
    }
}

fn s<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("json")
}
