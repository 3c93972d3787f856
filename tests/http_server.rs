//! The HTTP server's limits and addresses (issue 10, item 10), against a running service on
//! 127.0.0.1 with raw TCP clients where HTTP clients would hide what happens: a request head
//! that never completes is closed after `http.header_read_timeout_ms`, a body that never
//! completes is answered 408 after `http.body_read_timeout_ms`; connections beyond
//! `http.max_connections` are refused and counted; the `Bearer` scheme is case-insensitive;
//! `http.admin_listen` moves the admin API and `/metrics` off `http.listen`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use firehose::app::ServiceOptions;
use firehose::cli::Server;
use firehose::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Far longer than any timeout configured here, far shorter than the 30 s default: a
/// connection still open after it was not closed by the server.
const DEADLINE: Duration = Duration::from_secs(10);

async fn started(tweak: impl FnOnce(&mut Config)) -> (firehose_sim::SimHandle, Server) {
    let sim = sim(1, |_| {}).await;
    let mut config = config_for(sim.local_addr(), &sim_channels(1));
    tweak(&mut config);
    let service = service(config, ServiceOptions::default()).await;
    (sim, service)
}

fn metric(service: &Server, name: &str, listener: &str) -> f64 {
    metric_value(
        &service.core().metrics.render(),
        &format!("{name}{{listener=\"{listener}\"}}"),
    )
}

/// Reads until the server closes the connection (EOF or reset); what it sent before, or
/// `None` if it was still open at the deadline.
async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(got),
            Ok(Err(e)) => panic!("read failed: {e}"),
        }
    }
}

