//! The OpenAPI description of the HTTP API (`http::openapi`): the served `/openapi.json` is
//! the committed `docs/openapi.json`; every operation it describes is routed, enforces the
//! security it names, and answers only statuses it documents; and no route is registered
//! around the description.

mod common;

use std::collections::BTreeSet;

use common::*;
use firehose::app::ServiceOptions;
use firehose::cli::Server;
use serde_json::Value;

const COMMITTED: &str = "docs/openapi.json";
const REGENERATE: &str = "cargo run -p firehose-cli -- openapi > docs/openapi.json";

fn committed() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{COMMITTED} cannot be read ({e}); create it: {REGENERATE}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{COMMITTED} is not JSON: {e}"))
}

/// The `(METHOD, path)` pairs a document describes.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .map(|method| (method.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated: Value =
        serde_json::from_str(&firehose::http::openapi::document_json()).expect("JSON");
    let committed = committed();
    let (ours, theirs) = (operations(&generated), operations(&committed));
    assert_eq!(
        ours.difference(&theirs).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routes missing from {COMMITTED}; regenerate it: {REGENERATE}"
    );
    assert_eq!(
        theirs.difference(&ours).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "{COMMITTED} describes routes the service no longer has; regenerate it: {REGENERATE}"
    );
    assert!(
        generated == committed,
        "{COMMITTED} differs from what the handlers describe; regenerate it: {REGENERATE}"
    );
    assert_eq!(generated["openapi"], "3.1.0");
}

/// Every route registration in `src/http/` goes through utoipa-axum's `routes!` (which adds
/// the route's description): a plain axum `.route(...)`, `.nest(...)` or `.route_service(...)`
/// would serve a route the description does not have. The web console (`src/http/console/`,
/// HTML pages under `/ui`, not an API) is the one exception and is not read here; its routes
/// are tested by `tests/console.rs`.
#[test]
fn no_route_is_registered_around_the_description() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("src/http") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("source");
        for (n, line) in source.lines().enumerate() {
            for call in [
                ".route(",
                ".route_service(",
                ".nest(",
                ".nest_service(",
                ".fallback(",
            ] {
                assert!(
                    !line.contains(call),
                    "{}:{}: `{call}` registers a route outside the OpenAPI description; \
                     annotate the handler with #[utoipa::path] and register it with routes!",
                    path.display(),
                    n + 1
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 5, "read {checked} files of src/http");
}

/// A concrete path for a described one: each `{param}` gets a value that routes.
fn concrete(path: &str, channel: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{login}" => channel.to_string(),
            "{id}" => "123456789012345678".to_string(),
            "{kind}" => "commands".to_string(),
            "{name}" => "!nosuchcommand".to_string(),
            "{platform}" => "twitch".to_string(),
            "{user_id}" => "4242".to_string(),
            other if other.starts_with('{') => panic!("no sample value for {other} in {path}"),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn call(
    http: &reqwest::Client,
    service: &Server,
    method: &str,
    path: &str,
    token: bool,
) -> (u16, String) {
    let url = format!("http://{}{}", service.http_addr(), path);
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = http.request(method, url);
    if token {
        request = request.bearer_auth(ADMIN_TOKEN);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_described_operation_is_served_as_described() {
    let sim = sim(1, |_| {}).await;
    let channels = sim_channels(1);
    let service = service(
        config_for(sim.local_addr(), &channels),
        ServiceOptions::default(),
    )
    .await;
    let http = reqwest::Client::new();

    // Served without a token, and the same as the committed file.
    let served = http
        .get(format!("http://{}/openapi.json", service.http_addr()))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.headers()["content-type"],
        "application/json",
        "served as JSON"
    );
    let document: Value = served.json().await.expect("JSON");
    assert!(
        document == committed(),
        "the served description differs from {COMMITTED}; regenerate it: {REGENERATE}"
    );

    let mut protected = 0;
    let mut open = 0;
    // Parts last: every other operation on the channel runs while it is joined.
    let mut ops: Vec<_> = operations(&document).into_iter().collect();
    ops.sort_by_key(|(method, path)| {
        (
            method == "DELETE" && path == "/v1/channels/{login}",
            path.clone(),
        )
    });
    for (method, path) in ops {
        let operation = &document["paths"][&path][method.to_lowercase()];
        let secured = operation["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("admin_token").is_some()));
        let documented: BTreeSet<u16> = operation["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .map(|s| s.parse().expect("a status"))
            .collect();
        let target = concrete(&path, &channels[0]);
        let (status, body) = call(&http, &service, &method, &target, false).await;
        if secured {
            protected += 1;
            // Only a matched route reaches the token check: 401 also proves it is routed.
            assert_eq!(status, 401, "{method} {target} without the token: {body}");
            let (status, body) = call(&http, &service, &method, &target, true).await;
            assert!(
                documented.contains(&status),
                "{method} {target} with the token answered {status} ({body}), not one of {documented:?}"
            );
        } else {
            open += 1;
            assert!(
                documented.contains(&status),
                "{method} {target} answered {status} ({body}), not one of {documented:?}"
            );
            assert!(
                !(status == 404 && body.is_empty()),
                "{method} {target} is described but not routed"
            );
        }
    }
    assert!(protected >= 14, "{protected} protected operations");
    assert!(open >= 6, "{open} open operations");

    // And what is not described is not served.
    let (status, _) = call(&http, &service, "GET", "/v1/nothing-here", true).await;
    assert_eq!(status, 404);
    service.shutdown().await;
    sim.shutdown().await;
}
