//! The OpenAPI document against the live gateway: requests generated from
//! `openapi.json` (valid ones, and invalid ones that break one documented
//! constraint each: missing or unknown fields, wrong types, out-of-range
//! numbers, too short or long strings, pattern and enum violations, bad query
//! parameters, bad or missing bodies, no token), sent to a real gateway on a
//! real Redis. Any 5xx fails, and so does any status the document does not
//! list for that route, a valid request that is refused, an invalid one that
//! is accepted, or an answer whose body the document does not describe.

use std::time::Duration;

use hookgate_testkit::{Receiver, RedisServer, wait_until};
use serde_json::{Value, json};

use crate::common::*;
use crate::schema::Doc;

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// What the document says the answer must be.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Valid request: a documented 2xx.
    Success,
    /// Invalid request: a documented 4xx.
    Refused,
    /// A documented 401.
    Unauthorized,
    /// Whatever the document lists, below 500.
    Documented,
    /// The store is down: a documented 503, or a documented 2xx for a
    /// route that needs no store.
    StoreDown,
}

/// Which id a request puts in the path.
#[derive(Clone, Copy, Debug)]
enum PathId {
    Fresh,
    Missing,
    NotUtf8,
    ConfigWebhook,
}

#[derive(Clone, Debug)]
struct Req {
    label: String,
    id: PathId,
    query: Vec<(String, String)>,
    headers: Vec<(String, Vec<u8>)>,
    token: bool,
    /// (Content-Type, bytes).
    body: Option<(&'static str, Vec<u8>)>,
    expect: Expect,
}

struct Op<'a> {
    method: &'a str,
    path: &'a str,
    op: &'a Value,
    params: Vec<&'a Value>,
}

fn operations(doc: &Doc) -> Vec<Op<'_>> {
    let mut ops = Vec::new();
    for (path, item) in doc.0["paths"].as_object().unwrap() {
        if !path.starts_with("/api/") {
            continue;
        }
        let shared: Vec<&Value> = item["parameters"].as_array().into_iter().flatten().collect();
        for (method, op) in item.as_object().unwrap() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let mut params: Vec<&Value> = shared.iter().map(|p| doc.resolve(p)).collect();
            params.extend(
                op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| doc.resolve(p)),
            );
            ops.push(Op {
                method,
                path,
                op,
                params,
            });
        }
    }
    ops
}

/// A query value's string form, if that string breaks the schema.
fn query_breaks(doc: &Doc, schema: &Value, v: &Value) -> Option<String> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    let as_json = match doc.resolve(schema)["type"].as_str() {
        Some("integer") => text.parse::<i64>().map_or(json!(text), |n| json!(n)),
        _ => json!(text),
    };
    doc.validate(schema, &as_json, "query", false).is_err().then_some(text)
}

