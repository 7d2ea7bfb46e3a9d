//! Layered configuration: built-in defaults, then a TOML file, then `SIGNAL_`-prefixed
//! environment variables (`__` separates sections: `SIGNAL_ASSET__BIND=0.0.0.0:9082`), then
//! command-line flags. Every adapter is chosen by a URL.

use anyhow::Context;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the SQLite files and the generated token secret live.
    pub data_dir: PathBuf,
    /// Run on the simulated market instead of live exchange data.
    pub demo: bool,
    pub asset: AssetSettings,
    pub alert: AlertSettings,
    /// The one origin of the all-in-one binary: the web app and both services' routes.
    pub web: WebSettings,
    pub auth: AuthSettings,
    /// Built-in accounts (sign-up and sign-in on the Alert Service).
    pub accounts: AccountSettings,
    pub bus: BusSettings,
    pub cache: CacheSettings,
    pub simulation: SimulationSettings,
    pub feeds: FeedSettings,
    /// Market holidays (KRX and US); sessions and weekends are built in.
    pub calendar: signal_domain::CalendarConfig,
    /// Upbit connection details (public data; no key needed).
    pub upbit: signal_upbit::UpbitConfig,
    /// KIS Open API credentials and limits; KIS data is on when this section is set.
    pub kis: Option<signal_kis::KisConfig>,
    /// Notification channels beyond the socket: web push, webhooks, Telegram, email.
    pub channels: signal_channels::ChannelsConfig,
    /// Origins allowed to call the APIs from a browser; empty allows none.
    pub cors_allowed_origins: Vec<String>,
    /// What one connection, address or user may ask of the HTTP servers.
    pub http: HttpSettings,
    /// Networks of the reverse proxies in front of the services (`10.0.0.2/32`,
    /// `172.18.0.0/16`), whose `X-Forwarded-For` names the client; anyone else's is ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `text` or `json`.
    pub log_format: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssetSettings {
    pub bind: SocketAddr,
    /// Defaults to a SQLite file in the data directory.
    pub database_url: Option<String>,
    pub max_active_rules_per_user: usize,
    /// How long published alert events stay in the outbox before they are deleted.
    pub outbox_retention_hours: u64,
    /// When the bus turns out to have lost events it had acknowledged (a cluster replaced or
    /// restarted empty, the alerts topic deleted), the events sent within this many minutes are
    /// published again; the Alert Service keeps one of each. Events sent earlier are taken to
    /// have been consumed already. Capped by the retention.
    pub outbox_resend_minutes: u64,
    /// How often the feeds that list their markets (Upbit) are asked again, so new listings
    /// join the catalog without a restart.
    pub listing_refresh_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertSettings {
    pub bind: SocketAddr,
    /// Defaults to a SQLite file in the data directory.
    pub database_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSettings {
    /// Where the all-in-one binary serves the web app and routes the services' paths to them
    /// (the standalone services leave this to a reverse proxy).
    pub bind: SocketAddr,
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret. Prefer `jwt_secret_file` or the environment; never commit it.
    pub jwt_secret: Option<String>,
    pub jwt_secret_file: Option<PathBuf>,
    /// The claim that names the user: `sub`, or `email` for the original gateway's tokens.
    pub user_claim: String,
    /// When set, every token must name this issuer (`iss`); this system's own tokens do.
    pub issuer: Option<String>,
    /// When not empty, every token must name one of these audiences (`aud`); this system's own
    /// tokens name the first.
    pub audience: Vec<String>,
    /// Seconds a token is still taken after its `exp`, and before its `nbf`: the clocks of the
    /// issuer and the service differ a little. A socket closes this long after its token's `exp`.
    pub leeway_seconds: u64,
    /// An identity provider's public keys (a JWKS URL, e.g.
    /// `https://id.example/.well-known/jwks.json`): tokens it signs with RS256 or ES256 are
    /// taken besides HS256 tokens of the secret.
    pub jwks_url: Option<String>,
    /// A key set older than this many seconds is fetched again before it is used, so a key the
    /// provider removed stops working within it.
    pub jwks_max_age_seconds: u64,
    /// Fetches of the key set happen at most once per this many seconds, however many tokens
    /// name a key it does not hold (a key the provider just added is fetched on its first
    /// token).
    pub jwks_min_refresh_seconds: u64,
    /// Gateway mode (off by default): the user named by a gateway that verified the token, for
    /// services that only that gateway can reach. See [`signal_web::gateway`].
    pub gateway: signal_web::GatewayConfig,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwt_secret_file", &self.jwt_secret_file)
            .field("user_claim", &self.user_claim)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_seconds", &self.leeway_seconds)
            .field("jwks_url", &self.jwks_url)
            .field("jwks_max_age_seconds", &self.jwks_max_age_seconds)
            .field("jwks_min_refresh_seconds", &self.jwks_min_refresh_seconds)
            .field("gateway", &self.gateway)
            .finish()
    }
}

/// Built-in accounts: people sign up with an email and a password and get the same tokens the
/// `token` command prints, in a session cookie. Switch them off where tokens come from another
/// identity provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountSettings {
    pub enabled: bool,
    /// How long a sign-in lasts.
    pub session_days: u32,
    pub min_password_length: usize,
    /// Sign-in attempts per account, and per client address, within `signin_window_seconds`;
    /// beyond them a client waits (429 with Retry-After).
    pub signin_attempts_per_account: u32,
    pub signin_attempts_per_address: u32,
    pub signin_window_seconds: u64,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            session_days: 30,
            min_password_length: 12,
            signin_attempts_per_account: 10,
            signin_attempts_per_address: 50,
            signin_window_seconds: 300,
        }
    }
}

