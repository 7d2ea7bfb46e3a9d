//! A local stand-in for KIS that speaks its documented formats with its real example messages:
//! token and approval issuance (with the once-a-minute throttle), both current-price endpoints
//! (with the per-second budget), and the real-time WebSocket (registration answers, the
//! 41-registration limit, data frames, PINGPONG that must be answered). Tests steer it and read
//! what it saw.

use crate::Bar;
use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, Duration as ChronoDuration, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
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
/// FHKST03010100 (국내주식기간별시세, daily). The `output2` row is a real answer for 005930 on
/// 2026-08-20 (KIS's mock-trading domain, `FID_PERIOD_DIV_CODE=D`), quoted verbatim in a public
/// project's design notes (repository not identified) next to what the same calls showed: rows
/// come newest first, at most 100 per call, and `FID_ORG_ADJ_PRC=0` gives split-adjusted prices.
/// The envelope is KIS's success envelope; `output1` (the stock's summary) was not quoted and is
/// left out. Its keys equal the official field list (koreainvestment/open-trading-api,
/// examples_llm/domestic_stock/inquire_daily_itemchartprice).
pub const DOMESTIC_DAILY_REPLY: &str = r#"{"rt_cd":"0","msg_cd":"MCA00000","msg1":"정상처리 되었습니다.","output2":[{"stck_bsop_date":"20260820","stck_clpr":"271000","stck_oprc":"257000","stck_hgpr":"273000","stck_lwpr":"252500","acml_vol":"26095919","acml_tr_pbmn":"6961393123500","flng_cls_code":"00","prtt_rate":"0.00","mod_yn":"N","prdy_vrss_sign":"2","prdy_vrss":"23500","revl_issu_reas":""}]}"#;

/// FHKST03010200 / FHKST03010230 (주식당일분봉조회 / 주식일별분봉조회, minutes). No verbatim
/// real answer was found: the keys are the official field list (open-trading-api
/// examples_llm/domestic_stock/inquire_time_itemchartprice/chk_inquire_time_itemchartprice.py:
/// stck_bsop_date, stck_cntg_hour, stck_prpr, stck_oprc, stck_hgpr, stck_lwpr, cntg_vol,
/// acml_tr_pbmn), all strings, newest first; the values are this fake's (UNCONFIRMED), on the
/// day of the real daily row above. `stck_cntg_hour` is read as the minute's start.
pub const DOMESTIC_MINUTE_REPLY: &str = r#"{"rt_cd":"0","msg_cd":"MCA00000","msg1":"정상처리 되었습니다.","output2":[{"stck_bsop_date":"20260820","stck_cntg_hour":"153000","stck_prpr":"271000","stck_oprc":"271000","stck_hgpr":"271000","stck_lwpr":"271000","cntg_vol":"1402310","acml_tr_pbmn":"6961393123500"},{"stck_bsop_date":"20260820","stck_cntg_hour":"151900","stck_prpr":"270500","stck_oprc":"270000","stck_hgpr":"271000","stck_lwpr":"270000","cntg_vol":"51234","acml_tr_pbmn":"6581393123500"}]}"#;

/// HHDFS76240000 (해외주식 기간별시세, daily): the official Response Example of the KIS
/// developer portal's page for v1_해외주식-010 (TSLA, 2022), its first three rows verbatim,
/// as mirrored in a public repository's copy of the portal docs (repository not identified).
/// The portal's example omits the envelope; KIS's success envelope is added.
pub const OVERSEAS_DAILY_REPLY: &str = r#"{"rt_cd":"0","msg_cd":"MCA00000","msg1":"정상처리 되었습니다.","output1":{"rsym":"DNASTSLA","zdiv":"4","nrec":"100"},"output2":[{"xymd":"20220406","clos":"1045.7600","sign":"5","diff":"45.5000","rate":"-4.17","open":"1073.4700","high":"1079.0000","low":"1027.7000","tvol":"29782845","tamt":"31190274312","pbid":"1042.8900","vbid":"7","pask":"1043.2200","vask":"1"},{"xymd":"20220405","clos":"1091.2600","sign":"5","diff":"54.1900","rate":"-4.73","open":"1136.3000","high":"1152.8700","low":"1087.3000","tvol":"26691673","tamt":"29742125077","pbid":"1090.0000","vbid":"100","pask":"1090.5000","vask":"100"},{"xymd":"20220404","clos":"1145.4500","sign":"2","diff":"60.8600","rate":"+5.61","open":"1089.3800","high":"1149.9100","low":"1072.5300","tvol":"27392567","tamt":"30743176589","pbid":"1143.3000","vbid":"300","pask":"1143.6000","vask":"100"}]}"#;