fn query_text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// Every request for one operation.
fn requests(doc: &Doc, op: &Op<'_>, over: crate::schema::Overrides<'_>, max_body: usize) -> Vec<Req> {
    let base = Req {
        label: "valid".into(),
        id: PathId::Fresh,
        query: Vec::new(),
        headers: Vec::new(),
        token: true,
        body: None,
        expect: Expect::Success,
    };
    let with = |label: String, expect: Expect, f: &dyn Fn(&mut Req)| {
        let mut r = base.clone();
        r.label = label;
        r.expect = expect;
        f(&mut r);
        r
    };
    let body_schema = op.op.pointer("/requestBody/content/application~1json/schema");
    let body_required = op.op.pointer("/requestBody/required") == Some(&Value::Bool(true));
    let query: Vec<(&str, &Value)> = op
        .params
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| (p["name"].as_str().unwrap(), &p["schema"]))
        .collect();
    let headers: Vec<(&str, &Value)> = op
        .params
        .iter()
        .filter(|p| p["in"] == "header")
        .map(|p| (p["name"].as_str().unwrap(), &p["schema"]))
        .collect();
    let valid_body = body_schema.map(|s| serde_json::to_vec(&doc.valid(s, over)).unwrap());
    let full = |r: &mut Req| {
        r.query = query
            .iter()
            .map(|(n, s)| (n.to_string(), query_text(&doc.valid(s, over))))
            .collect();
        r.headers = headers
            .iter()
            .map(|(n, s)| (n.to_string(), query_text(&doc.valid(s, over)).into_bytes()))
            .collect();
        r.body = valid_body.clone().map(|b| ("application/json", b));
    };
    let mut out = vec![with("valid, every parameter".into(), Expect::Success, &full)];
    out.push(with(
        "valid, no optional parameter".into(),
        if body_required {
            Expect::Refused
        } else {
            Expect::Success
        },
        &|_| {},
    ));
    if op
        .op
        .get("security")
        .and_then(Value::as_array)
        .is_none_or(|s| !s.is_empty())
    {
        out.push(with("no token".into(), Expect::Unauthorized, &|r| {
            full(r);
            r.token = false;
        }));
    }
    if op.path.contains("{id}") {
        out.push(with("unknown id".into(), Expect::Refused, &|r| {
            full(r);
            r.id = PathId::Missing;
        }));
        out.push(with("id not UTF-8".into(), Expect::Refused, &|r| {
            full(r);
            r.id = PathId::NotUtf8;
        }));
        if op.path.starts_with("/api/webhooks/") {
            out.push(with("config webhook".into(), Expect::Documented, &|r| {
                full(r);
                r.id = PathId::ConfigWebhook;
            }));
        }
    }
    for (i, (name, schema)) in query.iter().enumerate() {
        for (label, bad) in doc.invalid(schema, over) {
            if let Some(text) = query_breaks(doc, schema, &bad) {
                out.push(with(format!("query {name}: {label}"), Expect::Refused, &|r| {
                    full(r);
                    r.query[i].1 = text.clone();
                }));
            }
        }
        out.push(with(format!("query {name} given twice"), Expect::Refused, &|r| {
            full(r);
            let again = r.query[i].clone();
            r.query.push(again);
        }));
    }
    for (i, (name, schema)) in headers.iter().enumerate() {
        let mut bads: Vec<(String, Vec<u8>)> = doc
            .invalid(schema, over)
            .into_iter()
            .filter_map(|(label, bad)| query_breaks(doc, schema, &bad).map(|t| (label, t.into_bytes())))
            .filter(|(_, b)| !b.is_empty() && b.iter().all(|c| (0x20..0x7f).contains(c)))
            .collect();
        bads.push(("not ASCII".into(), "\u{e9}t\u{e9}".as_bytes().to_vec()));
        for (label, bytes) in bads {
            out.push(with(format!("header {name}: {label}"), Expect::Refused, &|r| {
                full(r);
                r.headers[i].1 = bytes.clone();
            }));
        }
    }
    if let Some(schema) = body_schema {
        for (label, bad) in doc.invalid(schema, over) {
            out.push(with(format!("body {label}"), Expect::Refused, &|r| {
                full(r);
                r.body = Some(("application/json", serde_json::to_vec(&bad).unwrap()));
            }));
        }
        let raw = |label: &str, ct: &'static str, bytes: Vec<u8>| {
            with(format!("body {label}"), Expect::Refused, &|r| {
                full(r);
                r.body = Some((ct, bytes.clone()));
            })
        };
        out.push(raw("malformed JSON", "application/json", b"{\"oops\": ".to_vec()));
        out.push(raw("as text/plain", "text/plain", valid_body.clone().unwrap()));
        let mut big = b"{\"x\": \"".to_vec();
        big.resize(max_body + 1, b'a');
        out.push(raw("larger than max_body_bytes", "application/json", big));
    }
    out
}

