//! `dontouch-signal listen USER`: a small alert-socket client for trying the system from a
//! terminal. It prints each alert as it arrives and acknowledges it, as an app would.

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

pub async fn listen(alert_url: &str, token: &str) -> anyhow::Result<()> {
    let url = format!(
        "{}/api/v1/alerts/stream?token={token}",
        alert_url.trim_end_matches('/')
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .with_context(|| format!("connecting to {alert_url}"))?;
    eprintln!("listening for alerts on {alert_url} (Ctrl-C to stop)");
    while let Some(message) = socket.next().await {
        let Message::Text(text) = message.context("alert socket failed")? else {
            continue;
        };
        let alert: Value = serde_json::from_str(&text).context("unexpected message")?;
        if alert["type"] != "alert" {
            continue;
        }
        println!(
            "{} {} {} {} reached at {} ({}){}",
            alert["triggeredAt"].as_str().unwrap_or("?"),
            alert["instrument"].as_str().unwrap_or("?"),
            alert["condition"].as_str().unwrap_or("?"),
            alert["level"].as_str().unwrap_or("?"),
            alert["price"].as_str().unwrap_or("?"),
            if alert["simulated"] == true {
                "simulated"
            } else {
                "live"
            },
            if alert["replayed"] == true {
                ", delivered late"
            } else {
                ""
            },
        );
        let ack = serde_json::json!({ "type": "ack", "id": alert["id"] });
        socket.send(Message::Text(ack.to_string().into())).await?;
    }
    Ok(())
}
