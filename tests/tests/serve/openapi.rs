//! The OpenAPI document against what the service answers.

use super::*;

#[test]
fn the_openapi_document_lists_routes_the_service_answers() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), free_port(), "");
    let s = start(dir.path(), &["--no-workers"]);
    let (status, ctype, doc) = s.call("GET", "/v1/openapi.json", None, None, Vec::new());
    assert_eq!(status, 200);
    assert!(ctype.starts_with("application/json"), "{ctype}");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/compose",
        "/v1/accounts/{name}/check",
        "/v1/policy/explain",
        "/v1/openapi.json",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    // A 202 says where to follow what it accepted.
    for p in ["/v1/messages", "/v1/batches"] {
        let accepted = &paths[p]["post"]["responses"]["202"];
        assert!(
            accepted["headers"]["Location"].is_object(),
            "{p}: 202 without Location: {accepted:#}"
        );
    }
    // Every documented operation reaches a handler (never the fallback).
    for (p, ops) in paths {
        let path = p.replace("{id}", "0").replace("{name}", "sink");
        for m in ops.as_object().unwrap().keys() {
            let r = s.call(&m.to_uppercase(), &path, Some(OPS_TOKEN), None, Vec::new());
            let fallback = r.0 == 404
                && r.2["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("no such endpoint"));
            assert!(!fallback, "{m} {p} is documented but not routed");
        }
    }
}

/// The document with `unevaluatedProperties: false` on every object schema
/// that is not a part of another's `allOf`: an answer with a member the
/// document does not describe fails.
fn strict(mut doc: Value) -> Value {
    fn all_of_parts(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for part in o
                    .get("allOf")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(r) = part.get("$ref").and_then(Value::as_str) {
                        out.push(r.rsplit('/').next().unwrap().to_string());
                    }
                }
                o.values().for_each(|x| all_of_parts(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| all_of_parts(x, out)),
            _ => {}
        }
    }
    let mut parts = Vec::new();
    all_of_parts(&doc, &mut parts);
    for (name, s) in doc["components"]["schemas"].as_object_mut().unwrap() {
        if !parts.contains(name) && (s.get("properties").is_some() || s.get("allOf").is_some()) {
            s["unevaluatedProperties"] = Value::Bool(false);
        }
    }
    doc
}

/// Checks an answer of `method path` against the document: its status is
/// documented for the operation, and a JSON body fits the schema given for
/// that status and content type.
fn fits(doc: &Value, method: &str, path: &str, r: &(u16, String, Value)) {
    let at = format!("{method} {path} → {}", r.0);
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{at}: not in the document");
    let mut resp = &op["responses"][r.0.to_string()];
    assert!(resp.is_object(), "{at}: status not documented: {:#}", r.2);
    if let Some(x) = resp.get("$ref").and_then(Value::as_str) {
        resp = doc.pointer(&x[1..]).unwrap();
    }
    let ctype = r.1.split(';').next().unwrap().trim();
    let content = &resp["content"][ctype];
    assert!(
        content.is_object(),
        "{at}: content type {ctype} not documented"
    );
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [content["schema"]],
        "components": doc["components"],
    });
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&r.2).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{at}: the answer does not fit the document: {errors:#?}\n{:#}",
        r.2
    );
}

