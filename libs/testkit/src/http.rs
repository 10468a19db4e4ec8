//! Local HTTP servers for tests of the GRC sync: axum on `127.0.0.1:0`,
//! implementing a platform's documented endpoints and recording every
//! request (no mocked client). [`serve`] runs a handler over a state;
//! [`VantaState`]/[`vanta_handle`] implement Vanta's OAuth token, custom
//! resources and document uploads. Used by `libs/grc/tests/providers.rs`
//! and `tests/grc_run.rs`.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// An answer: status, headers, body.
pub type Resp = (u16, Vec<(&'static str, String)>, String);

/// A failure the server answers once instead of handling the request.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: &'static str,
    pub path_contains: &'static str,
    pub status: u16,
    pub retry_after: Option<&'static str>,
    pub times: usize,
}

/// A running server; its task ends with the test's runtime.
#[derive(Debug)]
pub struct Server<S> {
    pub url: String,
    pub state: Arc<Mutex<S>>,
    log: Arc<Mutex<Vec<Req>>>,
    faults: Arc<Mutex<Vec<Fault>>>,
}

impl<S> Server<S> {
    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
    /// How many `method path` requests came.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests().iter().filter(|r| r.method == method && r.path == path).count()
    }
    /// Answers the next `f.times` matching requests with `f.status` instead.
    pub fn fault(&self, f: Fault) {
        self.faults.lock().unwrap().push(f);
    }
}

/// Serves `handle` over `state` on `127.0.0.1:0`, logging every request.
pub async fn serve<S: Send + 'static>(state: S, handle: fn(&mut S, &Req) -> Resp) -> Server<S> {
    let state = Arc::new(Mutex::new(state));
    let log = Arc::new(Mutex::new(Vec::new()));
    let faults: Arc<Mutex<Vec<Fault>>> = Arc::new(Mutex::new(Vec::new()));
    let (st, lg, fs) = (state.clone(), log.clone(), faults.clone());
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let (st, lg, fs) = (st.clone(), lg.clone(), fs.clone());
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap().to_vec();
            let req = Req {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or_default().to_owned(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                    .collect(),
                body,
            };
            lg.lock().unwrap().push(req.clone());
            let fault = {
                let mut faults = fs.lock().unwrap();
                let hit = faults
                    .iter_mut()
                    .find(|f| f.times > 0 && f.method == req.method && req.path.contains(f.path_contains));
                hit.map(|f| {
                    f.times -= 1;
                    f.clone()
                })
            };
            let (status, headers, body) = match fault {
                Some(f) => {
                    let headers = f.retry_after.map(|r| vec![("retry-after", r.to_owned())]).unwrap_or_default();
                    (f.status, headers, json!({"message": "injected"}).to_string())
                }
                None => handle(&mut st.lock().unwrap(), &req),
            };
            let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
            response.headers_mut().insert("content-type", "application/json".parse().unwrap());
            for (k, v) in headers {
                response.headers_mut().insert(k, v.parse().unwrap());
            }
            response
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server { url, state, log, faults }
}

/// `200` with a JSON body.
pub fn ok(body: Value) -> Resp {
    (200, vec![], body.to_string())
}

/// Vanta: tokens for client `cid`/`csecret`, the custom resource type
/// `res-1` (replace-all), the document `doc-1` (uploads, submit).
#[derive(Debug, Default)]
pub struct VantaState {
    /// `expires_in` of the tokens to issue, in order (then 3600).
    pub lifetimes: Vec<u64>,
    pub issued: usize,
    pub valid: Vec<String>,
    /// Revoke the token on its next use (answers 401).
    pub revoke_next: bool,
    pub resources: BTreeMap<String, Value>,
    pub uploads: Vec<String>,
    pub submits: usize,
}

/// The handler of [`VantaState`] for [`serve`].
pub fn vanta_handle(s: &mut VantaState, r: &Req) -> Resp {
    if r.path == "/oauth/token" {
        let b = r.json();
        if b["client_id"] != "cid" || b["client_secret"] != "csecret" || b["grant_type"] != "client_credentials" {
            return (401, vec![], json!({"error": "invalid_client"}).to_string());
        }
        s.issued += 1;
        let token = format!("tok-{}", s.issued);
        s.valid.push(token.clone());
        let lifetime = if s.lifetimes.is_empty() { 3600 } else { s.lifetimes.remove(0) };
        return ok(json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}));
    }
    let token = r.header("authorization").and_then(|h| h.strip_prefix("Bearer ")).unwrap_or_default().to_owned();
    if !s.valid.contains(&token) {
        return (401, vec![], json!({"error": "invalid_token"}).to_string());
    }
    if s.revoke_next {
        s.revoke_next = false;
        s.valid.retain(|t| *t != token);
        return (401, vec![], json!({"error": "token_expired"}).to_string());
    }
    match (r.method.as_str(), r.path.as_str()) {
        ("PUT", "/v1/resources/custom_resource") => {
            let b = r.json();
            if b["resourceId"] != "res-1" {
                return (404, vec![], json!({"error": "unknown resourceId"}).to_string());
            }
            // Replace-all: the set sent is the set held.
            s.resources = b["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| (x["uniqueId"].as_str().unwrap().to_owned(), x.clone()))
                .collect();
            ok(json!({"success": true}))
        }
        ("GET", "/v1/documents/doc-1/uploads") => {
            let data: Vec<Value> = s.uploads.iter().map(|f| json!({"id": f, "fileName": f})).collect();
            ok(json!({"results": {"data": data, "pageInfo": {"hasNextPage": false, "endCursor": null}}}))
        }
        ("POST", "/v1/documents/doc-1/uploads") => {
            let text = r.text();
            let Some(name) = text.split("filename=\"").nth(1).and_then(|t| t.split('"').next()) else {
                return (400, vec![], json!({"error": "no file"}).to_string());
            };
            s.uploads.push(name.to_owned());
            ok(json!({"id": name, "fileName": name}))
        }
        ("POST", "/v1/documents/doc-1/submit") => {
            s.submits += 1;
            ok(json!({"success": true}))
        }
        _ => (404, vec![], json!({"error": "no such endpoint"}).to_string()),
    }
}
