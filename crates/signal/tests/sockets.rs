//! Both sockets against clients that send too much: an oversized frame or message closes the
//! socket with 1009, an acknowledgement costs no more than what the socket sent, and error
//! replies quote only a prefix of what came in. The service goes on serving everyone else.
// Tests fail by panicking; an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::{spawn, token, ARRIVES_WITHIN};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(url: String) -> Ws {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("socket")
        .0
}

/// Reads until the server closes; the close code it gave.
async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        let message = tokio::time::timeout(ARRIVES_WITHIN, ws.next())
            .await
            .expect("the server answers or closes");
        match message {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("the socket failed before a close frame: {e}"),
            None => return None,
        }
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(ARRIVES_WITHIN, ws.next())
            .await
            .expect("a message arrives")
            .expect("the socket is open")
            .expect("the socket is healthy");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("closed by the server: {frame:?}"),
            _ => {}
        }
    }
}

async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_oversized_frame_closes_the_socket_with_1009_and_others_are_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let quotes = format!(
        "ws://{}/ws/stocks?token={}",
        app.app.asset_addr,
        token("alice")
    );

    let abusive = connect(quotes.clone()).await;
    let symbol = "A".repeat(1 << 20);
    let subscribe = json!({"type": "subscribe", "symbol": symbol}).to_string();
    // The frame is refused from its header: the client may still be writing when the answer
    // comes, so write and read at once.
    let (mut sink, mut stream) = abusive.split();
    let writer = tokio::spawn(async move {
        let _ = sink.send(Message::Text(subscribe.into())).await;
        sink
    });
    let code = loop {
        match tokio::time::timeout(ARRIVES_WITHIN, stream.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, Some(1009));
    let _ = writer.await;

    let mut polite = connect(quotes).await;
    send_json(
        &mut polite,
        json!({"type": "subscribe", "symbol": "005930"}),
    )
    .await;
    assert_eq!(next_json(&mut polite).await["status"], "success");
    app.app.stop().await;
}

#[tokio::test]
async fn a_message_fragmented_past_the_limit_closes_with_1009() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let mut ws = connect(format!(
        "ws://{}/api/v1/alerts/stream?token={}",
        app.app.alert_addr,
        token("alice")
    ))
    .await;
    // Frames within the frame limit, adding up past the message limit.
    let piece = vec![b'1'; 8 * 1024];
    ws.send(Message::Frame(Frame::message(
        b"{\"type\":\"ping\",\"x\":\"".to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .unwrap();
    for _ in 0..20 {
        if ws
            .send(Message::Frame(Frame::message(
                piece.clone(),
                OpCode::Data(Data::Continue),
                false,
            )))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(close_code(&mut ws).await, Some(1009));
    app.app.stop().await;
}

#[tokio::test]
async fn an_ack_costs_no_more_than_what_the_socket_sent() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let created = app
        .post(format!("{}/api/v1/rules", app.asset), "alice")
        .json(&json!({"instrument": "KRX:005930", "condition": "ABOVE", "level": "70000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let url = format!(
        "ws://{}/api/v1/alerts/stream?token={}",
        app.app.alert_addr,
        token("alice")
    );
    let mut ws = connect(url.clone()).await;
    app.tick("KRX:005930", "70100").await;
    let alert = next_json(&mut ws).await;
    assert_eq!(alert["type"], "alert");
    let id = alert["id"].as_i64().unwrap();

    // Thousands of ids on a socket that sent one alert: refused without touching the store.
    let many: Vec<i64> = (1..5_000).collect();
    send_json(&mut ws, json!({"type": "ack", "ids": many})).await;
    let refused = next_json(&mut ws).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("sent 1 alert"));
    // An id the socket did not send is not its to acknowledge.
    send_json(&mut ws, json!({"type": "ack", "id": id + 1000})).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "acked", "ids": []})
    );
    // The socket still answers, and its own alert is acknowledged.
    send_json(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "pong");
    send_json(&mut ws, json!({"type": "ack", "ids": [id]})).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "acked", "ids": [id]})
    );

    // A million ids is past the message limit: the socket is closed, nothing is parsed.
    let million: Vec<u32> = (1..=1_000_000).collect();
    let (mut sink, mut stream) = ws.split();
    let huge = json!({"type": "ack", "ids": million}).to_string();
    let writer = tokio::spawn(async move {
        let _ = sink.send(Message::Text(huge.into())).await;
    });
    let code = loop {
        match tokio::time::timeout(ARRIVES_WITHIN, stream.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, Some(1009));
    let _ = writer.await;
    // The acknowledged alert is not replayed on the next connection.
    let mut again = connect(url).await;
    send_json(&mut again, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut again).await["type"], "pong");
    app.app.stop().await;
}

#[tokio::test]
async fn socket_error_replies_quote_only_a_prefix_of_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(dir.path()).await;
    let mut ws = connect(format!(
        "ws://{}/ws/stocks?token={}",
        app.app.asset_addr,
        token("alice")
    ))
    .await;
    let symbol = "Q".repeat(12_000);
    send_json(&mut ws, json!({"type": "subscribe", "symbol": symbol})).await;
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["status"], "error");
    let message = reply["message"].as_str().unwrap();
    assert!(message.len() < 400, "{} bytes", message.len());
    app.app.stop().await;
}
