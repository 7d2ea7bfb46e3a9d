//! The web app's files: the bundle built from `web/src` into `web/dist` and committed, embedded
//! into the release binary (a debug build reads them from `web/dist` instead, so a rebuilt
//! bundle shows without recompiling). Each file is compressed once, on its first request in
//! each encoding, and served with the brotli or gzip encoding the browser accepts.

use axum::body::Body;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use signal_domain::FailureKind;
use signal_web::ApiError;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::OnceCell;

#[derive(rust_embed::Embed)]
#[folder = "../../web/dist/"]
struct Bundle;

/// The page every app route (`/`, `/alerts`, `/i/KRX:005930`) answers with.
const INDEX: &str = "index.html";
/// Content-hashed file names: a new build gets new names, so these may be cached for good.
const HASHED_DIR: &str = "assets/";
/// Smaller files are not worth compressing.
const COMPRESS_FROM_BYTES: usize = 512;

/// What the page may load and connect to: only its own origin (the services' sockets included).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; \
    worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'; form-action 'self'";

#[derive(Clone, Copy)]
enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

struct AppFile {
    content: Bytes,
    content_type: HeaderValue,
    etag: HeaderValue,
    immutable: bool,
    compressible: bool,
    brotli: OnceCell<Bytes>,
    gzip: OnceCell<Bytes>,
}

/// The app's files, by path under the bundle's root.
#[derive(Clone)]
pub struct AppFiles {
    files: Arc<HashMap<String, AppFile>>,
}

impl AppFiles {
    /// The files of the embedded bundle.
    pub fn embedded() -> Self {
        let files = Bundle::iter()
            .filter_map(|path| {
                let file = Bundle::get(&path)?;
                let mime = file.metadata.mimetype();
                let hash: String = file
                    .metadata
                    .sha256_hash()
                    .iter()
                    .take(16)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let app_file = AppFile {
                    compressible: is_compressible(mime) && file.data.len() >= COMPRESS_FROM_BYTES,
                    content_type: HeaderValue::from_str(mime)
                        .unwrap_or(HeaderValue::from_static("application/octet-stream")),
                    etag: HeaderValue::from_str(&format!("\"{hash}\""))
                        .unwrap_or(HeaderValue::from_static("\"0\"")),
                    immutable: path.starts_with(HASHED_DIR),
                    content: Bytes::from(file.data.into_owned()),
                    brotli: OnceCell::new(),
                    gzip: OnceCell::new(),
                };
                Some((path.into_owned(), app_file))
            })
            .collect();
        Self {
            files: Arc::new(files),
        }
    }

    /// Answers a request the routing table leaves to the app.
    pub async fn serve(&self, request: Request<Body>) -> Response {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                ApiError::malformed(format!(
                    "{} is not served here: the web app's pages are read with GET",
                    request.method()
                )),
            )
                .into_response();
        }
        let path = request.uri().path().trim_start_matches('/');
        let name = match self.files.get(path) {
            Some(_) => path,
            // A file that is not there is missing; any other path is a page of the app.
            None if path
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains('.')) =>
            {
                return ApiError::not_found(format!("no file /{path}")).into_response();
            }
            None => INDEX,
        };
        let Some(file) = self.files.get(name) else {
            return ApiError::new(
                FailureKind::Unavailable,
                "the web app was not built into this binary (web/dist is empty)",
            )
            .into_response();
        };
        file.respond(request.headers()).await
    }
}

impl AppFile {
    async fn respond(&self, request: &HeaderMap) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(ETAG, self.etag.clone());
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static(if self.immutable {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            }),
        );
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
        for (name, value) in security_headers() {
            headers.insert(name, value);
        }
        if request
            .get(IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| tags.split(',').any(|t| t.trim() == self.etag))
        {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        headers.insert(CONTENT_TYPE, self.content_type.clone());
        let encoding = if self.compressible {
            preferred_encoding(request)
        } else {
            Encoding::Identity
        };
        let body = match encoding {
            Encoding::Brotli => {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("br"));
                self.compressed(&self.brotli, brotli).await
            }
            Encoding::Gzip => {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                self.compressed(&self.gzip, gzip).await
            }
            Encoding::Identity => self.content.clone(),
        };
        (headers, body).into_response()
    }

    async fn compressed(&self, cell: &OnceCell<Bytes>, compress: fn(&[u8]) -> Vec<u8>) -> Bytes {
        cell.get_or_init(|| async {
            let content = self.content.clone();
            // Compression takes milliseconds of CPU: off the async workers.
            match tokio::task::spawn_blocking(move || compress(&content)).await {
                Ok(compressed) => Bytes::from(compressed),
                Err(e) => {
                    tracing::error!(error = %e, "compressing a web app file failed");
                    Bytes::new()
                }
            }
        })
        .await
        .clone()
    }
}

fn security_headers() -> [(HeaderName, HeaderValue); 4] {
    [
        (
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ),
        (
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ]
}

fn is_compressible(mime: &str) -> bool {
    mime.starts_with("text/")
        || mime.contains("javascript")
        || mime.contains("json")
        || mime.contains("svg")
        || mime.contains("wasm")
}

/// Brotli when the browser takes it, else gzip, else none (`q=0` refuses an encoding).
fn preferred_encoding(request: &HeaderMap) -> Encoding {
    let accepted: Vec<&str> = request
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next()?;
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (!refused).then_some(name)
        })
        .collect();
    let takes = |name: &str| accepted.iter().any(|a| a.eq_ignore_ascii_case(name));
    if takes("br") {
        Encoding::Brotli
    } else if takes("gzip") {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

fn brotli(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() / 3);
    {
        // Quality 9: within a tenth of the best (11) in size, twenty times faster, so the first
        // request of each file does not wait long on a busy machine.
        let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 9, 22);
        // Writing into a Vec cannot fail.
        let _ = writer.write_all(content);
    }
    out
}

fn gzip(content: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(content.len() / 3),
        flate2::Compression::best(),
    );
    let _ = encoder.write_all(content);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn brotli_is_preferred_then_gzip_and_q0_refuses() {
        assert!(matches!(
            preferred_encoding(&accepting("gzip, deflate, br, zstd")),
            Encoding::Brotli
        ));
        assert!(matches!(
            preferred_encoding(&accepting("br;q=0, gzip;q=0.5")),
            Encoding::Gzip
        ));
        assert!(matches!(
            preferred_encoding(&accepting("identity")),
            Encoding::Identity
        ));
        assert!(matches!(
            preferred_encoding(&HeaderMap::new()),
            Encoding::Identity
        ));
    }

    #[test]
    fn compressed_files_decompress_to_the_original() {
        let text = "const price = 71900;\n".repeat(200);
        let mut decoded = Vec::new();
        brotli::BrotliDecompress(&mut brotli(text.as_bytes()).as_slice(), &mut decoded).unwrap();
        assert_eq!(decoded, text.as_bytes());
        let mut decoded = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(gzip(text.as_bytes()).as_slice()),
            &mut decoded,
        )
        .unwrap();
        assert_eq!(decoded, text);
    }
}