/// HHDFS76950200 (해외주식분봉조회, minutes): the official Response Example of the portal's page
/// for v1_해외주식-030 (TSLA, 5-minute bars, 2024-02-22), `output1` and the first three rows
/// verbatim, from the same mirror; envelope added. Note `xhms` 160000 with a small volume after
/// the 155500 bar's large one: a bar is stamped with its start.
pub const OVERSEAS_MINUTE_REPLY: &str = r#"{"rt_cd":"0","msg_cd":"MCA00000","msg1":"정상처리 되었습니다.","output1":{"rsym":"DNASTSLA","zdiv":"4","stim":"093000","etim":"160000","sktm":"233000","ektm":"060000","next":"1","more":"0","nrec":"120"},"output2":[{"tymd":"20240222","xymd":"20240222","xhms":"160000","kymd":"20240223","khms":"060000","open":"197.3400","high":"197.4100","low":"197.2800","last":"197.4100","evol":"5695","eamt":"1123799"},{"tymd":"20240222","xymd":"20240222","xhms":"155500","kymd":"20240223","khms":"055500","open":"197.7200","high":"197.9900","low":"197.1700","last":"197.3800","evol":"1810184","eamt":"357462976"},{"tymd":"20240222","xymd":"20240222","xhms":"155000","kymd":"20240223","khms":"055000","open":"197.3800","high":"197.8200","low":"197.3400","last":"197.7320","evol":"1063296","eamt":"210158482"}]}"#;

/// The key and IV of the real ACK in examples/ws_control_messages.txt.
pub const AES_KEY: &str = "tvldhmfplvgcovaqrspclzhdotfzzequ";
pub const AES_IV: &str = "55ce3d099479ce11";

const PINGPONG: &str = r#"{"header":{"tr_id":"PINGPONG","datetime":"20230502221924"}}"#;

/// A domestic trade record of `code` at `price`, otherwise the real one.
pub fn domestic_record(code: &str, price: &str) -> String {
    with_fields(DOMESTIC_RECORD, &[(0, code), (2, price)])
}

