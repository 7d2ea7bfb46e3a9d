//! One SVG plot per scenario, drawn from its JSON result, so the plots in the docs can be redrawn
//! without measuring again (`signal-load plot`).

use crate::report;
use crate::scenarios::{kafka_path, rest, rules, sockets, tick_to_alert};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (860, 480);
const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

/// Lines over shared axes; `x` may be linear or logarithmic.
fn lines<X>(
    path: &Path,
    title: &str,
    x: X,
    y_max: f64,
    (x_label, y_label): (&str, &str),
    series: &[Series],
) -> anyhow::Result<()>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(x, 0f64..y_max * 1.08)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()?;
    for (i, line) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(line.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Groups of bars: one group per label, one bar per series within it.
fn bars(
    path: &Path,
    title: &str,
    y_label: &str,
    series_names: &[&str],
    groups: &[(String, Vec<f64>)],
) -> anyhow::Result<()> {
    let y_max = groups
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .fold(0.0, f64::max);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let labels: Vec<String> = groups.iter().map(|(label, _)| label.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..groups.len() as f64, 0f64..y_max * 1.15)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let at = *x - x.floor();
            if (at - 0.5).abs() < 0.01 {
                labels.get(*x as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_label)
        .draw()?;
    let width = 0.8 / series_names.len().max(1) as f64;
    for (s, name) in series_names.iter().enumerate() {
        let color = COLORS[s % COLORS.len()];
        chart
            .draw_series(groups.iter().enumerate().filter_map(|(g, (_, values))| {
                let value = *values.get(s)?;
                let left = g as f64 + 0.1 + width * s as f64;
                Some(Rectangle::new(
                    [(left, 0.0), (left + width * 0.9, value)],
                    color.filled(),
                ))
            }))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn max_of(series: &[Series], axis: fn(&(f64, f64)) -> f64) -> f64 {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(axis))
        .fold(0.0, f64::max)
}

pub fn rules(out: &Path, result: &rules::RulesResult) -> anyhow::Result<()> {
    let series = [Series {
        name: format!(
            "rules created per second ({} in flight)",
            result.concurrency
        ),
        points: result
            .windows
            .iter()
            .map(|w| (w.held as f64, w.per_second))
            .collect(),
    }];
    lines(
        &report::plot_path(out, rules::SCENARIO),
        "Rule creation as rules accumulate",
        0f64..max_of(&series, |p| p.0).max(1.0),
        max_of(&series, |p| p.1).max(1.0),
        ("rules held", "rules per second"),
        &series,
    )
}

pub fn tick_to_alert(out: &Path, result: &tick_to_alert::TickToAlertResult) -> anyhow::Result<()> {
    let series = [
        Series {
            name: "quiet feed".into(),
            points: result.quiet.distribution.clone(),
        },
        Series {
            name: format!("{} trades/s background", result.background_ticks_per_second),
            points: result.loaded.distribution.clone(),
        },
    ];
    let lowest = series
        .iter()
        .flat_map(|s| s.points.first().map(|p| p.0))
        .fold(f64::MAX, f64::min)
        .clamp(0.01, 1.0);
    let highest = max_of(&series, |p| p.0).max(lowest * 10.0);
    lines(
        &report::plot_path(out, tick_to_alert::SCENARIO),
        &format!(
            "Tick to alert with {} rules held (cumulative)",
            result.rules
        ),
        (lowest..highest).log_scale(),
        1.0,
        (
            "milliseconds from the feed's write to the alert socket's read",
            "fraction of alerts",
        ),
        &series,
    )
}

pub fn kafka_path(out: &Path, result: &kafka_path::KafkaPathResult) -> anyhow::Result<()> {
    let series = [Series {
        name: format!(
            "{} alerts/s over {} markets",
            result.alerts_per_second, result.markets
        ),
        points: result.distribution.clone(),
    }];
    let lowest = series
        .iter()
        .flat_map(|s| s.points.first().map(|p| p.0))
        .fold(f64::MAX, f64::min)
        .clamp(0.01, 1.0);
    let highest = max_of(&series, |p| p.0).max(lowest * 10.0);
    lines(
        &report::plot_path(out, kafka_path::SCENARIO),
        "Rule firing to alert socket over Kafka (cumulative)",
        (lowest..highest).log_scale(),
        1.0,
        (
            "milliseconds from the rule firing to the alert socket's read",
            "fraction of alerts",
        ),
        &series,
    )
}

pub fn sockets(out: &Path, result: &sockets::SocketsResult) -> anyhow::Result<()> {
    let mib = |(t, rss): &(f64, u64)| (*t, *rss as f64 / 1024.0 / 1024.0);
    let series = [
        Series {
            name: format!("system, {} sockets", result.app.memory.sockets),
            points: result.app.memory.timeline.iter().map(mib).collect(),
        },
        Series {
            name: format!(
                "Node {} + ws, {} sockets",
                result.node_version, result.node.memory.sockets
            ),
            points: result.node.memory.timeline.iter().map(mib).collect(),
        },
    ];
    lines(
        &report::plot_path(out, sockets::SCENARIO),
        "Resident memory while quote sockets open, hold and close",
        0f64..max_of(&series, |p| p.0).max(1.0),
        max_of(&series, |p| p.1).max(1.0),
        ("seconds", "resident MiB"),
        &series,
    )
}

pub fn rest(out: &Path, result: &rest::RestResult) -> anyhow::Result<()> {
    let groups: Vec<(String, Vec<f64>)> = result
        .routes
        .iter()
        .map(|r| (r.route.clone(), vec![r.app_median, r.nginx_median]))
        .collect();
    bars(
        &report::plot_path(out, rest::SCENARIO),
        &format!("Quote routes under wrk, {} connections", result.connections),
        "requests per second (median)",
        &[
            "system (auth, limits, logging)",
            "nginx, same bytes from a file",
        ],
        &groups,
    )
}

/// Redraws the plot of every scenario that has a result in `out`.
pub fn redraw_all(out: &Path) -> anyhow::Result<()> {
    if let Some(result) = report::read(out, rules::SCENARIO)? {
        rules(out, &result)?;
    }
    if let Some(result) = report::read(out, tick_to_alert::SCENARIO)? {
        tick_to_alert(out, &result)?;
    }
    if let Some(result) = report::read(out, kafka_path::SCENARIO)? {
        kafka_path(out, &result)?;
    }
    if let Some(result) = report::read(out, sockets::SCENARIO)? {
        sockets(out, &result)?;
    }
    if let Some(result) = report::read(out, rest::SCENARIO)? {
        rest(out, &result)?;
    }
    Ok(())
}