/// Limits of the HTTP servers (both services), each answered with a JSON error when reached.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// A request's head (request line and headers) must arrive whole within this many
    /// milliseconds of its first byte, and a new connection must send its first head within it.
    pub header_read_timeout_ms: u64,
    /// A connection on which no byte moves for this many milliseconds is closed: an idle
    /// keep-alive connection, a request body that stalls, a client that stops reading.
    pub idle_timeout_ms: u64,
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections from one address (trusted proxies excepted: they carry many clients).
    pub max_connections_per_address: usize,
    /// Largest request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Longest request target (path and query), in bytes (414 beyond).
    pub max_uri_bytes: usize,
    /// Largest request head (request line and headers), in bytes (431 beyond).
    pub max_header_bytes: usize,
    /// Requests per second from one client address, sustained (0: unlimited).
    pub requests_per_second_per_address: u32,
    /// Requests one client address may send at once above the sustained rate.
    pub burst_per_address: u32,
    /// Requests per second from one user, sustained, on the routes and sockets that identify
    /// them (0: unlimited). Counted beside the address's rate.
    pub requests_per_second_per_user: u32,
    /// Requests one user may send at once above the sustained rate.
    pub burst_per_user: u32,
    /// Largest WebSocket frame a client may send, in bytes (the socket closes with 1009).
    pub max_socket_frame_bytes: usize,
    /// Largest WebSocket message a client may send, fragments together (closes with 1009).
    pub max_socket_message_bytes: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            // Longer than the 60 s for which reverse proxies (nginx among them) keep idle
            // upstream connections, so the proxy, not this server, closes them.
            idle_timeout_ms: 75_000,
            max_connections: 10_000,
            max_connections_per_address: 256,
            max_body_bytes: 64 * 1024,
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
            requests_per_second_per_address: 200,
            burst_per_address: 400,
            requests_per_second_per_user: 100,
            burst_per_user: 200,
            max_socket_frame_bytes: 64 * 1024,
            max_socket_message_bytes: 64 * 1024,
        }
    }
}

impl HttpSettings {
    /// The per-user request rate; None when it is off.
    pub fn user_rate_limit(&self) -> Option<signal_web::UserRateLimit> {
        signal_web::UserRateLimit::new(self.requests_per_second_per_user, self.burst_per_user)
    }

    pub fn socket_limits(&self) -> signal_web::SocketLimits {
        signal_web::SocketLimits {
            max_frame_bytes: self.max_socket_frame_bytes,
            max_message_bytes: self.max_socket_message_bytes,
        }
    }
}

/// Which live market-data sources run (outside demo mode).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedSettings {
    /// Upbit's public quotation API: crypto prices with no key.
    pub upbit: bool,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self { upbit: true }
    }
}

/// The event bus between the services.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusSettings {
    /// `memory://` (both services in one process) or `kafka://host:9092[,host:9092...]`.
    pub url: String,
    /// Triggered alerts, keyed by user; its dead-letter topic is `<alerts_topic>.dlq`.
    pub alerts_topic: String,
    /// Market-data change events, keyed by instrument.
    pub market_data_topic: String,
    /// Each instrument's market data is published at most once per this interval, with its
    /// newest quote.
    pub market_data_interval_ms: u64,
    pub partitions: i32,
    pub replication: i32,
    /// The Alert Service's consumer group: every instance joins it.
    pub consumer_group: String,
    /// How long a publish waits for the broker before the outbox tries again later.
    pub delivery_timeout_ms: u64,
    /// Caps messages per produced batch (unset: librdkafka's default). Set 1 on brokers that
    /// mis-serve a fetch starting inside a batch, such as tansu 0.6.
    pub producer_batch_messages: Option<u32>,
    /// How long the producers hold a message for others to batch with (`linger.ms`); each
    /// alert waits this long before it leaves.
    pub producer_linger_ms: u64,
    /// The longest the broker may hold the Alert Service's fetch while nothing is new
    /// (`fetch.wait.max.ms`). Apache Kafka answers as soon as an alert arrives, so this only
    /// paces an idle consumer; tansu 0.6 holds every fetch this long, so there it adds to every
    /// alert's latency: set 5 to 10.
    pub consumer_fetch_wait_ms: u64,
    /// The triggered-alert schema version producers write: 2 (per-rule channels, every
    /// condition's parameters, the message template), or 1 while consumers of the first version
    /// remain (see docs/events.md). Consumers read both.
    pub alert_schema_version: u16,
}