/// One `GET path` on a fresh connection with `Connection: close`; the status code.
async fn status_of(addr: SocketAddr, path: &str, authorization: Option<&str>) -> u16 {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let auth = authorization
        .map(|a| format!("authorization: {a}\r\n"))
        .unwrap_or_default();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\n{auth}connection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
    let answer = read_until_closed(&mut stream)
        .await
        .expect("the server answers and closes");
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_that_never_completes_is_closed_after_the_header_read_timeout() {
    let (sim, service) = started(|c| c.http.header_read_timeout_ms = 300).await;
    let addr = service.http_addr();
    // A request line and one header, then nothing: the blank line never comes.
    let mut half = TcpStream::connect(addr).await.expect("connect");
    half.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    let answer = read_until_closed(&mut half)
        .await
        .expect("the server closes a connection whose headers do not arrive in time");
    assert!(
        !String::from_utf8_lossy(&answer).contains(" 200 "),
        "no answer to a request that never arrived: {answer:?}"
    );
    // A connection that sends nothing at all is closed the same way.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    assert!(
        read_until_closed(&mut silent).await.is_some(),
        "a silent connection is closed too"
    );
    wait_until("both timeouts are counted", DEADLINE, || {
        metric(&service, "firehose_http_header_timeouts_total", "main") == 2.0
    })
    .await;
    // A request that arrives in time is served as before.
    assert_eq!(status_of(addr, "/healthz", None).await, 200);
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_never_completes_is_answered_408_after_the_body_read_timeout() {
    let (sim, service) = started(|c| c.http.body_read_timeout_ms = 300).await;
    let addr = service.http_addr();
    let channel = &sim_channels(1)[0];
    // A rules PUT announces 100 bytes and sends 1, then nothing. The head arrived, so only
    // the body's deadline can end it.
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(
        format!(
            "PUT /v1/channels/{channel}/commands/!slow HTTP/1.1\r\nhost: x\r\n\
             authorization: Bearer {ADMIN_TOKEN}\r\ncontent-type: application/json\r\n\
             content-length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let answer = read_until_closed(&mut slow)
        .await
        .expect("answered and closed within the deadline");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(
        text.contains("http.body_read_timeout_ms"),
        "says why: {text}"
    );
    // A route that answers without reading the body does not wait for it: /eventsub without
    // a webhook secret refuses (404), and no body timeout is counted for it.
    let mut unread = TcpStream::connect(addr).await.expect("connect");
    unread
        .write_all(b"POST /eventsub HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
        .await
        .expect("write");
    let mut head = [0u8; 12];
    tokio::time::timeout(DEADLINE, unread.read_exact(&mut head))
        .await
        .expect("answered")
        .expect("read");
    assert_eq!(&head, b"HTTP/1.1 404");
    wait_until("the timeout is counted", DEADLINE, || {
        metric(&service, "firehose_http_body_timeouts_total", "main") == 1.0
    })
    .await;
    // A body that arrives in time is read as before (an invalid item: 400, not 408).
    let mut quick = TcpStream::connect(addr).await.expect("connect");
    quick
        .write_all(
            format!(
                "PUT /v1/channels/{channel}/commands/!quick HTTP/1.1\r\nhost: x\r\n\
                 authorization: Bearer {ADMIN_TOKEN}\r\nconnection: close\r\n\
                 content-length: 2\r\n\r\n{{}}"
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    let answer = read_until_closed(&mut quick).await.expect("answered");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert!(text.contains("invalid rule"), "{text}");
    assert_eq!(
        metric(&service, "firehose_http_body_timeouts_total", "main"),
        1.0
    );
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused_and_counted() {
    let (sim, service) = started(|c| c.http.max_connections = 2).await;
    let addr = service.http_addr();
    let first = TcpStream::connect(addr).await.expect("connect");
    let mut second = TcpStream::connect(addr).await.expect("connect");
    wait_until("two connections are open", DEADLINE, || {
        metric(&service, "firehose_http_connections_open", "main") == 2.0
    })
    .await;
    let mut third = TcpStream::connect(addr)
        .await
        .expect("the kernel accepts it");
    let answer = read_until_closed(&mut third)
        .await
        .expect("the server closes the connection over the limit");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
        "refused with a 503 or closed: {answer:?}"
    );
    assert_eq!(
        metric(&service, "firehose_http_connections_refused_total", "main"),
        1.0
    );
    // The connections within the limit are served.
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let served = read_until_closed(&mut second).await.expect("answered");
    assert!(
        String::from_utf8_lossy(&served).starts_with("HTTP/1.1 200"),
        "{served:?}"
    );
    // Once one closes, its slot is free again.
    drop(first);
    wait_until("the slots are free again", DEADLINE, || {
        metric(&service, "firehose_http_connections_open", "main") == 0.0
    })
    .await;
    assert_eq!(status_of(addr, "/healthz", None).await, 200);
    assert_eq!(
        metric(&service, "firehose_http_connections_refused_total", "main"),
        1.0
    );
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let (sim, service) = started(|_| {}).await;
    let addr = service.http_addr();
    let channel = &sim_channels(1)[0];
    let path = format!("/v1/channels/{channel}/rules");
    for scheme in ["Bearer", "bearer", "BEARER"] {
        assert_eq!(
            status_of(addr, &path, Some(&format!("{scheme} {ADMIN_TOKEN}"))).await,
            200,
            "{scheme}"
        );
    }
    assert_eq!(
        status_of(addr, &path, Some("bearer wrong-token")).await,
        401
    );
    assert_eq!(
        status_of(addr, &path, Some(&format!("Basic {ADMIN_TOKEN}"))).await,
        401,
        "another scheme is not a bearer token"
    );
    assert_eq!(status_of(addr, &path, None).await, 401);
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_admin_address_the_admin_api_and_metrics_move_there() {
    let (sim, service) = started(|c| {
        c.http.admin_listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let main = service.http_addr();
    let admin = service.admin_addr().expect("an admin address");
    assert_ne!(main, admin);
    assert_eq!(service.admin_api_addr(), admin);
    let channel = &sim_channels(1)[0];
    let rules = format!("/v1/channels/{channel}/rules");
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    // The public address: health and readiness only (and the OAuth and webhook intakes).
    assert_eq!(status_of(main, "/healthz", None).await, 200);
    assert_eq!(status_of(main, "/readyz", None).await, 200);
    assert_eq!(status_of(main, "/v1/channels", None).await, 404);
    assert_eq!(status_of(main, "/metrics", None).await, 404);
    assert_eq!(status_of(main, &rules, Some(&bearer)).await, 404);
    // The admin address: all of the admin API, the metrics, and health too.
    assert_eq!(status_of(admin, "/v1/channels", None).await, 200);
    assert_eq!(status_of(admin, "/metrics", None).await, 200);
    assert_eq!(status_of(admin, &rules, Some(&bearer)).await, 200);
    assert_eq!(status_of(admin, &rules, None).await, 401);
    assert_eq!(status_of(admin, "/healthz", None).await, 200);
    // The API's description goes with the admin API: not published on the public address.
    assert_eq!(status_of(main, "/openapi.json", None).await, 404);
    assert_eq!(status_of(admin, "/openapi.json", None).await, 200);
    let listed: serde_json::Value = reqwest::get(format!("http://{admin}/v1/channels"))
        .await
        .expect("GET /v1/channels")
        .json()
        .await
        .expect("json");
    assert_eq!(listed[0]["channel"], channel.as_str());
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("firehose_http_connections_open{listener=\"admin\"}"),
        "each listener has its own figures"
    );
    service.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_and_stops_listening() {
    let (sim, service) = started(|_| {}).await;
    let addr = service.http_addr();
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    wait_until("the connection is open", DEADLINE, || {
        metric(&service, "firehose_http_connections_open", "main") == 1.0
    })
    .await;
    tokio::time::timeout(DEADLINE, service.shutdown())
        .await
        .expect("shutdown does not wait for an idle connection");
    assert!(
        read_until_closed(&mut idle).await.is_some(),
        "the idle connection was closed"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "nothing listens any more"
    );
    sim.shutdown().await;
}
