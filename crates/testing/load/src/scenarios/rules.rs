//! Rule churn: creates rules over the API at a chosen concurrency, one per request or in batches,
//! and reports how fast, window by window as they accumulate, then updates and deletes a share of
//! them; memory per rule held and the store's slow statements (the periodic reconciliation among
//! them) come with it. The system it starts has its request rate limits (per address and per
//! user) lifted: they would measure the limits, not the system.

use crate::feed::{format_price, upbit_markets, Feed, Market};
use crate::measure::{median, Latencies, LatencySummary};
use crate::report::{self, RunHeader};
use crate::system::SystemUnderTest;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Context;

pub const SCENARIO: &str = "rules";

#[derive(clap::Args)]
pub struct Options {
    /// Rules to create.
    #[arg(long, default_value_t = 100_000)]
    rules: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Rules per user (the service's default cap on active rules is 200).
    #[arg(long, default_value_t = 200)]
    per_user: usize,
    /// Rules per request through `POST /api/v1/rules/batch` (at most 1,000; a batch never spans
    /// two users); 0 creates each rule with its own `POST /api/v1/rules`.
    #[arg(long, default_value_t = 0)]
    batch: usize,
    /// Rules per reported window of the creation phase.
    #[arg(long, default_value_t = 10_000)]
    window: usize,
    /// Rules updated after the creation phase.
    #[arg(long, default_value_t = 10_000)]
    updates: usize,
    /// Rules deleted after the updates.
    #[arg(long, default_value_t = 10_000)]
    deletes: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RulesResult {
    pub run: RunHeader,
    pub rules: usize,
    pub concurrency: usize,
    pub per_user: usize,
    /// Rules per creation request; 0 for one per request through the single route.
    #[serde(default)]
    pub batch: usize,
    pub create: Phase,
    /// The creation phase in windows of equal size, in the order they completed.
    pub windows: Vec<Window>,
    pub update: Phase,
    pub delete: Phase,
    pub idle_rss_bytes: u64,
    pub loaded_rss_bytes: u64,
    /// Resident memory grown per rule held (engine, store caches and all).
    pub bytes_per_rule: f64,
    pub slow_statements: u64,
    pub slowest_statement_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    pub requests: usize,
    pub failed: usize,
    pub seconds: f64,
    /// Rules per second (requests per second when each carries one rule).
    pub per_second: f64,
    /// Latency per request.
    pub latency: LatencySummary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Window {
    /// Rules held once this window had completed.
    pub held: usize,
    pub per_second: f64,
    pub latency: LatencySummary,
}

/// One request to make.
pub struct Request {
    pub method: reqwest::Method,
    pub path: String,
    pub token: Arc<str>,
    pub body: Option<Value>,
    /// Rules it carries.
    pub rules: usize,
}

/// How one request went.
pub struct Outcome {
    pub index: usize,
    /// Seconds since the phase started.
    pub finished: f64,
    pub latency: Duration,
    pub ok: bool,
    /// Rules the request carried.
    pub rules: usize,
    /// The ids of the rules it created, in order.
    pub ids: Vec<i64>,
}

/// Runs `count` requests made by `make`, `concurrency` at a time, in index order of start.
pub async fn run_requests(
    system: &SystemUnderTest,
    count: usize,
    concurrency: usize,
    make: Arc<dyn Fn(usize) -> Request + Send + Sync>,
) -> Vec<Outcome> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (next, make, http, base) = (
                next.clone(),
                make.clone(),
                system.http.clone(),
                system.asset_url(""),
            );
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        return outcomes;
                    }
                    let request = make(index);
                    let rules = request.rules;
                    let mut builder = http
                        .request(request.method, format!("{base}{}", request.path))
                        .bearer_auth(&*request.token);
                    if let Some(body) = &request.body {
                        builder = builder.json(body);
                    }
                    let sent = Instant::now();
                    let answered = builder.send().await;
                    let (ok, ids) = match answered {
                        Ok(response) => {
                            let ok = response.status().is_success();
                            let body = response.bytes().await.unwrap_or_default();
                            let ids = serde_json::from_slice::<Value>(&body)
                                .map(|body| created_ids(&body))
                                .unwrap_or_default();
                            if !ok && outcomes.is_empty() {
                                eprintln!(
                                    "request {index} failed: {}",
                                    String::from_utf8_lossy(&body)
                                );
                            }
                            (ok, ids)
                        }
                        Err(error) => {
                            eprintln!("request {index} failed: {error}");
                            (false, Vec::new())
                        }
                    };
                    outcomes.push(Outcome {
                        index,
                        finished: started.elapsed().as_secs_f64(),
                        latency: sent.elapsed(),
                        ok,
                        rules,
                        ids,
                    });
                }
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(count);
    for worker in workers {
        outcomes.extend(worker.await.unwrap_or_default());
    }
    outcomes.sort_by(|a, b| a.finished.total_cmp(&b.finished));
    outcomes
}

