//! The binary as an operator runs it: what it writes to its log, what it leaves on disk, how it
//! refuses a bad configuration.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use common::{token, SECRET};
use futures::{SinkExt, StreamExt};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use support::free_port;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

const BINARY: &str = env!("CARGO_BIN_EXE_dontouch-signal");

/// The all-in-one binary on free ports over `dir`, logging to `dir/log` at `log_level`.
struct Running {
    child: Child,
    asset: u16,
    alert: u16,
}

async fn start(dir: &Path, log_level: &str) -> Running {
    let (asset, alert) = (free_port(), free_port());
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let mut child = Command::new(BINARY)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("SIGNAL_ASSET__BIND", format!("127.0.0.1:{asset}"))
        .env("SIGNAL_ALERT__BIND", format!("127.0.0.1:{alert}"))
        .env("SIGNAL_WEB__BIND", format!("127.0.0.1:{}", free_port()))
        .env("SIGNAL_AUTH__JWT_SECRET", SECRET)
        .env("SIGNAL_FEEDS__UPBIT", "false")
        .env("RUST_LOG", log_level)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let http = reqwest::Client::new();
    for _ in 0..600 {
        let up = http
            .get(format!("http://127.0.0.1:{alert}/health/live"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if let Some(exit) = child.try_wait().unwrap() {
            panic!("the binary exited ({exit}); its log: {}", read_log(dir));
        }
        if up {
            return Running {
                child,
                asset,
                alert,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the binary did not come up; its log: {}", read_log(dir));
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("log")).unwrap_or_default()
}

#[tokio::test]
async fn no_token_reaches_the_log_even_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = start(dir.path(), "trace").await;
    let alice = token("alice");
    let http = reqwest::Client::new();
    let asset = format!("http://127.0.0.1:{}", running.asset);

    let watchlist = http
        .get(format!("{asset}/api/v1/watchlist"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(watchlist.status(), 200);
    let in_query = http
        .get(format!("{asset}/asset/search?keyword=x&token={alice}"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(in_query.status(), 200);
    let forged = format!("{alice}x");
    let refused = http
        .get(format!("{asset}/api/v1/rules"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let (mut socket, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{}/ws/socket/alert?token={alice}",
        running.alert
    ))
    .await
    .unwrap();
    socket
        .send(Message::Text(
            serde_json::json!({"type": "auth", "token": alice})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    socket.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.child.kill().await.unwrap();

    let log = read_log(dir.path());
    // The log did record these requests in detail: it is the place a token would have landed.
    assert!(log.contains("/api/v1/watchlist"), "{log}");
    assert!(log.contains("TRACE"), "not a trace log");
    let signature = alice.rsplit('.').next().unwrap();
    // A displayed WebSocket frame writes its payload in hexadecimal.
    let in_hex: String = alice.bytes().map(|b| format!("{b:02x}")).collect();
    for (what, secret) in [
        ("token", alice.as_str()),
        ("signature", signature),
        ("token in hexadecimal", in_hex.as_str()),
    ] {
        assert!(
            !log.contains(secret),
            "the {what} is in the log: {}",
            log.lines().find(|l| l.contains(secret)).unwrap_or_default()
        );
    }
}

#[tokio::test]
async fn the_databases_and_the_secret_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut running = start(dir.path(), "info").await;
    let data = dir.path().join("data");
    running.child.kill().await.unwrap();
    // The token command generates the secret file on a fresh data directory.
    let fresh = dir.path().join("fresh");
    let status = Command::new(BINARY)
        .arg("--data-dir")
        .arg(&fresh)
        .args(["token", "alice"])
        .stdout(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success());

    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&data)
        .unwrap()
        .chain(std::fs::read_dir(&fresh).unwrap())
    {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", entry.path().display());
        checked.push(entry.file_name().to_string_lossy().into_owned());
    }
    for expected in ["asset.db", "alert.db", "jwt-secret"] {
        assert!(checked.iter().any(|f| f == expected), "{checked:?}");
    }
    let dir_mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
}

#[tokio::test]
async fn a_wildcard_cors_origin_is_a_configuration_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BINARY)
        .arg("--data-dir")
        .arg(dir.path())
        .env("SIGNAL_CORS_ALLOWED_ORIGINS", r#"["*"]"#)
        .env("SIGNAL_FEEDS__UPBIT", "false")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert_eq!(output.status.code(), Some(1), "it exits, it does not abort");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("cors_allowed_origins"), "{stderr}");
    assert!(
        stderr.contains("`*` (any origin) is not allowed"),
        "{stderr}"
    );
}

/// A memory figure of a process from /proc (`VmRSS`: resident now; `VmHWM`: the peak), in
/// bytes.
fn memory_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[tokio::test]
async fn oversized_socket_messages_leave_no_memory_behind() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    let dir = tempfile::tempdir().unwrap();
    let mut running = start(dir.path(), "warn").await;
    let pid = running.child.id().unwrap();
    let before = memory_bytes(pid, "VmRSS:");
    let quotes = format!(
        "ws://127.0.0.1:{}/ws/stocks?token={}",
        running.asset,
        token("mallory")
    );
    // Forty sockets at once, each sending 16 MB: in one frame, or in 64 KB fragments.
    let abusers = (0..40).map(|i| {
        let url = quotes.clone();
        tokio::spawn(async move {
            let Ok((socket, _)) = tokio_tungstenite::connect_async(url).await else {
                return;
            };
            let (mut sink, mut stream) = socket.split();
            let writer = tokio::spawn(async move {
                if i % 2 == 0 {
                    let text = "x".repeat(16 << 20);
                    let _ = sink.send(Message::Text(text.into())).await;
                } else {
                    let first =
                        Frame::message(vec![b'x'; 64 << 10], OpCode::Data(Data::Text), false);
                    if sink.send(Message::Frame(first)).await.is_err() {
                        return;
                    }
                    for _ in 0..255 {
                        let piece = Frame::message(
                            vec![b'x'; 64 << 10],
                            OpCode::Data(Data::Continue),
                            false,
                        );
                        if sink.send(Message::Frame(piece)).await.is_err() {
                            return;
                        }
                    }
                }
            });
            // Until the server closes the socket.
            while let Ok(Some(Ok(_))) =
                tokio::time::timeout(Duration::from_secs(30), stream.next()).await
            {}
            writer.abort();
        })
    });
    for abuser in abusers.collect::<Vec<_>>() {
        abuser.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (peak, after) = (memory_bytes(pid, "VmHWM:"), memory_bytes(pid, "VmRSS:"));
    running.child.kill().await.unwrap();
    let mb = |bytes: u64| bytes >> 20;
    // Refused from their first bytes, the messages never sit in the server's memory.
    assert!(
        peak.saturating_sub(before) < 64 << 20,
        "the server's memory peaked {} MB above its {} MB while refusing 640 MB",
        mb(peak.saturating_sub(before)),
        mb(before)
    );
    assert!(
        after.saturating_sub(before) < 32 << 20,
        "the server kept {} MB after the sockets closed",
        mb(after.saturating_sub(before))
    );
}
