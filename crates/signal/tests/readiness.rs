//! Readiness on the production topology: each service's `/health/ready` names every dependency
//! it checks, answers 503 naming the required one that is down (Redis stopped, the broker
//! frozen), and 200 again once it is back.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{json, Value};
use signal_test_servers::PrivateRedis;
use std::time::Duration;
use support::{start_alert, start_asset, topology_env, with, Broker, FakeUpbit};

async fn ready(port: u16) -> (u16, Value) {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/health/ready"))
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Asks until the answer has `status` (a second's answer is reused, and a dependency's client
/// takes a moment to notice it is gone or back).
async fn ready_until(port: u16, status: u16) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let (now, body) = ready(port).await;
        if now == status {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("readiness never answered {status}: {last}");
}

fn up(required: bool) -> Value {
    json!({"status": "up", "required": required})
}

#[tokio::test]
async fn readiness_names_each_dependency_and_fails_while_a_required_one_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start().await;
    let upbit = FakeUpbit::start().await;
    let mut redis = PrivateRedis::start().await;
    let env = with(
        &topology_env(&broker, &upbit, dir.path()).await,
        "SIGNAL_CACHE__URL",
        redis.url(),
    );
    let asset = start_asset(&env, dir.path()).await;
    let alert = start_alert(&env, dir.path()).await;

    let (status, body) = ready(asset.port).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "status": "ready",
            "checks": {
                "engine": up(true),
                "database": up(true),
                "redis": up(true),
                "kafka": up(true),
                // Nothing is wanted from it yet, so it holds no connection: not down.
                "upbit": up(false),
            },
            "down": [],
        })
    );
    let (status, body) = ready(alert.port).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["checks"],
        json!({"consumer": up(true), "database": up(true), "redis": up(true), "kafka": up(true)})
    );

    redis.stop().await;
    for port in [asset.port, alert.port] {
        let body = ready_until(port, 503).await;
        assert_eq!(body["status"], "not_ready");
        assert_eq!(body["down"], json!(["redis"]));
        assert_eq!(body["checks"]["redis"]["status"], "down");
        assert_eq!(body["checks"]["database"], up(true));
    }
    redis.start_again().await;
    for port in [asset.port, alert.port] {
        assert_eq!(ready_until(port, 200).await["down"], json!([]));
    }

    broker.pause();
    let body = ready_until(alert.port, 503).await;
    assert_eq!(body["down"], json!(["kafka"]), "{body}");
    broker.resume();
    ready_until(alert.port, 200).await;

    asset.kill().await;
    alert.kill().await;
}