/// The ids a creation answered with: one rule's, or a batch's in order.
fn created_ids(body: &Value) -> Vec<i64> {
    match (body["id"].as_i64(), body["rules"].as_array()) {
        (Some(id), _) => vec![id],
        (None, Some(rules)) => rules
            .iter()
            .filter_map(|rule| rule["id"].as_i64())
            .collect(),
        (None, None) => Vec::new(),
    }
}

pub fn phase(outcomes: &[Outcome]) -> Phase {
    let mut latencies = Latencies::default();
    for outcome in outcomes {
        latencies.record(outcome.latency);
    }
    let seconds = outcomes.last().map_or(0.0, |o| o.finished);
    let rules: usize = outcomes.iter().map(|o| o.rules).sum();
    Phase {
        requests: outcomes.len(),
        failed: outcomes.iter().filter(|o| !o.ok).count(),
        seconds,
        per_second: if seconds > 0.0 {
            rules as f64 / seconds
        } else {
            0.0
        },
        latency: latencies.summary(),
    }
}

/// The user who owns rule `k` when each user holds `per_user`.
pub fn user_of(k: usize, per_user: usize) -> String {
    format!("load-{:06}", k / per_user.max(1))
}

/// Rule `k`: on market `k` (round-robin), far from the price so the feed never reaches it;
/// alternately above and below, one in ten repeating.
pub fn rule_body(k: usize, markets: &[Market], variant: usize) -> Value {
    let market = &markets[k % markets.len()];
    let spread = ((k / markets.len()) % 97 + variant) as f64 / 100.0;
    let (condition, level) = if k.is_multiple_of(2) {
        ("ABOVE", market.base * (2.0 + spread))
    } else {
        ("BELOW", market.base * (0.5 - spread / 4.0))
    };
    let mut body = serde_json::json!({
        "instrument": format!("UPBIT:{}", market.code),
        "condition": condition,
        "level": format_price(level, market.base),
    });
    if k.is_multiple_of(10) {
        body["repeat"] = "every".into();
        body["cooldownSeconds"] = 60.into();
    }
    body
}

/// A token for each user holding `count` rules of `per_user` each, indexed by `k / per_user`.
pub fn user_tokens(system: &SystemUnderTest, count: usize, per_user: usize) -> Arc<Vec<Arc<str>>> {
    let per_user = per_user.max(1);
    Arc::new(
        (0..count.div_ceil(per_user))
            .map(|u| Arc::from(system.token(&user_of(u * per_user, per_user))))
            .collect(),
    )
}

/// Creates `count` rules spread over users of `per_user` rules each; the outcomes carry the ids.
pub async fn create_rules(
    system: &SystemUnderTest,
    markets: &[Market],
    count: usize,
    concurrency: usize,
    per_user: usize,
) -> Vec<Outcome> {
    let tokens = user_tokens(system, count, per_user);
    let per_user = per_user.max(1);
    let markets: Arc<Vec<Market>> = Arc::new(markets.to_vec());
    run_requests(
        system,
        count,
        concurrency,
        Arc::new(move |k| Request {
            method: reqwest::Method::POST,
            path: "/api/v1/rules".into(),
            token: tokens[k / per_user].clone(),
            body: Some(rule_body(k, &markets, 0)),
            rules: 1,
        }),
    )
    .await
}

/// The rules `[start, end)` of each creation request when each user's `per_user` rules go in
/// batches of `batch`.
fn batch_ranges(count: usize, per_user: usize, batch: usize) -> Vec<(usize, usize)> {
    let (per_user, batch) = (per_user.max(1), batch.max(1));
    let mut ranges = Vec::new();
    for first in (0..count).step_by(per_user) {
        let last = (first + per_user).min(count);
        for start in (first..last).step_by(batch) {
            ranges.push((start, (start + batch).min(last)));
        }
    }
    ranges
}

/// Creates `count` rules as [`create_rules`] does, `batch` to a request through the batch
/// route; each outcome's `index` is its rules' range in `ranges`.
async fn create_rules_in_batches(
    system: &SystemUnderTest,
    markets: &[Market],
    ranges: Arc<Vec<(usize, usize)>>,
    concurrency: usize,
    per_user: usize,
) -> Vec<Outcome> {
    let count = ranges.last().map_or(0, |range| range.1);
    let tokens = user_tokens(system, count, per_user);
    let per_user = per_user.max(1);
    let markets: Arc<Vec<Market>> = Arc::new(markets.to_vec());
    run_requests(
        system,
        ranges.len(),
        concurrency,
        Arc::new(move |i| {
            let (start, end) = ranges[i];
            let rules: Vec<Value> = (start..end).map(|k| rule_body(k, &markets, 0)).collect();
            Request {
                method: reqwest::Method::POST,
                path: "/api/v1/rules/batch".into(),
                token: tokens[start / per_user].clone(),
                body: Some(serde_json::json!({ "rules": rules })),
                rules: end - start,
            }
        }),
    )
    .await
}