/// Shared state between instances.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// `memory://` (one instance) or `redis://host:6379[/db]`.
    pub url: String,
    /// Prepended to every key and channel, so deployments can share one Redis.
    pub key_prefix: String,
    /// The longest any Redis call waits (connecting included) before it fails and its caller
    /// moves on without it.
    pub timeout_ms: u64,
}

impl Default for BusSettings {
    fn default() -> Self {
        Self {
            url: "memory://".into(),
            alerts_topic: "signal.alerts.triggered".into(),
            market_data_topic: "signal.market.quotes".into(),
            market_data_interval_ms: 1_000,
            partitions: 6,
            replication: 1,
            consumer_group: "alert-service".into(),
            delivery_timeout_ms: 30_000,
            producer_batch_messages: None,
            producer_linger_ms: 1,
            consumer_fetch_wait_ms: 100,
            alert_schema_version: signal_domain::TRIGGERED_ALERT_SCHEMA_VERSION,
        }
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            url: "memory://".into(),
            key_prefix: "signal:".into(),
            timeout_ms: 1_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulationSettings {
    /// 1.0 is the normal rhythm.
    pub speed: f64,
    /// Fixes the simulated price paths.
    pub seed: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            demo: false,
            asset: AssetSettings::default(),
            alert: AlertSettings::default(),
            web: WebSettings::default(),
            auth: AuthSettings::default(),
            accounts: AccountSettings::default(),
            bus: BusSettings::default(),
            cache: CacheSettings::default(),
            simulation: SimulationSettings::default(),
            feeds: FeedSettings::default(),
            calendar: signal_domain::CalendarConfig::default(),
            upbit: signal_upbit::UpbitConfig::default(),
            kis: None,
            channels: signal_channels::ChannelsConfig::default(),
            cors_allowed_origins: Vec::new(),
            http: HttpSettings::default(),
            trusted_proxies: Vec::new(),
            log_format: "text".into(),
        }
    }
}

impl Default for AssetSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 8082)),
            database_url: None,
            max_active_rules_per_user: 200,
            outbox_retention_hours: 24,
            outbox_resend_minutes: 15,
            listing_refresh_seconds: 600,
        }
    }
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 8083)),
            database_url: None,
        }
    }
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 8080)),
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwt_secret_file: None,
            user_claim: "sub".into(),
            issuer: None,
            audience: Vec::new(),
            leeway_seconds: 30,
            jwks_url: None,
            jwks_max_age_seconds: 300,
            jwks_min_refresh_seconds: 10,
            gateway: signal_web::GatewayConfig::default(),
        }
    }
}

impl Default for SimulationSettings {
    fn default() -> Self {
        Self {
            speed: 1.0,
            seed: None,
        }
    }
}