/// A domestic trade record of `code` at `price` traded at `at` (its KST date and time fields),
/// otherwise the real one: for tests whose trades must read as happening now.
pub fn domestic_record_at(code: &str, price: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    // Korea keeps UTC+9 all year.
    let kst = at.naive_utc() + chrono::TimeDelta::hours(9);
    let (date, time) = (
        kst.format("%Y%m%d").to_string(),
        kst.format("%H%M%S").to_string(),
    );
    with_fields(
        DOMESTIC_RECORD,
        &[(0, code), (1, &time), (2, price), (33, &date)],
    )
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
    /// One-minute history per KRX code or US ticker, by the minute's start.
    minute_history: HashMap<String, BTreeMap<DateTime<Utc>, Bar>>,
    /// Daily history per code or ticker, by the market's own day.
    day_history: HashMap<String, BTreeMap<NaiveDate, Bar>>,
    /// Every chart call: its TR and query, in arrival order.
    chart_calls: Vec<(String, HashMap<String, String>)>,
    /// The Korean date the intraday chart TR serves; the real one unless a test fixes it.
    today: Option<NaiveDate>,
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
                minute_history: HashMap::new(),
                day_history: HashMap::new(),
                chart_calls: Vec::new(),
                today: None,
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
            .route(DOMESTIC_DAILY_PATH, get(domestic_daily))
            .route(DOMESTIC_TODAY_MINUTES_PATH, get(domestic_today_minutes))
            .route(DOMESTIC_DAY_MINUTES_PATH, get(domestic_day_minutes))
            .route(OVERSEAS_DAILY_PATH, get(overseas_daily))
            .route(OVERSEAS_MINUTES_PATH, get(overseas_minutes))
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

    /// One-minute chart history of a KRX code or US ticker (each minute by its start).
    pub fn set_minute_history(
        &self,
        symbol: &str,
        bars: impl IntoIterator<Item = (DateTime<Utc>, Bar)>,
    ) {
        self.shared
            .books()
            .minute_history
            .entry(symbol.into())
            .or_default()
            .extend(bars);
    }

    /// Daily chart history of a KRX code or US ticker, by the market's own day.
    pub fn set_day_history(&self, symbol: &str, bars: impl IntoIterator<Item = (NaiveDate, Bar)>) {
        self.shared
            .books()
            .day_history
            .entry(symbol.into())
            .or_default()
            .extend(bars);
    }

    /// Makes the intraday chart TR (FHKST03010200) serve `day` as today.
    pub fn set_today(&self, day: NaiveDate) {
        self.shared.books().today = Some(day);
    }

    /// The chart calls so far: each TR with its query.
    pub fn chart_calls(&self) -> Vec<(String, HashMap<String, String>)> {
        self.shared.books().chart_calls.clone()
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

const DOMESTIC_DAILY_PATH: &str = "/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice";
const DOMESTIC_TODAY_MINUTES_PATH: &str =
    "/uapi/domestic-stock/v1/quotations/inquire-time-itemchartprice";
const DOMESTIC_DAY_MINUTES_PATH: &str =
    "/uapi/domestic-stock/v1/quotations/inquire-time-dailychartprice";
const OVERSEAS_DAILY_PATH: &str = "/uapi/overseas-price/v1/quotations/dailyprice";
const OVERSEAS_MINUTES_PATH: &str =
    "/uapi/overseas-price/v1/quotations/inquire-time-itemchartprice";

const INPUT_ERROR: &str = r#"{"rt_cd":"1","msg_cd":"OPSQ2001","msg1":"ERROR INPUT FIELD"}"#;

fn korea() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).unwrap()
}

fn new_york() -> chrono_tz::Tz {
    chrono_tz::America::New_York
}

/// The first `output2` row of a fixture, as the template of the rows the fake writes.
fn row_template(fixture: &str) -> serde_json::Map<String, Value> {
    let reply: Value = serde_json::from_str(fixture).unwrap();
    reply["output2"][0].as_object().unwrap().clone()
}

fn reply_with(fixture: &str, rows: Vec<Value>, output1: Option<Value>) -> String {
    let mut reply: Value = serde_json::from_str(fixture).unwrap();
    reply["output2"] = Value::Array(rows);
    if let Some(output1) = output1 {
        reply["output1"] = output1;
    }
    reply.to_string()
}

/// Admits a chart call and records it.
fn admit_chart(
    shared: &Shared,
    headers: &HeaderMap,
    tr_id: &str,
    query: &HashMap<String, String>,
) -> Result<(), (StatusCode, String)> {
    admit(shared, headers, tr_id)?;
    shared
        .books()
        .chart_calls
        .push((tr_id.to_string(), query.clone()));
    Ok(())
}

fn param<'a>(
    query: &'a HashMap<String, String>,
    name: &str,
) -> Result<&'a str, (StatusCode, String)> {
    query
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| (StatusCode::OK, INPUT_ERROR.to_string()))
}

fn ymd_param(
    query: &HashMap<String, String>,
    name: &str,
) -> Result<NaiveDate, (StatusCode, String)> {
    NaiveDate::parse_from_str(param(query, name)?, "%Y%m%d")
        .map_err(|_| (StatusCode::OK, INPUT_ERROR.to_string()))
}

fn hms_param(
    query: &HashMap<String, String>,
    name: &str,
) -> Result<chrono::NaiveTime, (StatusCode, String)> {
    chrono::NaiveTime::parse_from_str(param(query, name)?, "%H%M%S")
        .map_err(|_| (StatusCode::OK, INPUT_ERROR.to_string()))
}

