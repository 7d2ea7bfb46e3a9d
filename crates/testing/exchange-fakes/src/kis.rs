//! A local stand-in for KIS that speaks its documented formats with its real example messages:
//! token and approval issuance (with the once-a-minute throttle), both current-price endpoints
//! (with the per-second budget), and the real-time WebSocket (registration answers, the
//! 41-registration limit, data frames, PINGPONG that must be answered). Tests steer it and read
//! what it saw.

use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::{Duration as ChronoDuration, FixedOffset, Utc};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// From examples/H0STCNT0_frames.txt (frame A), as one record.
pub const DOMESTIC_RECORD: &str = "005930^112616^62700^2^400^0.64^62700.41^62700^63000^62300^62700^62600^125^9694968^607878273600^25807^15918^-9889^93.01^4614191^4291558^1^0.45^63.03^090013^3^0^090646^5^-300^100741^2^400^20230324^20^N^71292^244009^2795345^2044512^0.16^5367918^180.61^0^^62700";
/// From examples/HDFSCNT0_frames.txt, the first frame, as one record.
pub const OVERSEAS_RECORD: &str = "DNASAAPL^AAPL^4^20230502^20230502^091913^20230502^221913^169.9200^170.1000^169.4200^169.8000^2^0.2100^+0.12^169.7700^169.7900^201^2^3^108470^18415181^24757^20519^82.88^1";
/// From examples/overseas_price_HHDFS00000300_example.json.
pub const OVERSEAS_PRICE_REPLY: &str = r#"{"rt_cd":"0","msg_cd":"MCA00000","msg1":"정상처리 되었습니다.","output":{"rsym":"DNASAAPL","zdiv":"4","base":"262.5200","pvol":"39803119","last":"260.2900","sign":"5","diff":"2.2300","rate":"-0.85","tvol":"49658626","tamt":"12902645154","ordy":"매도불가"}}"#;
/// The key and IV of the real ACK in examples/ws_control_messages.txt.
pub const AES_KEY: &str = "tvldhmfplvgcovaqrspclzhdotfzzequ";
pub const AES_IV: &str = "55ce3d099479ce11";

const PINGPONG: &str = r#"{"header":{"tr_id":"PINGPONG","datetime":"20230502221924"}}"#;

/// A domestic trade record of `code` at `price`, otherwise the real one.
pub fn domestic_record(code: &str, price: &str) -> String {
    with_fields(DOMESTIC_RECORD, &[(0, code), (2, price)])
}

/// An overseas trade record of `tr_key` (DNASAAPL) at `price`, otherwise the real one.
pub fn overseas_record(tr_key: &str, price: &str) -> String {
    with_fields(OVERSEAS_RECORD, &[(0, tr_key), (11, price)])
}

fn with_fields(record: &str, changes: &[(usize, &str)]) -> String {
    let mut fields: Vec<&str> = record.split('^').collect();
    for (at, value) in changes {
        fields[*at] = value;
    }
    fields.join("^")
}

/// A plain data frame of `records` (all of one TR).
pub fn frame(tr_id: &str, records: &[String]) -> String {
    format!("0|{tr_id}|{:03}|{}", records.len(), records.join("^"))
}

/// An encrypted data frame, sealed with the key and IV the fake's ACKs hand out.
pub fn encrypted_frame(tr_id: &str, records: &[String]) -> String {
    let sealed =
        cbc::Encryptor::<aes::Aes256>::new(AES_KEY.as_bytes().into(), AES_IV.as_bytes().into())
            .encrypt_padded_vec_mut::<Pkcs7>(records.join("^").as_bytes());
    let payload = base64::engine::general_purpose::STANDARD.encode(sealed);
    format!("1|{tr_id}|{:03}|{payload}", records.len())
}

#[derive(Clone, Debug)]
enum Command {
    Send(String),
    PingPong,
    Drop,
}

struct Books {
    token_requests: usize,
    tokens_issued: usize,
    last_issue: Option<Instant>,
    issue_window: Duration,
    token: Option<String>,
    token_expired: bool,
    approval_key: Option<String>,
    prices: HashMap<String, String>,
    rest_budget: Option<usize>,
    rest_calls: VecDeque<Instant>,
    busy_answers: usize,
    prices_answered: usize,
    max_registrations: usize,
    registered: BTreeSet<String>,
    sessions: usize,
    echoes: usize,
    silent_drops: usize,
    echo_timeout: Duration,
}

struct Shared {
    books: Mutex<Books>,
    commands: broadcast::Sender<Command>,
}

