//! Structured logs on stderr, with tokens kept out of them at every level. Request spans carry
//! the path without the query string (sockets take `?token=`), and every line is scrubbed before
//! it is written: whatever a dependency logs at `trace` (a WebSocket frame, a header), a JWT or
//! a `token=` value in it is replaced, as is a JWT in hexadecimal (tungstenite's `Display` of a
//! frame writes its payload so, and a socket may carry a fresh token; its trace lines today use
//! the readable forms).

use std::io::Write;
use tracing_subscriber::fmt::MakeWriter;

/// Structured logs on stderr: `text` or `json`, level from `RUST_LOG` (default info). Every
/// enabled span logs a line when it closes, with the time it was busy and idle: the stages of
/// an alert's path are spans of the target `signal_latency` at debug level
/// (`RUST_LOG=info,signal_latency=debug`), which the load harness reads back. No span is
/// enabled at the default level, so the default log carries none of these lines.
pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,rdkafka=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(ScrubbedStderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Hands each log line to stderr once it is whole, scrubbed.
struct ScrubbedStderr;

impl<'a> MakeWriter<'a> for ScrubbedStderr {
    type Writer = ScrubbedLine;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbedLine(Vec::with_capacity(256))
    }
}

/// One event's text; written when the formatter is done with it.
struct ScrubbedLine(Vec<u8>);

impl Write for ScrubbedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ScrubbedLine {
    fn drop(&mut self) {
        let line = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr().lock().write_all(scrub(&line).as_bytes());
    }
}

const REDACTED: &str = "<redacted>";

/// `text` with every JWT (three base64url segments, the first starting `eyJ`: `{"` encoded)
/// and every `token=` value replaced.
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((at, len)) = next_secret(rest) {
        out.push_str(&rest[..at]);
        out.push_str(REDACTED);
        rest = &rest[at + len..];
    }
    out.push_str(rest);
    out
}

/// Where the next secret in `text` starts, and its length.
fn next_secret(text: &str) -> Option<(usize, usize)> {
    let readable = next_readable_secret(text);
    match (readable, hex_jwt(text)) {
        (Some(r), Some(h)) => Some(if h.0 < r.0 { h } else { r }),
        (r, h) => r.or(h),
    }
}

/// `eyJ` in hexadecimal, as a displayed frame writes its payload.
const HEX_JWT_START: &str = "65794a";
/// The shortest hexadecimal run taken for a JWT: a token has far more than 40 characters.
const HEX_JWT_MIN: usize = 80;

/// The next long run of hexadecimal digits with a JWT start in it, from that start to the run's
/// end (the rest of the payload).
fn hex_jwt(text: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(found) = text[from..].find(HEX_JWT_START) {
        let at = from + found;
        let len = text[at..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(text.len() - at);
        if len >= HEX_JWT_MIN {
            return Some((at, len));
        }
        from = at + len.max(1);
    }
    None
}

/// Where the next JWT or `token=` value in `text` starts, and its length.
fn next_readable_secret(text: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    loop {
        let jwt = text[from..].find("eyJ").map(|i| from + i);
        let param = token_value(text, from);
        let jwt_first = match (jwt, param) {
            (None, None) => return None,
            (None, Some(param)) => return Some(param),
            (Some(j), None) => j,
            (Some(j), Some((p, _))) if j < p => j,
            (Some(_), Some(param)) => return Some(param),
        };
        match jwt_len(&text[jwt_first..]) {
            0 => from = jwt_first + 3,
            len => return Some((jwt_first, len)),
        }
    }
}

/// The next non-empty value of a `token=` parameter (or a `…_token=` one) at or after `from`.
fn token_value(text: &str, mut from: usize) -> Option<(usize, usize)> {
    while let Some(found) = text[from..].find("token=") {
        let at = from + found;
        let value = at + "token=".len();
        from = value;
        // `token=` itself, not the tail of a longer word (`mytoken=`).
        if text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        {
            continue;
        }
        let len = text[value..]
            .find(['&', ' ', '"', '\'', '\\', '\n', ',', ')', ';'])
            .unwrap_or(text.len() - value);
        if len > 0 {
            return Some((value, len));
        }
    }
    None
}

/// The length of the JWT `text` starts with, or 0 when it is not one.
fn jwt_len(text: &str) -> usize {
    let is_b64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut len = 0;
    let mut segments = 0;
    for part in text.splitn(3, '.') {
        let part_len = part.find(|c| !is_b64url(c)).unwrap_or(part.len());
        segments += 1;
        len += part_len;
        if part_len != part.len() || segments == 3 {
            break;
        }
        len += 1;
    }
    if segments == 3 && text[..len].matches('.').count() == 2 {
        len
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl-_x";

    #[test]
    fn tokens_are_scrubbed_wherever_they_appear() {
        assert_eq!(
            scrub(&format!("uri=/ws/socket/alert?token={JWT}&x=1 status=101")),
            "uri=/ws/socket/alert?token=<redacted>&x=1 status=101"
        );
        assert_eq!(
            scrub(&format!(r#"{{"authorization":"Bearer {JWT}"}}"#)),
            r#"{"authorization":"Bearer <redacted>"}"#
        );
        assert_eq!(
            scrub(&format!("frame {{\"type\":\"auth\",\"token\":\"{JWT}\"}}")),
            "frame {\"type\":\"auth\",\"token\":\"<redacted>\"}"
        );
        assert_eq!(
            scrub("signal_csrf_token=abc; x"),
            "signal_csrf_token=<redacted>; x"
        );
        let payload: String = format!("{{\"type\":\"auth\",\"token\":\"{JWT}\"}}")
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        let scrubbed = scrub(&format!("received frame\npayload: 0x{payload}\n"));
        assert!(!scrubbed.contains(HEX_JWT_START), "{scrubbed}");
        assert!(
            scrubbed.starts_with("received frame\npayload: 0x7b2274797065"),
            "{scrubbed}"
        );
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "rule 12 fired at 71900 (eyJ is just letters here)",
            "tokens=5 mytoken=abc",
            "KRX:005930 price=71900.5",
        ] {
            assert_eq!(scrub(text), text);
        }
    }
}
