//! Local stand-ins for the exchanges. They cannot be reached from a test machine, and a test must
//! not depend on the internet, so these servers speak Upbit's and KIS's formats with the real
//! example messages of the exchange reference. The connectors' own tests and the whole system's
//! tests drive the same fakes, so both check the connectors against one picture of each exchange.
// Test support only: a poisoned lock or an unreadable fixture here is a failed test.
#![allow(clippy::unwrap_used)]

pub mod kis;
pub mod upbit;

pub use kis::FakeKis;
pub use upbit::FakeUpbit;

/// One bar of history the test gives a fake: its numbers as the exchange would write them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub open: String,
    pub high: String,
    pub low: String,
    pub close: String,
    pub volume: String,
}

impl Bar {
    pub fn new(open: &str, high: &str, low: &str, close: &str, volume: &str) -> Self {
        Self {
            open: open.into(),
            high: high.into(),
            low: low.into(),
            close: close.into(),
            volume: volume.into(),
        }
    }
}

/// Serves `app` on a port of the OS's choosing, in the background, for the rest of the test.
async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let addr = listener.local_addr().expect("a bound address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}
