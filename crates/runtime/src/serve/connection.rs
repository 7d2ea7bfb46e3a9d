//! One HTTP/1.1 connection: hyper serves it, while a watchdog closes it when its client is slow
//! to send a request head or lets it go silent, and its I/O is metered for that watchdog.
//!
//! hyper answers some malformed requests by itself (a head it cannot parse: 400; a target over
//! its limit: 414; a head too large: 431) with an empty body. Those answers are rewritten on their
//! way out into the JSON error every other response has, so a client sees one error format.

use axum::http::{Request, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use signal_domain::ErrorChain;
use signal_web::ConnectionSocket;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::admission::{Refusal, Ticket};
use crate::settings::HttpSettings;

pub(crate) struct ConnectionLimits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_head_bytes: usize,
}

impl From<&HttpSettings> for ConnectionLimits {
    fn from(http: &HttpSettings) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(http.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(http.idle_timeout_ms),
            // hyper refuses (431) a head beyond its read buffer; the edge answers anything over
            // max_uri_bytes / max_header_bytes below that with a precise message, so the buffer
            // leaves room for both.
            max_head_bytes: (http.max_uri_bytes + http.max_header_bytes + 1024).max(8192),
        }
    }
}

pub(crate) struct ConnectionContext {
    pub app: Router,
    pub limits: Arc<ConnectionLimits>,
    pub shutdown: CancellationToken,
    /// How long open requests may finish once shutdown starts.
    pub drain: Duration,
}

/// Answers a connection that is over a limit, and closes it.
pub(crate) async fn refuse(mut stream: TcpStream, refusal: Refusal) {
    let (status, message) = match refusal {
        Refusal::PerAddress(max) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!("your address already has {max} connections open; close some and retry"),
        ),
        Refusal::Total(max) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the server has {max} connections open, its limit; retry shortly"),
        ),
    };
    let answer = json_answer(status, &message, Some(1));
    // A refused client gets one try to take its answer; it cannot hold the server up.
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&answer)).await;
    let _ = stream.shutdown().await;
}

/// A complete HTTP/1.1 response carrying the JSON error of `status`, closing the connection.
fn json_answer(status: StatusCode, message: &str, retry_after: Option<u64>) -> Vec<u8> {
    let body = signal_web::edge::error_json(status, message);
    let retry = retry_after
        .map(|seconds| format!("retry-after: {seconds}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n{retry}\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    )
    .into_bytes()
}

/// Why the watchdog ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// A request head started and did not arrive whole in time (or a new connection sent none).
    HeaderTimeout,
    /// Nothing moved on the connection for the idle timeout.
    Idle,
}

/// What the watchdog reads: when bytes last moved, when the current request head began, and
/// whether a request is being answered. Written by the metered I/O and the service wrapper.
struct Activity {
    opened: Instant,
    /// Milliseconds since `opened` of the last byte read or written.
    last_io_ms: AtomicU64,
    /// Milliseconds since `opened` at which the head now being read began; NO_HEAD when none.
    head_since_ms: AtomicU64,
    /// Requests handed to the service whose response body is not finished.
    in_flight: AtomicU32,
}

const NO_HEAD: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            // A new connection owes its first head within the header-read timeout.
            head_since_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn bytes_read(&self) {
        let now = self.now_ms();
        self.last_io_ms.store(now, Ordering::Relaxed);
        // Bytes that arrive while no request is being answered begin the next head.
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self.head_since_ms.compare_exchange(
                NO_HEAD,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    fn bytes_written(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since_ms.store(NO_HEAD, Ordering::Relaxed);
    }

    fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The next moment a limit could be passed, and which.
    fn deadline(&self, limits: &ConnectionLimits) -> (u64, Expiry) {
        let idle = (
            self.last_io_ms.load(Ordering::Relaxed) + limits.idle_timeout.as_millis() as u64,
            Expiry::Idle,
        );
        match self.head_since_ms.load(Ordering::Relaxed) {
            NO_HEAD => idle,
            since => {
                let head = (
                    since + limits.header_read_timeout.as_millis() as u64,
                    Expiry::HeaderTimeout,
                );
                if head.0 <= idle.0 {
                    head
                } else {
                    idle
                }
            }
        }
    }

    /// Resolves when the connection has passed a limit.
    async fn expired(&self, limits: &ConnectionLimits) -> Expiry {
        loop {
            let (deadline, expiry) = self.deadline(limits);
            let now = self.now_ms();
            if now >= deadline {
                return expiry;
            }
            tokio::time::sleep(Duration::from_millis(deadline - now)).await;
        }
    }
}

/// Marks the end of a request when hyper drops its response body: after the last byte of it
/// was handed over, or when the connection went away.
struct Finished(Arc<Activity>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

pin_project_lite::pin_project! {
    struct TrackedBody {
        #[pin]
        inner: axum::body::Body,
        finished: Finished,
    }
}

impl hyper::body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

pub(crate) async fn serve_connection(
    stream: TcpStream,
    address: SocketAddr,
    context: ConnectionContext,
    _ticket: Ticket,
) {
    // A second handle on the socket, for the one answer written after hyper has given up the
    // connection (the request head did not arrive in time), and for the routes that tune their
    // socket (a quote socket's unsent limit) through the requests' `ConnectionSocket`.
    let (stream, spare) = match split_spare(stream) {
        Ok((stream, spare)) => (stream, Arc::new(spare)),
        Err(e) => {
            tracing::debug!(error = %e, %address, "cannot take the connection");
            return;
        }
    };
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(MeteredIo::new(stream, activity.clone()));
    let service = {
        let activity = activity.clone();
        let app = context.app.clone();
        let socket = ConnectionSocket::new(&spare);
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            activity.request_started();
            let finished = Finished(activity.clone());
            let extensions = request.extensions_mut();
            extensions.insert(axum::extract::ConnectInfo(address));
            extensions.insert(socket.clone());
            let response = app.clone().oneshot(request.map(axum::body::Body::new));
            async move {
                let response = response.await?;
                Ok::<_, std::convert::Infallible>(
                    response.map(|inner| TrackedBody { inner, finished }),
                )
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The watchdog times heads itself: hyper's timer would also run while a keep-alive
        // connection idles between requests.
        .header_read_timeout(None)
        .max_buf_size(context.limits.max_head_bytes);
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    let expiry = tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %ErrorChain(&e), %address, "connection ended with an error");
            }
            return;
        }
        expiry = activity.expired(&context.limits) => expiry,
        () = context.shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(context.drain, connection).await;
            return;
        }
    };
    if expiry == Expiry::HeaderTimeout {
        let answer = json_answer(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the request head did not arrive within {} ms",
                context.limits.header_read_timeout.as_millis()
            ),
            None,
        );
        // The socket is non-blocking; an answer that does not fit the send buffer is dropped.
        let _ = (&*spare).write(&answer);
    }
    tracing::debug!(%address, ?expiry, "closing a connection past its limits");
    let _ = spare.shutdown(std::net::Shutdown::Both);
}