#[test]
fn every_answer_fits_the_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), free_port(), "");
    edit(
        &cfg,
        "[policy]\n",
        "[policy]\ncompose_mode = \"m365-draft\"\n",
    );
    let s = start(dir.path(), &["--no-workers"]);
    let (status, _, doc) = s.call("GET", "/v1/openapi.json", None, None, Vec::new());
    assert_eq!(status, 200);
    let doc = strict(doc);
    let json_body = |v: &Value| serde_json::to_vec(v).unwrap();
    let call = |method: &str,
                template: &str,
                path: &str,
                token: Option<&str>,
                ctype: Option<&str>,
                body: Vec<u8>| {
        let r = s.call(method, path, token, ctype, body);
        fits(&doc, method, template, &r);
        r
    };
    let ops = Some(OPS_TOKEN);
    let erp = Some(ERP_TOKEN);
    let json = Some("application/json");

    let key = unique("fits");
    let msg = json!({"tenant": "acme", "to": ["bob@example.com"], "subject": "Hi", "text": "Hello", "idempotency_key": key, "options": {"dsn": {"notify": ["failure"]}}});
    let r = call(
        "POST",
        "/v1/messages",
        "/v1/messages",
        erp,
        json,
        json_body(&msg),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let id = r.2["id"].as_str().unwrap().to_string();
    let r = call(
        "POST",
        "/v1/messages",
        "/v1/messages",
        erp,
        json,
        json_body(&msg),
    );
    assert_eq!(r.2["duplicate"], true);
    let one = "/v1/messages/{id}";
    let got = call("GET", one, &format!("/v1/messages/{id}"), erp, None, vec![]);
    assert_eq!(got.0, 200);
    // The request's options come back as the object they were.
    assert_eq!(
        got.2["options"],
        json!({"dsn": {"notify": ["failure"]}}),
        "{:#}",
        got.2
    );
    assert_eq!(
        call(
            "GET",
            "/v1/messages",
            "/v1/messages?limit=1",
            ops,
            None,
            vec![]
        )
        .0,
        200
    );
    // raw MIME with its envelope recipients in the query, comma-separated
    let raw = "From: erp@example.com\r\nTo: header@example.com\r\nSubject: raw\r\n\r\nbody\r\n";
    let r = call(
        "POST",
        "/v1/messages",
        "/v1/messages?tenant=acme&to=ann@example.com,%20bob@example.com",
        erp,
        Some("message/rfc822"),
        raw.as_bytes().to_vec(),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let raw_id = r.2["id"].as_str().unwrap();
    let m = call(
        "GET",
        one,
        &format!("/v1/messages/{raw_id}"),
        erp,
        None,
        vec![],
    );
    assert_eq!(
        m.2["envelope_to"],
        json!(["ann@example.com", "bob@example.com"])
    );
    let cancel = format!("/v1/messages/{id}/cancel");
    let retry = format!("/v1/messages/{id}/retry");
    assert_eq!(
        call(
            "POST",
            "/v1/messages/{id}/cancel",
            &cancel,
            erp,
            None,
            vec![]
        )
        .0,
        200
    );
    assert_eq!(
        call(
            "POST",
            "/v1/messages/{id}/cancel",
            &cancel,
            erp,
            None,
            vec![]
        )
        .0,
        409
    );
    assert_eq!(
        call("POST", "/v1/messages/{id}/retry", &retry, erp, None, vec![]).0,
        200
    );
    assert_eq!(
        call("GET", "/v1/status", "/v1/status", erp, None, vec![]).0,
        200
    );
    let explain = "/v1/policy/explain?tenant=acme&to=bob@example.com";
    assert_eq!(
        call("GET", "/v1/policy/explain", explain, ops, None, vec![]).0,
        200
    );
    // Nothing listens on the sink's port: the check answers with its failed steps.
    let r = call(
        "POST",
        "/v1/accounts/{name}/check",
        "/v1/accounts/sink/check",
        ops,
        json,
        vec![],
    );
    assert!(r.0 == 200 || r.0 == 502, "{:#}", r.2);
    let draft = json!({"tenant": "globex", "from": MAILBOX, "to": ["bob@example.com"], "subject": unique("fits"), "text": "draft"});
    let r = call(
        "POST",
        "/v1/compose",
        "/v1/compose",
        erp,
        json,
        json_body(&draft),
    );
    assert_eq!(r.0, 200, "{:#}", r.2);

    let batch = json!({"tenant": "acme", "template": {"subject": "Hi {{ name }}", "text": "Hello {{ name }}"},
        "rows": [{"to": "ann@example.com", "name": "Ann"}, {"to": ["bob@example.com"], "name": "Bob"}]});
    let r = call(
        "POST",
        "/v1/batches",
        "/v1/batches",
        erp,
        json,
        json_body(&batch),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let bid = r.2["id"].as_str().unwrap().to_string();
    assert_eq!(
        call(
            "GET",
            "/v1/batches/{id}",
            &format!("/v1/batches/{bid}"),
            erp,
            None,
            vec![]
        )
        .0,
        200
    );
    assert_eq!(
        call(
            "GET",
            "/v1/batches",
            "/v1/batches?tenant=acme",
            erp,
            None,
            vec![]
        )
        .0,
        200
    );
    let r = call(
        "POST",
        "/v1/batches/{id}/cancel",
        &format!("/v1/batches/{bid}/cancel"),
        erp,
        None,
        vec![],
    );
    assert_eq!(r.0, 200);
    let bad = json!({"tenant": "acme", "template": {"subject": "Hi {{ name }}"}, "rows": [{"to": "not an address", "name": "x"}]});
    let r = call(
        "POST",
        "/v1/batches",
        "/v1/batches",
        erp,
        json,
        json_body(&bad),
    );
    assert_problem(&r, 400, "invalid-batch");

    // Problems.
    assert_problem(
        &call("GET", "/v1/status", "/v1/status", None, None, vec![]),
        401,
        "unauthorized",
    );
    assert_problem(
        &call("GET", one, "/v1/messages/00000000", erp, None, vec![]),
        404,
        "not-found",
    );
    let r = call(
        "POST",
        "/v1/messages",
        "/v1/messages",
        erp,
        json,
        b"{".to_vec(),
    );
    assert_problem(&r, 400, "bad-json");
    let r = call(
        "POST",
        "/v1/messages",
        "/v1/messages",
        erp,
        Some("text/plain"),
        b"x".to_vec(),
    );
    assert_problem(&r, 415, "media-type");
    let r = call(
        "POST",
        "/v1/accounts/{name}/check",
        "/v1/accounts/sink/check",
        erp,
        json,
        vec![],
    );
    assert_problem(&r, 403, "scope");
}