impl Shared {
    fn books(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct FakeKis {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeKis {
    pub async fn start() -> Self {
        let (commands, _) = broadcast::channel(256);
        let shared = Arc::new(Shared {
            books: Mutex::new(Books {
                token_requests: 0,
                tokens_issued: 0,
                last_issue: None,
                issue_window: Duration::from_secs(60),
                token: None,
                token_expired: false,
                approval_key: None,
                prices: HashMap::new(),
                rest_budget: None,
                rest_calls: VecDeque::new(),
                busy_answers: 0,
                prices_answered: 0,
                max_registrations: 41,
                registered: BTreeSet::new(),
                sessions: 0,
                echoes: 0,
                silent_drops: 0,
                echo_timeout: Duration::from_secs(1),
            }),
            commands,
        });
        let app = Router::new()
            .route("/oauth2/tokenP", post(token))
            .route("/oauth2/Approval", post(approval))
            .route(
                "/uapi/domestic-stock/v1/quotations/inquire-price",
                get(domestic_price),
            )
            .route(
                "/uapi/overseas-price/v1/quotations/price",
                get(overseas_price),
            )
            .route("/", get(upgrade))
            .with_state(shared.clone());
        let addr = crate::serve(app).await;
        Self { addr, shared }
    }

    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The REST price of a KRX code or US ticker.
    pub fn set_price(&self, symbol: &str, price: &str) {
        self.shared
            .books()
            .prices
            .insert(symbol.into(), price.into());
    }

    /// REST calls per second before EGW00201.
    pub fn set_rest_budget(&self, per_second: usize) {
        self.shared.books().rest_budget = Some(per_second);
    }

    pub fn set_issue_window(&self, window: Duration) {
        self.shared.books().issue_window = window;
    }

    pub fn set_max_registrations(&self, max: usize) {
        self.shared.books().max_registrations = max;
    }

    /// Somebody else (another deployment, a person with curl) just had a token issued for this
    /// app key: KIS refuses the next issuance until the window has passed.
    pub fn issue_elsewhere(&self) {
        let mut books = self.shared.books();
        books.tokens_issued += 1;
        books.last_issue = Some(Instant::now());
        books.token = Some("token-issued-elsewhere".into());
    }

    /// The issued token expires: the next REST call with it gets EGW00123.
    pub fn expire_token(&self) {
        self.shared.books().token_expired = true;
    }

    pub fn token_requests(&self) -> usize {
        self.shared.books().token_requests
    }

    pub fn tokens_issued(&self) -> usize {
        self.shared.books().tokens_issued
    }

    pub fn busy_answers(&self) -> usize {
        self.shared.books().busy_answers
    }

    /// Current-price requests answered with a price.
    pub fn prices_answered(&self) -> usize {
        self.shared.books().prices_answered
    }

    /// The tr_keys registered on the current session.
    pub fn registered(&self) -> BTreeSet<String> {
        self.shared.books().registered.clone()
    }

    pub fn sessions(&self) -> usize {
        self.shared.books().sessions
    }

    pub fn echoes(&self) -> usize {
        self.shared.books().echoes
    }

    pub fn silent_drops(&self) -> usize {
        self.shared.books().silent_drops
    }

    /// Sends `text` to every connected client.
    pub fn send(&self, text: impl Into<String>) {
        let _ = self.shared.commands.send(Command::Send(text.into()));
    }

    /// Sends PINGPONG; a client that does not echo it within the timeout is dropped.
    pub fn pingpong(&self) {
        let _ = self.shared.commands.send(Command::PingPong);
    }

    /// Drops every connection without a close frame, as a network failure would.
    pub fn drop_clients(&self) {
        let _ = self.shared.commands.send(Command::Drop);
    }
}

async fn token(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> impl IntoResponse {
    let mut books = shared.books();
    books.token_requests += 1;
    let complete = ["grant_type", "appkey", "appsecret"]
        .iter()
        .all(|k| body[k].as_str().is_some_and(|v| !v.is_empty()));
    if !complete {
        return (
            StatusCode::FORBIDDEN,
            Json(
                json!({"error_code":"EGW00103","error_description":"유효하지 않은 AppKey입니다."}),
            ),
        );
    }
    if books
        .last_issue
        .is_some_and(|at| at.elapsed() < books.issue_window)
    {
        return (
            StatusCode::FORBIDDEN,
            Json(
                json!({"error_description":"접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)","error_code":"EGW00133"}),
            ),
        );
    }
    books.tokens_issued += 1;
    books.last_issue = Some(Instant::now());
    books.token_expired = false;
    let token = format!("token-{}", books.tokens_issued);
    books.token = Some(token.clone());
    let kst = FixedOffset::east_opt(9 * 3600).unwrap();
    let expires = (Utc::now() + ChronoDuration::hours(24)).with_timezone(&kst);
    (
        StatusCode::OK,
        Json(json!({
            "access_token": token,
            "access_token_token_expired": expires.format("%Y-%m-%d %H:%M:%S").to_string(),
            "token_type": "Bearer",
            // Deliberately wrong, as seen in the wild: the stated expiry must win.
            "expires_in": 4000,
        })),
    )
}

async fn approval(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> impl IntoResponse {
    if body["secretkey"].as_str().is_none_or(str::is_empty) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error_code":"EGW00105"})),
        );
    }
    let key = "0f6b3e2a-approval-key-fake-0000000000".to_string();
    shared.books().approval_key = Some(key.clone());
    (StatusCode::OK, Json(json!({"approval_key": key})))
}

/// Checks what both price endpoints check; `Err` is the KIS answer to send instead.
fn admit(shared: &Shared, headers: &HeaderMap, tr_id: &str) -> Result<(), (StatusCode, String)> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let mut books = shared.books();
    if header("tr_id") != tr_id
        || header("appkey").is_empty()
        || header("appsecret").is_empty()
        || header("custtype") != "P"
    {
        return Err((StatusCode::INTERNAL_SERVER_ERROR, r#"{"rt_cd":"1","msg_cd":"IGW00007","msg1":"MCA 전문바디 구성 중 오류가 발생하였습니다."}"#.into()));
    }
    let presented = header("authorization")
        .strip_prefix("Bearer ")
        .unwrap_or("");
    if books.token.as_deref() != Some(presented) {
        return Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error_description":"유효하지 않은 token 입니다.","error_code":"EGW00121"}"#.into(),
        ));
    }
    if books.token_expired {
        return Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"rt_cd":"1","msg_cd":"EGW00123","msg1":"기간이 만료된 token 입니다."}"#.into(),
        ));
    }
    let now = Instant::now();
    while books
        .rest_calls
        .front()
        .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1))
    {
        books.rest_calls.pop_front();
    }
    if books
        .rest_budget
        .is_some_and(|budget| books.rest_calls.len() >= budget)
    {
        books.busy_answers += 1;
        return Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"rt_cd":"1","msg_cd":"EGW00201","msg1":"초당 거래건수를 초과하였습니다."}"#.into(),
        ));
    }
    books.rest_calls.push_back(now);
    Ok(())
}