/// The stream for hyper and a duplicate handle on the same socket.
fn split_spare(stream: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let std_stream = stream.into_std()?;
    let spare = std_stream.try_clone()?;
    Ok((TcpStream::from_std(std_stream)?, spare))
}

/// The connection's I/O, reporting every byte to the watchdog and rewriting the error answers
/// hyper writes by itself into JSON.
struct MeteredIo {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// A rewritten answer being written, and the length of hyper's own that it stands for.
    replacement: Option<Replacement>,
}

struct Replacement {
    bytes: Vec<u8>,
    written: usize,
    stands_for: usize,
}

impl MeteredIo {
    fn new(inner: TcpStream, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            replacement: None,
        }
    }

    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let Some(replacement) = &mut self.replacement else {
            return Poll::Ready(Ok(0));
        };
        while replacement.written < replacement.bytes.len() {
            let rest = &replacement.bytes[replacement.written..];
            match Pin::new(&mut self.inner).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => {
                    replacement.written += n;
                    self.activity.bytes_written();
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let stands_for = replacement.stands_for;
        self.replacement = None;
        Poll::Ready(Ok(stands_for))
    }
}

/// hyper's own error answers are a status line of 4xx or 5xx and headers with
/// `content-length: 0` and no content type; every answer of the services has a JSON body.
fn hypers_own_error(buf: &[u8]) -> Option<StatusCode> {
    // Checked first: every frame an upgraded socket writes passes here.
    if !buf.starts_with(b"HTTP/1.1 ") {
        return None;
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let status_line = head.strip_prefix("HTTP/1.1 ")?;
    let status = StatusCode::from_bytes(status_line.get(..3)?.as_bytes()).ok()?;
    let lower = head.to_ascii_lowercase();
    let empty = lower.contains("\r\ncontent-length: 0") && !lower.contains("\r\ncontent-type:");
    (empty && (status.is_client_error() || status.is_server_error())).then_some(status)
}

fn reason_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => {
            "the request could not be parsed: its request line or a header is malformed (a \
             request target must be percent-encoded)"
        }
        StatusCode::URI_TOO_LONG => "the request target is too long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            "the request head is too large, or has too many headers"
        }
        StatusCode::HTTP_VERSION_NOT_SUPPORTED => "only HTTP/1.1 and HTTP/1.0 are served",
        other => other
            .canonical_reason()
            .unwrap_or("the request was refused"),
    }
}

impl AsyncRead for MeteredIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        result
    }
}

impl AsyncWrite for MeteredIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.replacement.is_none() {
            if let Some(status) = hypers_own_error(buf) {
                let bytes = json_answer(status, reason_of(status), None);
                self.replacement = Some(Replacement {
                    bytes,
                    written: 0,
                    stands_for: buf.len(),
                });
            }
        }
        if self.replacement.is_some() {
            return self.poll_replacement(cx);
        }
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.bytes_written();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        // One slice at a time: a head always starts a slice, so hyper's own answers are seen.
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(first) => self.poll_write(cx, first),
            None => Poll::Ready(Ok(0)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_empty_error_answers_are_recognised_and_the_services_are_not() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 10:00:00 GMT\r\n\r\n";
        assert_eq!(
            hypers_own_error(hyper_431),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 52\r\n\r\n";
        assert_eq!(hypers_own_error(ours), None);
        let fine = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hypers_own_error(fine), None);
    }

    #[test]
    fn a_new_connection_owes_a_head_and_an_idle_one_owes_nothing_until_idle() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_head_bytes: 8192,
        };
        let activity = Activity::new();
        assert_eq!(activity.deadline(&limits), (10_000, Expiry::HeaderTimeout));
        activity.request_started();
        assert_eq!(activity.deadline(&limits).1, Expiry::Idle);
        activity.request_finished();
        assert_eq!(activity.deadline(&limits).1, Expiry::Idle);
        activity.bytes_read();
        assert_eq!(activity.deadline(&limits).1, Expiry::HeaderTimeout);
    }
}
