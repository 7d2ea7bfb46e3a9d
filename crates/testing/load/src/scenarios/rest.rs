//! REST: wrk against the quote routes of the system under test, beside nginx serving the same
//! bytes from a file on the same machine in the same run. wrk and nginx are Debian's packages,
//! installed here on first use (never in CI).

use crate::feed::{upbit_markets, Feed};
use crate::measure::median;
use crate::report::{self, RunHeader};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

use super::Context;

pub const SCENARIO: &str = "rest";

#[derive(clap::Args)]
pub struct Options {
    /// wrk's open connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// wrk's threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Runs per route and server, alternating.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Background trades per second over every market meanwhile.
    #[arg(long, default_value_t = 100.0)]
    background: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RestResult {
    pub run: RunHeader,
    pub wrk_version: String,
    pub nginx_version: String,
    pub connections: usize,
    pub threads: usize,
    pub seconds: u64,
    pub routes: Vec<RouteFigures>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RouteFigures {
    pub route: String,
    pub body_bytes: usize,
    pub app: Vec<WrkRun>,
    pub nginx: Vec<WrkRun>,
    pub app_median: f64,
    pub nginx_median: f64,
    /// The system's median over nginx's.
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrkRun {
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers that were not 2xx/3xx, and socket errors.
    pub failures: u64,
}

/// The routes measured, and the file nginx serves for each.
const ROUTES: [(&str, &str); 2] = [
    ("/api/v1/instruments/UPBIT:KRW-BTC", "instrument.json"),
    ("/asset/KRW-BTC", "legacy.json"),
];

async fn ensure_installed(program: &str, package: &str) -> anyhow::Result<()> {
    let present = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .await?
        .success();
    if present {
        return Ok(());
    }
    eprintln!("installing {package} (Debian package)");
    let install = format!(
        "apt-get install -y -q {package} >/dev/null 2>&1 || \
         (apt-get update -q >/dev/null && apt-get install -y -q {package} >/dev/null)"
    );
    let status = Command::new("sh")
        .args(["-c", &install])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .await?;
    anyhow::ensure!(status.success(), "installing {package} failed");
    Ok(())
}

async fn version_of(program: &str, flag: &str) -> String {
    let output = Command::new(program).arg(flag).output().await;
    output
        .map(|o| {
            let text = String::from_utf8_lossy(if o.stdout.is_empty() {
                &o.stderr
            } else {
                &o.stdout
            })
            .to_string();
            text.lines().next().unwrap_or_default().trim().to_string()
        })
        .unwrap_or_default()
}

struct Nginx {
    child: tokio::process::Child,
    port: u16,
}

async fn start_nginx(dir: &Path) -> anyhow::Result<Nginx> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let locations: String = ROUTES
        .iter()
        .map(|(route, file)| format!("    location = {route} {{ try_files /{file} =404; }}\n"))
        .collect();
    let d = dir.display();
    let config = format!(
        "daemon off;\nworker_processes auto;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log {d}/access.log;\n  default_type application/json;\n\
         client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n\
         uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n\
         server {{\n    listen 127.0.0.1:{port};\n    root {d}/www;\n{locations}  }}\n}}\n"
    );
    std::fs::create_dir_all(dir.join("tmp"))?;
    let path = dir.join("nginx.conf");
    std::fs::write(&path, config)?;
    let nginx = which("nginx").await;
    let child = Command::new(nginx)
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting nginx")?;
    crate::measure::wait_for(
        "nginx to listen",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
        },
    )
    .await?;
    Ok(Nginx { child, port })
}

/// Debian puts nginx in /usr/sbin, which is not on every PATH.
async fn which(program: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = format!("{dir}/{program}");
        if Path::new(&path).exists() {
            return path;
        }
    }
    program.to_string()
}

async fn wrk(url: &str, token: &str, options: &Options) -> anyhow::Result<WrkRun> {
    let output = Command::new("wrk")
        .arg(format!("-t{}", options.threads))
        .arg(format!("-c{}", options.connections))
        .arg(format!("-d{}s", options.seconds))
        .arg("--latency")
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .arg(url)
        .output()
        .await
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "wrk failed: {text}");
    parse_wrk(&text).with_context(|| format!("unexpected wrk output:\n{text}"))
}