async fn domestic_daily(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let answer = admit_chart(&shared, &headers, "FHKST03010100", &query).and_then(|()| {
        if param(&query, "FID_PERIOD_DIV_CODE")? != "D" {
            return Err((StatusCode::OK, INPUT_ERROR.to_string()));
        }
        let code = param(&query, "FID_INPUT_ISCD")?.to_string();
        let first = ymd_param(&query, "FID_INPUT_DATE_1")?;
        let last = ymd_param(&query, "FID_INPUT_DATE_2")?;
        let template = row_template(DOMESTIC_DAILY_REPLY);
        let books = shared.books();
        let rows = books
            .day_history
            .get(&code)
            .into_iter()
            .flat_map(|days| days.range(first..=last).rev().take(100))
            .map(|(day, bar)| {
                let mut row = template.clone();
                row.insert(
                    "stck_bsop_date".into(),
                    json!(day.format("%Y%m%d").to_string()),
                );
                row.insert("stck_oprc".into(), json!(bar.open));
                row.insert("stck_hgpr".into(), json!(bar.high));
                row.insert("stck_lwpr".into(), json!(bar.low));
                row.insert("stck_clpr".into(), json!(bar.close));
                row.insert("acml_vol".into(), json!(bar.volume));
                Value::Object(row)
            })
            .collect();
        Ok((StatusCode::OK, reply_with(DOMESTIC_DAILY_REPLY, rows, None)))
    });
    answer.unwrap_or_else(|refusal| refusal)
}

/// Up to `limit` minutes of `code` on Korean `day` at or before `anchor`, newest first.
fn domestic_minute_rows(
    shared: &Shared,
    code: &str,
    day: NaiveDate,
    anchor: chrono::NaiveTime,
    limit: usize,
) -> Vec<Value> {
    let template = row_template(DOMESTIC_MINUTE_REPLY);
    let books = shared.books();
    books
        .minute_history
        .get(code)
        .into_iter()
        .flat_map(|minutes| minutes.iter().rev())
        .map(|(at, bar)| (at.with_timezone(&korea()).naive_local(), bar))
        .filter(|(local, _)| local.date() == day && local.time() <= anchor)
        .take(limit)
        .map(|(local, bar)| {
            let mut row = template.clone();
            row.insert(
                "stck_bsop_date".into(),
                json!(local.format("%Y%m%d").to_string()),
            );
            row.insert(
                "stck_cntg_hour".into(),
                json!(local.format("%H%M%S").to_string()),
            );
            row.insert("stck_oprc".into(), json!(bar.open));
            row.insert("stck_hgpr".into(), json!(bar.high));
            row.insert("stck_lwpr".into(), json!(bar.low));
            row.insert("stck_prpr".into(), json!(bar.close));
            row.insert("cntg_vol".into(), json!(bar.volume));
            Value::Object(row)
        })
        .collect()
}

async fn domestic_today_minutes(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let answer = admit_chart(&shared, &headers, "FHKST03010200", &query).and_then(|()| {
        let code = param(&query, "FID_INPUT_ISCD")?.to_string();
        let anchor = hms_param(&query, "FID_INPUT_HOUR_1")?;
        let today = shared
            .books()
            .today
            .unwrap_or_else(|| Utc::now().with_timezone(&korea()).date_naive());
        let rows = domestic_minute_rows(&shared, &code, today, anchor, 30);
        Ok((
            StatusCode::OK,
            reply_with(DOMESTIC_MINUTE_REPLY, rows, None),
        ))
    });
    answer.unwrap_or_else(|refusal| refusal)
}

async fn domestic_day_minutes(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let answer = admit_chart(&shared, &headers, "FHKST03010230", &query).and_then(|()| {
        let code = param(&query, "FID_INPUT_ISCD")?.to_string();
        let day = ymd_param(&query, "FID_INPUT_DATE_1")?;
        let anchor = hms_param(&query, "FID_INPUT_HOUR_1")?;
        let rows = domestic_minute_rows(&shared, &code, day, anchor, 120);
        Ok((
            StatusCode::OK,
            reply_with(DOMESTIC_MINUTE_REPLY, rows, None),
        ))
    });
    answer.unwrap_or_else(|refusal| refusal)
}

