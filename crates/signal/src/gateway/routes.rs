//! The routing table of the one origin (`deploy/gateway-routes.txt`): which paths go to which
//! service. The embedded gateway reads it; the reverse proxy of the production topology is
//! checked against it, so the browser sees the same origin either way.

use thiserror::Error;

/// The table as committed; the gateway and the proxy check both follow it.
const BUILTIN: &str = include_str!("../../../../deploy/gateway-routes.txt");

/// Where a routed path goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Asset,
    Alert,
    /// An API path no service serves: answered with a JSON 404, never with the app's page.
    Nowhere,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Matches itself and every path below it.
    pub path: String,
    pub upstream: Upstream,
    /// The path is removed before forwarding (`/asset-api/docs` reaches the service as `/docs`).
    pub strip: bool,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("routing table, line {line}: {problem}")]
pub struct RouteTableError {
    pub line: usize,
    pub problem: String,
}

/// Routes, longest path first, so the most specific one wins.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl Route {
    fn matches(&self, path: &str) -> bool {
        path.strip_prefix(&self.path)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// The path the service sees for the request path `path` (which this route matches).
    pub fn forwarded_path<'a>(&self, path: &'a str) -> &'a str {
        match path.strip_prefix(self.path.as_str()) {
            Some(rest) if self.strip => {
                if rest.is_empty() {
                    "/"
                } else {
                    rest
                }
            }
            _ => path,
        }
    }
}

impl RouteTable {
    /// The committed table.
    pub fn builtin() -> Result<Self, RouteTableError> {
        Self::parse(BUILTIN)
    }

    /// Reads `path service [strip]` lines; `#` starts a comment.
    pub fn parse(text: &str) -> Result<Self, RouteTableError> {
        let mut routes: Vec<Route> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let invalid = |problem: String| RouteTableError {
                line: index + 1,
                problem,
            };
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let Some(path) = words.next() else { continue };
            if !path.starts_with('/') || path.len() < 2 || path.ends_with('/') {
                return Err(invalid(format!(
                    "`{path}` must start with `/` and must not end with one"
                )));
            }
            let upstream = match words.next() {
                Some("asset") => Upstream::Asset,
                Some("alert") => Upstream::Alert,
                Some("none") => Upstream::Nowhere,
                other => {
                    return Err(invalid(format!(
                        "`{}` is not a service (asset, alert or none)",
                        other.unwrap_or_default()
                    )))
                }
            };
            let strip = match words.next() {
                None => false,
                Some("strip") => true,
                Some(other) => return Err(invalid(format!("unexpected `{other}`"))),
            };
            if let Some(extra) = words.next() {
                return Err(invalid(format!("unexpected `{extra}`")));
            }
            if routes.iter().any(|r| r.path == path) {
                return Err(invalid(format!("`{path}` is listed twice")));
            }
            routes.push(Route {
                path: path.to_string(),
                upstream,
                strip,
            });
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.path.len()));
        Ok(Self { routes })
    }

    /// The route of a request path, or `None` for the app.
    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(path))
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(table: &RouteTable, path: &str) -> Option<Upstream> {
        table.route(path).map(|r| r.upstream)
    }

    #[test]
    fn the_committed_table_sends_each_service_its_paths() {
        let table = RouteTable::builtin().unwrap();
        for path in [
            "/asset/search",
            "/ws/stocks",
            "/api/v1/instruments",
            "/api/v1/instruments/KRX:005930/candles",
            "/api/v1/movers",
            "/api/v1/watchlist/UPBIT:KRW-BTC",
            "/api/v1/rules/7",
            "/api/v1/quotes/stream",
        ] {
            assert_eq!(upstream(&table, path), Some(Upstream::Asset), "{path}");
        }
        for path in [
            "/alert",
            "/alert/3",
            "/ws/socket/alert",
            "/api/v1/alerts",
            "/api/v1/alerts/stream",
            "/api/v1/auth/signin",
            "/api/v1/settings",
        ] {
            assert_eq!(upstream(&table, path), Some(Upstream::Alert), "{path}");
        }
        assert_eq!(upstream(&table, "/api/v2/things"), Some(Upstream::Nowhere));
        for app_path in ["/", "/markets", "/alerts", "/assets/app.js", "/asset-apis"] {
            assert_eq!(upstream(&table, app_path), None, "{app_path}");
        }
    }

    #[test]
    fn a_path_matches_whole_segments_only() {
        let table = RouteTable::parse("/alert alert\n/api none").unwrap();
        assert_eq!(upstream(&table, "/alerts"), None);
        assert_eq!(upstream(&table, "/alert/7"), Some(Upstream::Alert));
        assert_eq!(upstream(&table, "/apis"), None);
    }

    #[test]
    fn the_longest_path_wins_whatever_the_order() {
        let table = RouteTable::parse("/api none\n/api/v1/rules asset").unwrap();
        assert_eq!(upstream(&table, "/api/v1/rules/1"), Some(Upstream::Asset));
        assert_eq!(upstream(&table, "/api/v1/other"), Some(Upstream::Nowhere));
    }

    #[test]
    fn stripped_routes_forward_the_rest_of_the_path() {
        let table = RouteTable::parse("/asset-api asset strip\n/asset asset").unwrap();
        let docs = table.route("/asset-api/docs").unwrap();
        assert_eq!(docs.forwarded_path("/asset-api/docs"), "/docs");
        assert_eq!(docs.forwarded_path("/asset-api"), "/");
        let legacy = table.route("/asset/search").unwrap();
        assert_eq!(legacy.forwarded_path("/asset/search"), "/asset/search");
    }

    #[test]
    fn malformed_lines_are_refused_with_their_line_number() {
        for (text, line) in [
            ("/a asset\nb asset", 2),
            ("/a/ asset", 1),
            ("/a elsewhere", 1),
            ("/a asset\n\n/a alert", 3),
            ("/a asset strip now", 1),
            ("/a asset keep", 1),
        ] {
            assert_eq!(RouteTable::parse(text).unwrap_err().line, line, "{text}");
        }
    }
}