impl Settings {
    /// Defaults, then `file` (or `signal.toml` when present), then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        // Every struct is `#[serde(default)]`, so what no layer sets keeps its default.
        let mut figment = Figment::new();
        match file {
            Some(path) => {
                anyhow::ensure!(path.exists(), "config file {} not found", path.display());
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("signal.toml")),
        }
        let settings: Settings = figment
            .merge(Env::prefixed("SIGNAL_").split("__"))
            .extract()
            .context("invalid configuration")?;
        settings.validate()?;
        Ok(settings)
    }

    /// Refuses settings that would fail later, or quietly do something else than they say.
    pub fn validate(&self) -> anyhow::Result<()> {
        let _checked = crate::serve::cors_layer(&self.cors_allowed_origins)
            .context("invalid configuration: cors_allowed_origins")?;
        self.gateway()?;
        let http = &self.http;
        for (name, value) in [
            (
                "http.header_read_timeout_ms",
                http.header_read_timeout_ms as usize,
            ),
            ("http.idle_timeout_ms", http.idle_timeout_ms as usize),
            ("http.max_connections", http.max_connections),
            (
                "http.max_connections_per_address",
                http.max_connections_per_address,
            ),
            ("http.max_body_bytes", http.max_body_bytes),
            ("http.max_uri_bytes", http.max_uri_bytes),
            ("http.max_header_bytes", http.max_header_bytes),
            ("http.max_socket_frame_bytes", http.max_socket_frame_bytes),
            (
                "http.max_socket_message_bytes",
                http.max_socket_message_bytes,
            ),
        ] {
            anyhow::ensure!(value > 0, "invalid configuration: {name} must be above 0");
        }
        anyhow::ensure!(
            http.max_socket_frame_bytes <= http.max_socket_message_bytes,
            "invalid configuration: http.max_socket_frame_bytes must not exceed \
             http.max_socket_message_bytes"
        );
        Ok(())
    }

    /// Gateway mode as configured (off unless `auth.gateway.enabled`).
    pub fn gateway(&self) -> anyhow::Result<signal_web::GatewayTrust> {
        signal_web::GatewayTrust::new(&self.auth.gateway).context("invalid configuration")
    }

    /// The proxies whose `X-Forwarded-For` names the client: `trusted_proxies`, and in gateway
    /// mode the gateway's addresses, which carry every user's requests.
    pub fn forwarding_proxies(&self) -> signal_web::TrustedProxies {
        let gateway = &self.auth.gateway;
        let gateway = gateway.proxies.iter().filter(|_| gateway.enabled);
        signal_web::TrustedProxies::new(self.trusted_proxies.iter().chain(gateway).copied())
    }

    pub fn asset_database_url(&self) -> String {
        self.asset
            .database_url
            .clone()
            .unwrap_or_else(|| sqlite_url(&self.data_dir, "asset.db"))
    }

    pub fn alert_database_url(&self) -> String {
        self.alert
            .database_url
            .clone()
            .unwrap_or_else(|| sqlite_url(&self.data_dir, "alert.db"))
    }

    /// The token secret from configuration or its file; for the all-in-one binary, generated
    /// once into the data directory so tokens outlive restarts. Services running apart must be
    /// given the same secret, so they never generate one.
    pub fn jwt_secret(&self, may_generate: bool) -> anyhow::Result<String> {
        if let Some(secret) = &self.auth.jwt_secret {
            return Ok(secret.clone());
        }
        anyhow::ensure!(
            may_generate || self.auth.jwt_secret_file.is_some(),
            "set the token secret shared by both services: SIGNAL_AUTH__JWT_SECRET or \
             SIGNAL_AUTH__JWT_SECRET_FILE"
        );
        let path = self
            .auth
            .jwt_secret_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("jwt-secret"));
        if path.exists() {
            let secret = std::fs::read_to_string(&path)
                .with_context(|| format!("reading the token secret {}", path.display()))?;
            let secret = secret.trim().to_string();
            anyhow::ensure!(
                secret.len() >= 32,
                "the token secret in {} is shorter than 32 characters",
                path.display()
            );
            return Ok(secret);
        }
        anyhow::ensure!(
            self.auth.jwt_secret_file.is_none(),
            "the token secret file {} does not exist",
            path.display()
        );
        generate_secret(&path)
    }
}

fn sqlite_url(dir: &Path, file: &str) -> String {
    format!("sqlite://{}?mode=rwc", dir.join(file).display())
}

fn generate_secret(path: &Path) -> anyhow::Result<String> {
    use rand::RngCore;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating the token secret {}", path.display()))?;
    std::io::Write::write_all(&mut file, secret.as_bytes())?;
    tracing::info!(path = %path.display(), "generated a new token secret");
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_calendar_of_the_readme_loads() {
        let path = std::env::temp_dir().join(format!("signal-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(
            &path,
            r#"
[calendar.holidays]
KRX = ["2026-09-24", "2026-09-25"]
US = ["2026-11-26", "2026-12-25"]

[calendar.special_sessions.US]
2026-11-27 = { open = "09:30", close = "13:00" }
[calendar.special_sessions.KRX]
2026-11-19 = { open = "10:00", close = "16:30" }
"#,
        )
        .unwrap();
        let loaded = Settings::load(Some(&path));
        std::fs::remove_file(&path).unwrap();
        let calendar = signal_domain::MarketCalendar::new(&loaded.unwrap().calendar);
        let half_day_afternoon = "2026-11-27T18:30:00Z".parse().unwrap();
        assert!(!calendar
            .session(signal_domain::Market::Nyse, half_day_afternoon)
            .is_open());
        let thanksgiving = "2026-11-26T15:00:00Z".parse().unwrap();
        assert!(!calendar
            .session(signal_domain::Market::Nyse, thanksgiving)
            .is_open());
    }
}
