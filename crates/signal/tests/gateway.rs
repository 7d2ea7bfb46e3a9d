//! The one origin: the web app and both services' routes and sockets on one address, as a
//! browser uses them.

#![allow(clippy::unwrap_used)]

mod common;

use common::{spawn, token, Socket};
use dontouch_signal::gateway::{RouteTable, Upstream};
use serde_json::{json, Value};

#[tokio::test]
async fn the_app_is_served_compressed_with_its_pages_falling_back_to_index() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;

    let index = app.http.get(format!("{}/", app.web)).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert!(index.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(index.headers()["cache-control"], "no-cache");
    assert!(index.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    let html = index.text().await.unwrap();
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("index.html loads a script");

    // A page of the app, not a file: the same index.html.
    let page = app
        .http
        .get(format!("{}/i/KRX:005930", app.web))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.text().await.unwrap(), html);

    let plain = app
        .http
        .get(format!("{}{script}", app.web))
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert!(plain.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let etag = plain.headers()["etag"].clone();
    let plain = plain.bytes().await.unwrap();

    let brotli = app
        .http
        .get(format!("{}{script}", app.web))
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(brotli.headers()["content-encoding"], "br");
    let compressed = brotli.bytes().await.unwrap();
    assert!(compressed.len() < plain.len() / 2);
    let mut decoded = Vec::new();
    brotli::BrotliDecompress(&mut compressed.as_ref(), &mut decoded).unwrap();
    assert_eq!(decoded, plain);

    let gzip = app
        .http
        .get(format!("{}{script}", app.web))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
    let mut decoded = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(gzip.bytes().await.unwrap().as_ref()),
        &mut decoded,
    )
    .unwrap();
    assert_eq!(decoded, plain);

    let unchanged = app
        .http
        .get(format!("{}{script}", app.web))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), 304);

    let missing = app
        .http
        .get(format!("{}/assets/missing-0000.js", app.web))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"], "not_found");
    app.app.stop().await;
}

#[tokio::test]
async fn every_routed_path_reaches_its_service_and_unknown_api_paths_get_json() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let table = RouteTable::builtin().unwrap();
    for route in table.routes() {
        let through_gateway = app
            .get(format!("{}{}/probe", app.web, route.path), "alice")
            .send()
            .await
            .unwrap();
        let status = through_gateway.status();
        let body = through_gateway.text().await.unwrap();
        let direct = match route.upstream {
            Upstream::Asset => &app.asset,
            Upstream::Alert => &app.alert,
            Upstream::Nowhere => {
                assert_eq!(status, 404, "{}", route.path);
                let error: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(error["error"], "not_found");
                continue;
            }
        };
        let probe = format!("{}/probe", route.path);
        let forwarded = route.forwarded_path(&probe);
        let answer = app
            .get(format!("{direct}{forwarded}"), "alice")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{}", route.path);
        assert_eq!(answer.text().await.unwrap(), body, "{}", route.path);
    }

    // Real answers through the one origin, as the app asks for them.
    let found: Vec<Value> = app
        .get_json(
            format!("{}/api/v1/instruments?q=삼성전자", app.web),
            "alice",
        )
        .await;
    assert_eq!(found[0]["id"], "KRX:005930");
    let history: Vec<Value> = app.get_json(format!("{}/alert", app.web), "alice").await;
    assert!(history.is_empty());
    // The services' own pages under their prefixes, the prefix removed.
    let live = app
        .http
        .get(format!("{}/asset-api/health/live", app.web))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    app.app.stop().await;
}

#[tokio::test]
async fn both_sockets_work_through_the_one_origin() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let ws = app.web.replacen("http", "ws", 1);
    let connect = |path: &str| {
        let url = format!("{ws}{path}?token={}", token("alice"));
        async move {
            let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            Socket::from(ws)
        }
    };
    let mut quotes = connect("/ws/stocks").await;
    quotes
        .send(json!({"type": "subscribe", "symbol": "KRX:005930"}))
        .await;
    assert_eq!(quotes.next().await["status"], "success");
    app.tick("KRX:005930", "71500").await;
    assert_eq!(quotes.next_of("price_update").await["priceExact"], "71500");

    let mut alerts = connect("/ws/socket/alert").await;
    alerts.send(json!({"type": "ping"})).await;
    assert_eq!(alerts.next().await["type"], "pong");
    app.app.stop().await;
}