async fn overseas_daily(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let answer = admit_chart(&shared, &headers, "HHDFS76240000", &query).and_then(|()| {
        let exchange = param(&query, "EXCD")?.to_string();
        let symbol = param(&query, "SYMB")?.to_string();
        if param(&query, "GUBN")? != "0" {
            return Err((StatusCode::OK, INPUT_ERROR.to_string()));
        }
        let last = match param(&query, "BYMD")? {
            "" => Utc::now().with_timezone(&new_york()).date_naive(),
            _ => ymd_param(&query, "BYMD")?,
        };
        let template = row_template(OVERSEAS_DAILY_REPLY);
        let books = shared.books();
        let rows = books
            .day_history
            .get(&symbol)
            .into_iter()
            .flat_map(|days| days.range(..=last).rev().take(100))
            .map(|(day, bar)| {
                let mut row = template.clone();
                row.insert("xymd".into(), json!(day.format("%Y%m%d").to_string()));
                row.insert("open".into(), json!(bar.open));
                row.insert("high".into(), json!(bar.high));
                row.insert("low".into(), json!(bar.low));
                row.insert("clos".into(), json!(bar.close));
                row.insert("tvol".into(), json!(bar.volume));
                Value::Object(row)
            })
            .collect();
        let output1 = json!({"rsym": format!("D{exchange}{symbol}"), "zdiv": "4", "nrec": "100"});
        Ok((
            StatusCode::OK,
            reply_with(OVERSEAS_DAILY_REPLY, rows, Some(output1)),
        ))
    });
    answer.unwrap_or_else(|refusal| refusal)
}

async fn overseas_minutes(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let answer = admit_chart(&shared, &headers, "HHDFS76950200", &query).and_then(|()| {
        let exchange = param(&query, "EXCD")?.to_string();
        let symbol = param(&query, "SYMB")?.to_string();
        let limit: usize = param(&query, "NREC")?
            .parse()
            .ok()
            .filter(|n| (1..=120).contains(n))
            .ok_or_else(|| (StatusCode::OK, INPUT_ERROR.to_string()))?;
        if param(&query, "NMIN")? != "1" {
            return Err((StatusCode::OK, INPUT_ERROR.to_string()));
        }
        // The next key is the exchange's local time of the newest bar wanted.
        let until = match (param(&query, "NEXT")?, param(&query, "KEYB")?) {
            ("1", key) => Some(
                NaiveDateTime::parse_from_str(key, "%Y%m%d%H%M%S")
                    .map_err(|_| (StatusCode::OK, INPUT_ERROR.to_string()))?,
            ),
            _ => None,
        };
        let template = row_template(OVERSEAS_MINUTE_REPLY);
        let books = shared.books();
        let mut older = books
            .minute_history
            .get(&symbol)
            .into_iter()
            .flat_map(|minutes| minutes.iter().rev())
            .map(|(at, bar)| {
                (
                    at.with_timezone(&new_york()).naive_local(),
                    at.with_timezone(&korea()).naive_local(),
                    bar,
                )
            })
            .filter(|(local, _, _)| until.is_none_or(|until| *local <= until));
        let rows: Vec<Value> = older
            .by_ref()
            .take(limit)
            .map(|(local, korean, bar)| {
                let mut row = template.clone();
                row.insert("tymd".into(), json!(local.format("%Y%m%d").to_string()));
                row.insert("xymd".into(), json!(local.format("%Y%m%d").to_string()));
                row.insert("xhms".into(), json!(local.format("%H%M%S").to_string()));
                row.insert("kymd".into(), json!(korean.format("%Y%m%d").to_string()));
                row.insert("khms".into(), json!(korean.format("%H%M%S").to_string()));
                row.insert("open".into(), json!(bar.open));
                row.insert("high".into(), json!(bar.high));
                row.insert("low".into(), json!(bar.low));
                row.insert("last".into(), json!(bar.close));
                row.insert("evol".into(), json!(bar.volume));
                Value::Object(row)
            })
            .collect();
        let more = older.next().is_some();
        let output1 = json!({
            "rsym": format!("D{exchange}{symbol}"), "zdiv": "4", "stim": "093000", "etim": "160000",
            "sktm": "233000", "ektm": "060000", "next": if more { "1" } else { "0" }, "more": "0",
            "nrec": rows.len().to_string(),
        });
        Ok((
            StatusCode::OK,
            reply_with(OVERSEAS_MINUTE_REPLY, rows, Some(output1)),
        ))
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