/// Checks one answer against the document; returns what is wrong.
fn judge(doc: &Doc, op: &Op<'_>, req: &Req, status: u16, content_type: &str, body: &[u8]) -> Option<String> {
    let responses = &op.op["responses"];
    let Some(documented) = responses.get(status.to_string()).map(|r| doc.resolve(r)) else {
        return Some(format!("answered {status}, which the document does not list"));
    };
    let ok = match req.expect {
        Expect::Success => (200..300).contains(&status),
        Expect::Refused => (400..500).contains(&status),
        Expect::Unauthorized => status == 401,
        Expect::Documented => status < 500,
        Expect::StoreDown => status == 503 || (200..300).contains(&status),
    };
    if !ok || (status >= 500 && req.expect != Expect::StoreDown) {
        return Some(format!("expected {:?}, got {status}", req.expect));
    }
    let Some(schema) = documented.pointer("/content/application~1json/schema") else {
        return (!body.is_empty() && status == 204).then(|| "a 204 with a body".to_owned());
    };
    if !content_type.starts_with("application/json") {
        return Some(format!("Content-Type {content_type:?}, expected JSON"));
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Some(format!("body is not JSON ({e})")),
    };
    if let Err(e) = doc.validate(schema, &value, "answer", true) {
        return Some(format!("{status} answer not as documented: {e}"));
    }
    if status >= 400 {
        let msg = value["error"]["message"].as_str().unwrap_or_default();
        for internal in [
            "struct ",
            "invalid type",
            "u32",
            "u64",
            "usize",
            "Failed to",
            "Invalid URL",
        ] {
            if msg.contains(internal) {
                return Some(format!("error message {msg:?} shows an internal detail ({internal:?})"));
            }
        }
        if msg.contains("1234567") || msg.contains("zz-wrong-type") {
            return Some(format!("error message {msg:?} echoes the value sent"));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_as_the_openapi_document_says() {
    let doc = Doc(serde_json::from_str(hookgate::api::OPENAPI_JSON).expect("openapi.json is JSON"));
    let mut redis = RedisServer::start();
    let rx = Receiver::start().await;
    let hooks = webhook("cfg", &rx.url("/cfg"), &["cfg.only"], "")
        + &webhook("fixture", &rx.url("/fixture"), &["fixture.event"], "");
    // The client identity the document's example names.
    let certs = hookgate_testkit::TempDir::new("openapi-certs");
    let identity = hookgate_testkit::certs::TestCa::new("clients CA").client(certs.path(), "partner-a");
    let delivery = format!(
        "{FAST_DELIVERY}\n[[delivery.client_identities]]\nname = \"partner-a\"\ncert = {:?}\nkey = {:?}\n",
        identity.cert_path, identity.key_path
    );
    let (toml, _) = config_toml(&redis, &delivery, &hooks);
    let max_body = 65_536;
    let toml = toml
        .replace("max_body_bytes = 4096", &format!("max_body_bytes = {max_body}"))
        .replace("[api]\n", "[api]\nrate_limit_per_minute = 1000000000\n");
    let gw = Gateway::start(&toml).await;
    let url = rx.url("/generated");
    let over = move |field: &str| (field == "url").then(|| json!(url));

    let mut failures = Vec::new();
    let mut sent = 0;
    for op in operations(&doc) {
        for req in requests(&doc, &op, &over, max_body) {
            let id = match (req.id, op.path.starts_with("/api/webhooks/")) {
                (PathId::Fresh, true) => fresh_webhook(&gw, &rx).await,
                (PathId::Fresh, false) => succeeded_delivery(&gw).await,
                (PathId::Missing, _) => "zz_missing_0".to_owned(),
                (PathId::NotUtf8, _) => "%ff%fe".to_owned(),
                (PathId::ConfigWebhook, _) => "cfg".to_owned(),
            };
            failures.extend(send(&gw, &doc, &op, &req, &id).await);
            sent += 1;
        }
    }
    assert!(sent > 300, "only {sent} requests generated");
    assert!(
        failures.is_empty(),
        "{} of {sent} answers disagree with openapi.json:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every webhook the generator created points at the local receiver.
    let (_, _, list) = gw.api("GET", "/api/webhooks", None).await;
    for w in list["data"].as_array().unwrap() {
        let u = w["url"].as_str().unwrap();
        assert!(u.starts_with(&format!("http://{}/", rx.addr())), "{u}");
    }
    // With the store gone every route answers as documented (503), never 500.
    redis.kill();
    for op in operations(&doc) {
        let mut req = requests(&doc, &op, &over, max_body).remove(0);
        req.label = "store down".into();
        req.expect = Expect::StoreDown;
        failures.extend(send(&gw, &doc, &op, &req, "zz_missing_0").await);
    }
    assert!(failures.is_empty(), "with the store down:\n{}", failures.join("\n"));
    gw.stop().await;
}

/// Sends one generated request and judges the answer.
async fn send(gw: &Gateway, doc: &Doc, op: &Op<'_>, req: &Req, id: &str) -> Option<String> {
    let mut target = gw.url(&op.path.replace("{id}", id));
    if !req.query.is_empty() {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &req.query {
            q.append_pair(k, v);
        }
        target = format!("{target}?{}", q.finish());
    }
    let mut http = gw.http.request(op.method.to_uppercase().parse().unwrap(), &target);
    if req.token {
        http = http.bearer_auth(TOKEN);
    }
    for (name, value) in &req.headers {
        http = http.header(name, reqwest::header::HeaderValue::from_bytes(value).unwrap());
    }
    if let Some((ct, bytes)) = &req.body {
        http = http.header("content-type", *ct).body(bytes.clone());
    }
    let resp = http.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp.bytes().await.unwrap();
    judge(doc, op, req, status, &ct, &body).map(|problem| {
        format!(
            "{} {} [{}]: {problem}\n    answer: {}",
            op.method.to_uppercase(),
            op.path,
            req.label,
            String::from_utf8_lossy(&body).chars().take(300).collect::<String>()
        )
    })
}

/// A new API webhook pointing at the receiver.
async fn fresh_webhook(gw: &Gateway, rx: &Receiver) -> String {
    let (status, _, hook) = gw
        .api(
            "POST",
            "/api/webhooks",
            Some(json!({"name": "fixture", "url": rx.url("/fresh"), "events": ["order.*"]})),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    hook["id"].as_str().unwrap().to_owned()
}

/// A delivery that has succeeded (so it can be retried).
async fn succeeded_delivery(gw: &Gateway) -> String {
    let answer = gw.post_event("fixture.event", r#"{"n": 1}"#).await;
    let id = delivery_ids(&answer).remove(0);
    wait_until(Duration::from_secs(20), "the fixture delivery to succeed", || async {
        let (_, _, d) = gw.api("GET", &format!("/api/deliveries/{id}"), None).await;
        (d["status"] == "succeeded").then_some(())
    })
    .await;
    id
}