fn parse_wrk(text: &str) -> Option<WrkRun> {
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .map(str::trim)
    };
    let ms = |value: &str| -> Option<f64> {
        let (number, unit) = value
            .find(|c: char| c.is_ascii_alphabetic())
            .map(|at| value.split_at(at))?;
        let number: f64 = number.parse().ok()?;
        Some(match unit {
            "us" => number / 1000.0,
            "ms" => number,
            "s" => number * 1000.0,
            _ => return None,
        })
    };
    let errors: u64 = field("Socket errors:")
        .map(|rest| {
            rest.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let non_2xx: u64 = field("Non-2xx or 3xx responses:")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Some(WrkRun {
        requests_per_second: field("Requests/sec:")?.parse().ok()?,
        p50_ms: ms(field("50%")?)?,
        p99_ms: ms(field("99%")?)?,
        failures: errors + non_2xx,
    })
}

pub async fn run(context: &Context, options: Options) -> anyhow::Result<()> {
    let run = RunHeader::new(SCENARIO);
    ensure_installed("wrk", "wrk").await?;
    let nginx_path = which("nginx").await;
    if !Path::new(&nginx_path).exists() {
        ensure_installed("nginx", "nginx").await?;
    }
    let feed = Feed::start(upbit_markets()).await?;
    feed.set_background(options.background, (0..feed.markets().len()).collect());
    // The rate limits stay on, as in production, set above what wrk asks from its one address
    // and user: every request pays for the check and none is refused.
    let system = context
        .start_system_with(
            &feed,
            &[
                ("SIGNAL_HTTP__REQUESTS_PER_SECOND_PER_ADDRESS", "10000000"),
                ("SIGNAL_HTTP__REQUESTS_PER_SECOND_PER_USER", "10000000"),
            ],
        )
        .await?;
    feed.wait_for_reader("KRW-BTC").await?;
    let token = system.token("rest-user");
    let dir = tempfile::Builder::new()
        .prefix("signal-load-nginx-")
        .tempdir()?;
    std::fs::create_dir_all(dir.path().join("www"))?;
    let mut bodies = Vec::new();
    for (route, file) in ROUTES {
        // The quote must be there, so both servers answer with a full body.
        crate::measure::wait_for(
            &format!("a quote on {route}"),
            Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                let value = system.get_json(route, &token).await.ok()?;
                let priced =
                    !value["quote"].is_null() || value["price"].as_f64().is_some_and(|p| p > 0.0);
                priced.then_some(())
            },
        )
        .await?;
        let bytes = system
            .http
            .get(system.asset_url(route))
            .bearer_auth(&token)
            .send()
            .await?
            .bytes()
            .await?;
        std::fs::write(dir.path().join("www").join(file), &bytes)?;
        bodies.push(bytes.len());
    }
    let nginx = start_nginx(dir.path()).await?;
    let mut routes = Vec::new();
    for ((route, _), body_bytes) in ROUTES.iter().zip(bodies) {
        let mut app = Vec::new();
        let mut peer = Vec::new();
        for round in 0..options.runs {
            let measured = wrk(&system.asset_url(route), &token, &options).await?;
            eprintln!(
                "{route} run {}: system {:.0} req/s",
                round + 1,
                measured.requests_per_second
            );
            app.push(measured);
            let url = format!("http://127.0.0.1:{}{route}", nginx.port);
            let measured = wrk(&url, &token, &options).await?;
            eprintln!(
                "{route} run {}: nginx {:.0} req/s",
                round + 1,
                measured.requests_per_second
            );
            peer.push(measured);
        }
        let app_median = median(
            &app.iter()
                .map(|r| r.requests_per_second)
                .collect::<Vec<_>>(),
        );
        let nginx_median = median(
            &peer
                .iter()
                .map(|r| r.requests_per_second)
                .collect::<Vec<_>>(),
        );
        routes.push(RouteFigures {
            route: route.to_string(),
            body_bytes,
            app,
            nginx: peer,
            app_median,
            nginx_median,
            ratio: app_median / nginx_median.max(1e-9),
        });
    }
    // SIGKILL would leave nginx's workers running: the master stops them on SIGQUIT.
    let mut nginx_child = nginx.child;
    if let Some(pid) = nginx_child.id() {
        Command::new("kill")
            .args(["-QUIT", &pid.to_string()])
            .status()
            .await?;
    }
    nginx_child.wait().await?;
    system.stop().await?;
    let result = RestResult {
        run,
        wrk_version: version_of("wrk", "-v").await,
        nginx_version: version_of(&which("nginx").await, "-v").await,
        connections: options.connections,
        threads: options.threads,
        seconds: options.seconds,
        routes,
    };
    let path = report::write(&context.out, SCENARIO, &result)?;
    crate::plot::rest(&context.out, &result)?;
    for route in &result.routes {
        println!(
            "rest {}: {:.0} req/s vs nginx {:.0} (ratio {:.2})",
            route.route, route.app_median, route.nginx_median, route.ratio
        );
    }
    println!("-> {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_throughput_latency_and_failures_from_wrk() {
        let output = "Running 10s test @ http://127.0.0.1:8082/asset/KRW-BTC
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  512.33us  14.20ms   80.12%
    Req/Sec    31.87k     2.10k   36.01k    71.00%
  Latency Distribution
     50%  846.00us
     75%    1.21ms
     90%    1.64ms
     99%    2.97ms
  634211 requests in 10.00s, 301.11MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  63412.55
Transfer/sec:     30.10MB
";
        let run = parse_wrk(output).unwrap();
        assert_eq!(run.requests_per_second, 63412.55);
        assert_eq!(run.p50_ms, 0.846);
        assert_eq!(run.p99_ms, 2.97);
        assert_eq!(run.failures, 7);
    }
}