/// The outcomes in windows of about `size` rules each, in the order they completed.
fn windows(outcomes: &[Outcome], size: usize) -> Vec<Window> {
    let mut windows = Vec::new();
    let (mut start, mut held, mut in_window) = (0.0, 0, 0);
    let mut latencies = Latencies::default();
    for (i, outcome) in outcomes.iter().enumerate() {
        latencies.record(outcome.latency);
        in_window += outcome.rules;
        if in_window >= size.max(1) || i + 1 == outcomes.len() {
            held += in_window;
            windows.push(Window {
                held,
                per_second: in_window as f64 / (outcome.finished - start).max(1e-9),
                latency: std::mem::take(&mut latencies).summary(),
            });
            start = outcome.finished;
            in_window = 0;
        }
    }
    windows
}

pub async fn run(context: &Context, options: Options) -> anyhow::Result<()> {
    let run = RunHeader::new(SCENARIO);
    let feed = Feed::start(upbit_markets()).await?;
    feed.set_background(100.0, (0..feed.markets().len()).collect());
    let system = context
        .start_system_with(&feed, &super::NO_REQUEST_LIMITS)
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss_bytes = system.rss()?;

    eprintln!(
        "creating {} rules, {} requests at a time, {} rules per request",
        options.rules,
        options.concurrency,
        options.batch.max(1)
    );
    let created = if options.batch == 0 {
        create_rules(
            &system,
            feed.markets(),
            options.rules,
            options.concurrency,
            options.per_user,
        )
        .await
    } else {
        let ranges = Arc::new(batch_ranges(options.rules, options.per_user, options.batch));
        let mut outcomes = create_rules_in_batches(
            &system,
            feed.markets(),
            ranges.clone(),
            options.concurrency,
            options.per_user,
        )
        .await;
        // From here on an outcome's index is its first rule's.
        for outcome in &mut outcomes {
            outcome.index = ranges[outcome.index].0;
        }
        outcomes
    };
    let create = phase(&created);
    let windows = windows(&created, options.window);
    for window in &windows {
        eprintln!(
            "  {:>9} held: {:>8.0} rules/s, p99 {:.1} ms",
            window.held, window.per_second, window.latency.p99_ms
        );
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let loaded_rss_bytes = system.rss()?;

    let mut ids: Vec<(usize, i64)> = created
        .iter()
        .flat_map(|o| o.ids.iter().enumerate().map(|(j, id)| (o.index + j, *id)))
        .collect();
    ids.sort_unstable();
    let ids = Arc::new(ids);
    let markets: Arc<Vec<Market>> = Arc::new(feed.markets().to_vec());
    let tokens = user_tokens(&system, options.rules, options.per_user);
    let per_user = options.per_user.max(1);

    let updates = options.updates.min(ids.len());
    eprintln!("updating {updates} rules");
    let update = phase(
        &run_requests(&system, updates, options.concurrency, {
            let (ids, markets, tokens) = (ids.clone(), markets.clone(), tokens.clone());
            Arc::new(move |i| {
                let (k, id) = ids[i];
                Request {
                    method: reqwest::Method::PUT,
                    path: format!("/api/v1/rules/{id}"),
                    token: tokens[k / per_user].clone(),
                    body: Some(rule_body(k, &markets, 1)),
                    rules: 1,
                }
            })
        })
        .await,
    );
    let deletes = options.deletes.min(ids.len());
    eprintln!("deleting {deletes} rules");
    let delete = phase(
        &run_requests(&system, deletes, options.concurrency, {
            let (ids, tokens) = (ids.clone(), tokens.clone());
            Arc::new(move |i| {
                let (k, id) = ids[ids.len() - 1 - i];
                Request {
                    method: reqwest::Method::DELETE,
                    path: format!("/api/v1/rules/{id}"),
                    token: tokens[k / per_user].clone(),
                    body: None,
                    rules: 1,
                }
            })
        })
        .await,
    );

    let result = RulesResult {
        run,
        rules: options.rules,
        concurrency: options.concurrency,
        per_user: options.per_user,
        batch: options.batch,
        bytes_per_rule: (loaded_rss_bytes as f64 - idle_rss_bytes as f64)
            / options.rules.max(1) as f64,
        create,
        windows,
        update,
        delete,
        idle_rss_bytes,
        loaded_rss_bytes,
        slow_statements: system.log.slow_statements.load(Ordering::Relaxed),
        slowest_statement_ms: system.log.slowest_statement_ms.load(Ordering::Relaxed),
    };
    system.stop().await?;
    let path = report::write(&context.out, SCENARIO, &result)?;
    crate::plot::rules(&context.out, &result)?;
    let last = result.windows.last().map_or(0.0, |w| w.per_second);
    let tail: Vec<f64> = result
        .windows
        .iter()
        .rev()
        .take(3)
        .map(|w| w.per_second)
        .collect();
    println!(
        "rules: created {} in {} requests at {:.0} rules/s (last window {:.0}/s, median of the last three {:.0}/s), p99 {:.1} ms; \
         update {:.0}/s, delete {:.0}/s; {:.0} bytes per rule; {} slow statements (slowest {} ms) -> {}",
        options.rules,
        result.create.requests,
        result.create.per_second,
        last,
        median(&tail),
        result.create.latency.p99_ms,
        result.update.per_second,
        result.delete.per_second,
        result.bytes_per_rule,
        result.slow_statements,
        result.slowest_statement_ms,
        path.display()
    );
    Ok(())
}
