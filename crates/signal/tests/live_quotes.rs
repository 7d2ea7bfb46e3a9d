//! Live quotes to many sockets: every subscriber of an instrument gets the same quote, each in its
//! socket's dialect, and a reader that stops reading and resumes gets the current price, not
//! the backlog of prices that came while it was away.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::{spawn, token, Socket, ARRIVES_WITHIN};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

#[tokio::test]
async fn every_subscriber_gets_the_same_quote_in_its_own_dialect() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let original_url = format!(
        "ws://{}/ws/stocks?token={}",
        app.app.asset_addr,
        token("alice")
    );
    let mut api_sockets = Vec::new();
    let mut original_sockets = Vec::new();
    for _ in 0..8 {
        api_sockets.push(app.quote_socket("alice").await);
        let (ws, _) = tokio_tungstenite::connect_async(original_url.as_str())
            .await
            .unwrap();
        original_sockets.push(Socket::from(ws));
    }
    for socket in api_sockets.iter_mut().chain(original_sockets.iter_mut()) {
        socket
            .send(json!({"type": "subscribe", "symbol": "KRW-BTC"}))
            .await;
        assert_eq!(socket.next().await["status"], "success");
    }

    // The test feed's previous close is 70000: 69300 is 1 % down.
    app.tick("UPBIT:KRW-BTC", "69300").await;
    let mut api_updates = Vec::new();
    for socket in &mut api_sockets {
        api_updates.push(update_at(socket, "69300").await);
    }
    let mut original_updates = Vec::new();
    for socket in &mut original_sockets {
        original_updates.push(update_at(socket, "69300").await);
    }
    assert!(api_updates.iter().all(|u| *u == api_updates[0]));
    assert!(original_updates.iter().all(|u| *u == original_updates[0]));
    // The API speaks percent; the original spoke Upbit's fraction for crypto.
    assert_eq!(api_updates[0]["changeRate"], -1.0);
    assert_eq!(original_updates[0]["changeRate"], -0.01);
    for update in [&api_updates[0], &original_updates[0]] {
        assert_eq!(update["price"], 69300.0);
        assert_eq!(update["instrument"], "UPBIT:KRW-BTC");
    }
    app.app.stop().await;
}

/// The `price_update` with the exact price `price`, skipping earlier ones.
async fn update_at(socket: &mut Socket, price: &str) -> Value {
    loop {
        let update = socket.next_of("price_update").await;
        if update["priceExact"] == price {
            return update;
        }
    }
}

/// Prices pushed while the reader is stalled: as messages, several times what the kernel's
/// buffers on both ends would hold if the server kept writing them.
const PRICES_WHILE_STALLED: u32 = 3_000;

/// Price messages a resumed reader may get before the current one: what its own receive buffer
/// took before it stalled (at the kernel's minimum, about 2 KB: 7 or so), the one the server's
/// kernel still holds unsent, and the one being written when the socket stopped taking writes.
/// Without conflation in the server, every price pushed would be there.
const STALE_AT_MOST: usize = 16;

#[tokio::test]
async fn a_stalled_reader_gets_the_current_price_on_resuming_not_a_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let mut reader = reader_with_small_buffer(&format!(
        "ws://{}/api/v1/quotes/stream?token={}",
        app.app.asset_addr,
        token("alice")
    ))
    .await;
    reader
        .send(Message::Text(
            json!({"type": "subscribe", "symbol": "KRW-BTC"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut reader).await["status"], "success");

    // The reader stops reading while the market trades.
    for step in 0..PRICES_WHILE_STALLED {
        app.tick("UPBIT:KRW-BTC", &(60_000 + step).to_string())
            .await;
        // The service runs on this test's thread: it sends each price before the next comes.
        tokio::task::yield_now().await;
    }
    app.tick("UPBIT:KRW-BTC", "99999").await;
    quote_eventually(&app, 99999.0).await;

    // It resumes: the current price comes at once, not after thousands of stale ones.
    let mut stale = Vec::new();
    loop {
        let update = next_json(&mut reader).await;
        if update["type"] != "price_update" {
            continue;
        }
        if update["priceExact"] == "99999" {
            break;
        }
        stale.push(update["priceExact"].as_str().unwrap().to_string());
    }
    assert!(
        stale.len() <= STALE_AT_MOST,
        "{} stale prices before the current one: {stale:?}",
        stale.len()
    );
    app.app.stop().await;
}

/// A quote socket whose client takes as little into its receive buffer as the kernel allows, as
/// a client that stalls holds only what its buffer took.
async fn reader_with_small_buffer(url: &str) -> WebSocketStream<TcpStream> {
    let address = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    // The kernel raises this to its minimum; set before connecting, so the window starts small.
    socket.set_recv_buffer_size(1).unwrap();
    let stream = socket.connect(address).await.unwrap();
    tokio_tungstenite::client_async(url, stream)
        .await
        .unwrap()
        .0
}

async fn next_json(ws: &mut WebSocketStream<TcpStream>) -> Value {
    loop {
        let message = tokio::time::timeout(ARRIVES_WITHIN, ws.next())
            .await
            .expect("a message arrives")
            .expect("the socket is open")
            .expect("the socket is healthy");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Waits until the service's quote of KRW-BTC is `price`: every tick before it has been taken.
async fn quote_eventually(app: &common::TestApp, price: f64) {
    for _ in 0..200 {
        let quote: Value = app
            .get_json(format!("{}/asset/KRW-BTC", app.asset), "alice")
            .await;
        if quote["price"] == price {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the quote never reached {price}");
}
