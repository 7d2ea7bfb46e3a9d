//! The API contract, checked by a tool that is not ours: each service serves its OpenAPI document,
//! and schemathesis (tests/external/schemathesis.toml) runs every operation of both documents
//! against the running system, signed in as a real user, with inputs drawn from the schemas and
//! with malformed ones. Every answer must be in the document: no 5xx, no body that breaks its
//! schema, no error that is not the JSON error body.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::{settings, spawn_with, token, TestApp};
use serde_json::{json, Value};

/// A system for the contract run: the per-address rate limit far above what the run sends (it
/// stays in the path, so a 429 would still be checked against the document), and resources of the
/// user's own so that operations on them find something.
async fn system(dir: &std::path::Path) -> TestApp {
    let mut settings = settings(dir);
    settings.http.requests_per_second_per_address = 100_000;
    settings.http.burst_per_address = 100_000;
    settings.accounts.signin_attempts_per_address = 100_000;
    spawn_with(settings).await
}

const USER: &str = "contract@example.com";

/// Signs `USER` up through the API, as a person would, and gives them a rule, a watchlist entry
/// and an alert. Answers a bearer token for them: a token, not the session cookie, so that a
/// generated sign-out or password change does not end the run's own identity.
async fn real_user(app: &TestApp) -> String {
    let signed_up = app
        .http
        .post(format!("{}/api/v1/auth/signup", app.alert))
        .json(&json!({"email": USER, "password": "correct horse battery staple"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_up.status(), 201);
    let created = app
        .post(format!("{}/api/v1/rules", app.asset), USER)
        .json(&json!({"instrument": "KRX:005930", "condition": "ABOVE", "level": "71900"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let watched = app
        .put(
            format!("{}/api/v1/watchlist/UPBIT:KRW-BTC", app.asset),
            USER,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(watched.status(), 201);
    app.tick("KRX:005930", "72000").await;
    app.history_len_eventually(USER, 1).await;
    token(USER)
}

/// Runs schemathesis over the document at `base`/openapi.json; panics with its report when any
/// check fails.
async fn schemathesis(service: &str, base: &str, token: &str) {
    let python = std::env::var("DONTOUCH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/external/schemathesis.toml"
    );
    // Run elsewhere than the sources: whatever the tool writes stays out of the tree.
    let scratch = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(&python)
        .current_dir(scratch.path())
        .args(["-m", "schemathesis.cli", "--config-file", config, "run"])
        .arg(format!("{base}/openapi.json"))
        .args(["--url", base])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // Hypothesis's checks of its own generation, not of the services: on two shared cores an
        // operation with few valid inputs (a path id, a short body) could be aborted as discarding
        // too many generated cases or generating too slowly, now one operation, now another.
        .args(["--suppress-health-check", "filter_too_much,too_slow"])
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap_or_else(|e| panic!("{python} runs ({e}); needs tests/external/requirements.txt"));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found the {service} breaking its contract ({python}):\n{report}"
    );
    println!("{service}:\n{report}");
}

/// What `schemathesis` checks, and that it reaches every operation, rests on the documents being
/// complete: each has the security schemes, the error body, and the routes of its service.
async fn documents_are_complete(app: &TestApp) {
    for (base, paths) in [
        (
            &app.asset,
            &[
                "/api/v1/rules/{id}",
                "/asset/search",
                "/ws/stocks",
                "/health/ready",
            ][..],
        ),
        (
            &app.alert,
            &[
                "/api/v1/alerts/{id}",
                "/alert",
                "/api/v1/auth/signin",
                "/api/v1/channels/{id}",
                "/ws/socket/alert",
            ][..],
        ),
    ] {
        let document: Value = app
            .http
            .get(format!("{base}/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
        for path in paths {
            assert!(document["paths"][path].is_object(), "{base}: no {path}");
        }
        for scheme in ["bearer", "session", "csrf", "token"] {
            assert!(
                document["components"]["securitySchemes"][scheme].is_object(),
                "{base}: no {scheme}"
            );
        }
        assert!(document["components"]["schemas"]["ErrorBody"].is_object());
    }
}

#[tokio::test]
async fn both_services_keep_the_contract_of_their_openapi_documents() {
    let dir = tempfile::tempdir().unwrap();
    let app = system(dir.path()).await;
    documents_are_complete(&app).await;
    let token = real_user(&app).await;
    schemathesis("Asset Service", &app.asset, &token).await;
    schemathesis("Alert Service", &app.alert, &token).await;
    app.app.stop().await;
}

#[tokio::test]
async fn the_documents_and_interactive_docs_are_served_on_each_port_and_the_one_origin() {
    let dir = tempfile::tempdir().unwrap();
    let app = system(dir.path()).await;
    for (base, title) in [
        (app.asset.clone(), "Asset Service"),
        (app.alert.clone(), "Alert Service"),
        (format!("{}/asset-api", app.web), "Asset Service"),
        (format!("{}/alert-api", app.web), "Alert Service"),
    ] {
        let document: Value = app
            .http
            .get(format!("{base}/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            document["info"]["title"].as_str().unwrap().contains(title),
            "{base}"
        );
        // `/docs` sends the browser on to `docs/` relative to where it is, so the page stays
        // under the prefix on the one origin, and the page finds the document relative to itself.
        let no_redirects = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let moved = no_redirects
            .get(format!("{base}/docs"))
            .send()
            .await
            .unwrap();
        assert!(moved.status().is_redirection(), "{base}/docs");
        assert_eq!(moved.headers()["location"], "docs/");
        let page = app.http.get(format!("{base}/docs")).send().await.unwrap();
        assert_eq!(page.status(), 200, "{base}/docs/");
        assert!(page.text().await.unwrap().contains("swagger-ui"));
        let initializer = app
            .http
            .get(format!("{base}/docs/swagger-initializer.js"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(initializer.contains("../openapi.json"), "{initializer}");
    }
    app.app.stop().await;
}
