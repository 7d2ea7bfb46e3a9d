//! The local stand-ins of what notification channels talk to (a Standard Webhooks receiver, a web
//! push service, the Telegram Bot API, an SMTP sink), each a Python process of
//! `tests/external/channel_stand_ins.py` written against other people's libraries, so they check
//! our side of each protocol rather than echo it.

#![allow(dead_code)] // each test file uses its own subset

use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long to wait for something a stand-in must receive: long enough for any machine, not a
/// speed requirement.
pub const RECEIVED_WITHIN: Duration = Duration::from_secs(60);

pub struct StandIn {
    // Held for its standard input: the stand-in exits when it closes.
    _child: Child,
    pub host: String,
    pub http: u16,
    pub smtp: Option<u16>,
    client: reqwest::Client,
}

impl StandIn {
    /// Starts a stand-in (`webhook`, `push`, `telegram` or `smtp`) with extra arguments.
    pub async fn start(kind: &str, args: &[&str]) -> StandIn {
        let python = std::env::var("DONTOUCH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let host = args
            .windows(2)
            .find(|pair| pair[0] == "--host")
            .map(|pair| pair[1].to_string())
            .unwrap_or_else(|| "127.0.0.1".into());
        let mut child = Command::new(&python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/external/channel_stand_ins.py"
            ))
            .arg(kind)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{python} starts ({e}); needs tests/external/requirements.txt")
            });
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        tokio::time::timeout(RECEIVED_WITHIN, BufReader::new(stdout).read_line(&mut line))
            .await
            .expect("the stand-in starts")
            .expect("the stand-in prints its ports");
        let ports: Value =
            serde_json::from_str(line.strip_prefix("READY ").unwrap_or_else(|| {
                panic!("unexpected first line from the {kind} stand-in: {line}")
            }))
            .unwrap();
        StandIn {
            _child: child,
            host,
            http: ports["http"].as_u64().unwrap() as u16,
            smtp: ports["smtp"].as_u64().map(|p| p as u16),
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.host, self.http)
    }

    pub async fn state(&self) -> Value {
        self.client
            .get(self.url("/_control/state"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn control(&self, action: &str, body: Value) -> Value {
        self.client
            .post(self.url(&format!("/_control/{action}")))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls the stand-in's state until `done` holds; panics with `what` and the state if it
    /// never does.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + RECEIVED_WITHIN;
        loop {
            let state = self.state().await;
            if done(&state) {
                return state;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{what} never happened; the stand-in saw: {state:#}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Event ids an accepted webhook body carries: one alert's, or a digest's several.
pub fn carried(body: &Value) -> Vec<String> {
    match body["type"].as_str() {
        Some("alert.triggered") => vec![body["data"]["eventId"].as_str().unwrap().to_string()],
        Some("alert.digest") => body["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["eventId"].as_str().unwrap().to_string())
            .collect(),
        other => panic!("unexpected webhook type {other:?}"),
    }
}
