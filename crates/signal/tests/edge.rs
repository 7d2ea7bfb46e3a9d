//! The HTTP edge as an abusive or careless client meets it: every refusal is a JSON error with
//! a bounded cost, and what a refused client held (connections, memory) is given back.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::{settings, spawn, spawn_with, token, ARRIVES_WITHIN};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One raw HTTP/1.1 answer: status, headers (lower-case names) and the body as JSON.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The answer is the JSON error body every error has.
    fn assert_json_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{self:?}"
        );
        assert_eq!(self.body["error"], code, "{self:?}");
        assert!(self.body["message"].is_string(), "{self:?}");
    }
}

/// Reads one answer from `stream` (the server closes or sends content-length).
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = tokio::time::timeout(ARRIVES_WITHIN, stream.read(&mut chunk))
            .await
            .expect("an answer arrives")
            .expect("the connection reads");
        assert!(
            n > 0,
            "closed without an answer: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(bytes[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .expect("a content-length");
    let mut body = bytes[head_end + 4..].to_vec();
    while body.len() < length {
        let n = tokio::time::timeout(ARRIVES_WITHIN, stream.read(&mut chunk))
            .await
            .expect("the body arrives")
            .unwrap();
        assert!(n > 0, "closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    }
}

/// Sends `request` as raw bytes on a new connection and reads the answer.
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_answer(&mut stream).await
}

/// Waits until the server closes `stream` (reads to the end).
async fn closed_by_server(stream: &mut TcpStream) {
    let mut sink = Vec::new();
    tokio::time::timeout(ARRIVES_WITHIN, stream.read_to_end(&mut sink))
        .await
        .expect("the server closes the connection")
        .ok();
}

#[tokio::test]
async fn every_error_status_is_answered_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let (asset, alert) = (app.app.asset_addr, app.app.alert_addr);
    let bearer = format!("Authorization: Bearer {}\r\n", token("alice"));

    exchange(asset, b"GET /no/such/route HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .assert_json_error(404, "not_found");
    let not_allowed = exchange(
        asset,
        b"DELETE /asset/top-movers HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    not_allowed.assert_json_error(405, "method_not_allowed");
    assert!(not_allowed
        .header("allow")
        .is_some_and(|a| a.contains("GET")));

    let long_target = format!(
        "GET /asset/search?keyword={} HTTP/1.1\r\nHost: x\r\n{bearer}\r\n",
        "a".repeat(10_000)
    );
    exchange(asset, long_target.as_bytes())
        .await
        .assert_json_error(414, "uri_too_long");
    let big_headers = format!(
        "GET /health/live HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    exchange(asset, big_headers.as_bytes())
        .await
        .assert_json_error(431, "headers_too_large");
    // Far past what the server reads of a head: hyper refuses it before any route sees it.
    let huge_headers = format!(
        "GET /health/live HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
        "c".repeat(200_000)
    );
    exchange(alert, huge_headers.as_bytes())
        .await
        .assert_json_error(431, "headers_too_large");
    let many_headers = format!(
        "GET /health/live HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..150)
            .map(|i| format!("X-H{i}: 1\r\n"))
            .collect::<String>()
    );
    exchange(alert, many_headers.as_bytes())
        .await
        .assert_json_error(431, "headers_too_large");
    exchange(
        asset,
        b"GET /asset/search?keyword=<script>alert(1)</script> HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .assert_json_error(400, "bad_request");
    exchange(alert, b"GARBAGE\r\n\r\n")
        .await
        .assert_json_error(400, "bad_request");

    // A socket route asked for without the upgrade handshake.
    for (addr, path) in [(asset, "/ws/stocks"), (alert, "/ws/socket/alert")] {
        let plain = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{bearer}\r\n");
        let answer = exchange(addr, plain.as_bytes()).await;
        assert!(answer.status == 400 || answer.status == 426, "{answer:?}");
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert!(
            answer.body["message"].as_str().unwrap().contains("upgrade"),
            "{answer:?}"
        );
    }
    app.app.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_413_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut limited = settings(dir.path());
    limited.http.max_body_bytes = 1024;
    let app = spawn_with(limited).await;
    let rules = format!("{}/api/v1/rules", app.asset);
    let note = "n".repeat(4096);
    let response = app
        .post(&rules, "alice")
        .json(&serde_json::json!({"instrument": "KRX:005930", "condition": "ABOVE", "level": "1", "note": note}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large");

    // Without a length up front, the body is cut off where it passes the limit.
    let chunk = format!("200\r\n{}\r\n", " ".repeat(512));
    let chunked = format!(
        "POST /api/v1/rules HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
        token("alice"),
        chunk.repeat(8)
    );
    exchange(app.app.asset_addr, chunked.as_bytes())
        .await
        .assert_json_error(413, "payload_too_large");
    app.app.stop().await;
}

#[tokio::test]
async fn a_slow_head_is_answered_408_and_its_connection_is_given_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut limited = settings(dir.path());
    limited.http.header_read_timeout_ms = 300;
    limited.http.max_connections_per_address = 2;
    let app = spawn_with(limited).await;
    let addr = app.app.asset_addr;

    // Two connections dribble half a head; a third is refused while they hold the address's
    // share.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHo")
            .await
            .unwrap();
        slow.push(stream);
    }
    let refused = exchange(addr, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await;
    refused.assert_json_error(429, "rate_limited");

    for stream in &mut slow {
        let answer = read_answer(stream).await;
        answer.assert_json_error(408, "request_timeout");
        closed_by_server(stream).await;
    }
    // Their share is back: the address is served again.
    let served = exchange(addr, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(served.status, 200, "{served:?}");

    // A connection that says nothing at all is closed the same way.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    read_answer(&mut silent)
        .await
        .assert_json_error(408, "request_timeout");
    app.app.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut limited = settings(dir.path());
    limited.http.idle_timeout_ms = 300;
    let app = spawn_with(limited).await;
    let mut stream = TcpStream::connect(app.app.alert_addr).await.unwrap();
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut stream).await.status, 200);
    // The connection stays open for another request, then nothing comes: the server closes it.
    closed_by_server(&mut stream).await;
    app.app.stop().await;
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_json_with_retry_after_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut limited = settings(dir.path());
    limited.http.requests_per_second_per_address = 1;
    limited.http.burst_per_address = 3;
    let app = spawn_with(limited).await;
    let url = format!("{}/health/live", app.asset);

    let mut statuses = Vec::new();
    let mut refusal = None;
    for _ in 0..10 {
        let response = app.http.get(&url).send().await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let retry_after: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry_after >= 1);
            refusal = Some(response.json::<Value>().await.unwrap());
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    let refusal = refusal.expect("the flood is limited");
    assert_eq!(refusal["error"], "rate_limited");

    // Another address is not slowed by the first one's flood.
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let response = other
        .get(format!(
            "http://127.0.0.1:{}/health/live",
            app.app.asset_addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.app.stop().await;
}

#[tokio::test]
async fn error_messages_quote_only_a_short_prefix_of_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let level = "9".repeat(60_000);
    let response = app
        .post(format!("{}/api/v1/rules", app.asset), "alice")
        .json(
            &serde_json::json!({"instrument": "KRX:005930", "condition": "ABOVE", "level": level}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body = response.text().await.unwrap();
    assert!(body.len() < 500, "{} bytes: {}", body.len(), &body[..200]);

    let symbol = "Z".repeat(5000);
    let response = app
        .get(format!("{}/asset/{symbol}", app.asset), "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body = response.text().await.unwrap();
    assert!(body.len() < 500, "{} bytes", body.len());
    app.app.stop().await;
}