fn price_of(shared: &Shared, symbol: &str) -> Result<String, (StatusCode, String)> {
    let mut books = shared.books();
    let price = books.prices.get(symbol).cloned();
    books.prices_answered += usize::from(price.is_some());
    price.ok_or_else(|| {
        (
            StatusCode::OK,
            r#"{"rt_cd":"1","msg_cd":"MCA00124","msg1":"조회할 자료가 없습니다"}"#.into(),
        )
    })
}

async fn domestic_price(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let answer = admit(&shared, &headers, "FHKST01010100").and_then(|()| {
        if query.get("FID_COND_MRKT_DIV_CODE").map(String::as_str) != Some("J") {
            return Err((StatusCode::OK, r#"{"rt_cd":"1","msg_cd":"OPSQ2001","msg1":"ERROR INPUT FIELD"}"#.into()));
        }
        let code = query.get("FID_INPUT_ISCD").cloned().unwrap_or_default();
        let price = price_of(&shared, &code)?;
        let reply = json!({
            "output": {
                "stck_shrn_iscd": code, "stck_prpr": price, "prdy_vrss": "-150", "prdy_vrss_sign": "5",
                "prdy_ctrt": "-0.21", "acml_vol": "1234567", "acml_tr_pbmn": "88888888800",
                "stck_oprc": "72000", "stck_hgpr": "72300", "stck_lwpr": "71500",
            },
            "rt_cd": "0", "msg_cd": "MCA00000", "msg1": "정상처리 되었습니다.",
        });
        Ok((StatusCode::OK, reply.to_string()))
    });
    answer.unwrap_or_else(|refusal| refusal)
}

async fn overseas_price(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let answer = admit(&shared, &headers, "HHDFS00000300").and_then(|()| {
        let (Some(exchange), Some(symbol), Some(_)) =
            (query.get("EXCD"), query.get("SYMB"), query.get("AUTH"))
        else {
            return Err((
                StatusCode::OK,
                r#"{"rt_cd":"1","msg_cd":"OPSQ2001","msg1":"ERROR INPUT FIELD"}"#.into(),
            ));
        };
        let price = price_of(&shared, symbol)?;
        let mut reply: Value = serde_json::from_str(OVERSEAS_PRICE_REPLY).unwrap();
        reply["output"]["last"] = json!(price);
        reply["output"]["rsym"] = json!(format!("D{exchange}{symbol}"));
        Ok((StatusCode::OK, reply.to_string()))
    });
    answer.unwrap_or_else(|refusal| refusal)
}

async fn upgrade(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> impl IntoResponse {
    ws.on_upgrade(move |socket| session(socket, shared))
}

async fn session(socket: WebSocket, shared: Arc<Shared>) {
    let mut commands = shared.commands.subscribe();
    shared.books().sessions += 1;
    let (mut tx, mut rx) = socket.split();
    let mut registered: BTreeSet<(String, String)> = BTreeSet::new();
    let mut awaiting_echo: Option<Instant> = None;
    loop {
        let echo_deadline =
            awaiting_echo.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            message = rx.next() => {
                let Some(Ok(message)) = message else { break };
                let Message::Text(text) = message else { continue };
                if text.as_str() == PINGPONG {
                    awaiting_echo = None;
                    shared.books().echoes += 1;
                    continue;
                }
                let answer = answer_registration(&shared, &mut registered, text.as_str());
                shared.books().registered = registered.iter().map(|(_, key)| key.clone()).collect();
                if tx.send(Message::text(answer)).await.is_err() { break }
            }
            command = commands.recv() => match command {
                Ok(Command::Send(text)) => if tx.send(Message::text(text)).await.is_err() { break },
                Ok(Command::PingPong) => {
                    awaiting_echo = Some(Instant::now() + shared.books().echo_timeout);
                    if tx.send(Message::text(PINGPONG)).await.is_err() { break }
                }
                Ok(Command::Drop) => break,
                Err(_) => {}
            },
            _ = tokio::time::sleep_until(echo_deadline), if awaiting_echo.is_some() => {
                shared.books().silent_drops += 1;
                break;
            }
        }
    }
    shared.books().registered.clear();
}

fn answer_registration(
    shared: &Shared,
    registered: &mut BTreeSet<(String, String)>,
    text: &str,
) -> String {
    let parsing_error = |reason: &str| {
        json!({"header":{"tr_id":"","tr_key":""},"body":{"rt_cd":"9","msg_cd":"OPSP9999","msg1":format!("JSON PARSING ERROR : {reason}")}}).to_string()
    };
    let Ok(request) = serde_json::from_str::<Value>(text) else {
        return parsing_error("invalid json");
    };
    let header = &request["header"];
    let approved = shared.books().approval_key.clone();
    if header["approval_key"].as_str() != approved.as_deref()
        || header["custtype"] != "P"
        || header["content-type"] != "utf-8"
    {
        return parsing_error("header not found");
    }
    let input = &request["body"]["input"];
    let (Some(tr_id), Some(tr_key)) = (input["tr_id"].as_str(), input["tr_key"].as_str()) else {
        return parsing_error("invalid tr_key");
    };
    let entry = (tr_id.to_string(), tr_key.to_string());
    let reply = |rt_cd: &str, msg_cd: &str, msg1: &str| {
        json!({"header":{"tr_id":tr_id,"tr_key":tr_key},"body":{"rt_cd":rt_cd,"msg_cd":msg_cd,"msg1":msg1}}).to_string()
    };
    match header["tr_type"].as_str() {
        Some("1") if registered.contains(&entry) => reply("1", "OPSP0002", "ALREADY IN SUBSCRIBE"),
        Some("1") if registered.len() >= shared.books().max_registrations => {
            reply("1", "OPSP0008", "MAX SUBSCRIBE OVER")
        }
        Some("1") => {
            registered.insert(entry);
            json!({"header":{"tr_id":tr_id,"tr_key":tr_key,"encrypt":"N"},"body":{"rt_cd":"0","msg_cd":"OPSP0000","msg1":"SUBSCRIBE SUCCESS","output":{"iv":AES_IV,"key":AES_KEY}}}).to_string()
        }
        Some("2") if registered.remove(&entry) => reply("0", "OPSP0001", "UNSUBSCRIBE SUCCESS"),
        Some("2") => reply("1", "OPSP0003", "UNSUBSCRIBE ERROR(not found!)"),
        _ => parsing_error("invalid tr_type"),
    }
}
