//! The charts of a run — requests/s, latency p50/p90/p99, errors/s, active VUs — drawn
//! as SVG by `plotters`: the console's live charts and the HTML report's.

use camut_stats::series::SeriesPoint;
use plotters::prelude::*;

/// One line of a chart.
struct Line {
    name: &'static str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// Chart size in pixels.
const SIZE: (u32, u32) = (460, 220);

/// The four charts of a run: requests/s, latency p50/p90/p99, errors/s, active VUs, as
/// (key, title, SVG).
pub fn run_charts(history: &[SeriesPoint]) -> Vec<(&'static str, &'static str, String)> {
    let t0 = history.first().map_or(0, |p| p.time_ms);
    let x = |p: &SeriesPoint| (p.time_ms - t0) as f64 / 1000.0;
    let series = |f: fn(&SeriesPoint) -> f64| history.iter().map(|p| (x(p), f(p))).collect();
    let blue = RGBColor(31, 119, 180);
    let charts = [
        (
            "requests",
            "requests/s",
            "req/s",
            vec![Line {
                name: "requests/s",
                color: blue,
                points: series(|p| p.total.requests as f64),
            }],
        ),
        (
            "latency",
            "latency",
            "ms",
            vec![
                Line {
                    name: "p50",
                    color: RGBColor(44, 160, 44),
                    points: series(|p| p.total.p50_ms),
                },
                Line {
                    name: "p90",
                    color: RGBColor(255, 127, 14),
                    points: series(|p| p.total.p90_ms),
                },
                Line {
                    name: "p99",
                    color: RGBColor(214, 39, 40),
                    points: series(|p| p.total.p99_ms),
                },
            ],
        ),
        (
            "errors",
            "errors/s",
            "errors/s",
            vec![Line {
                name: "errors/s",
                color: RGBColor(214, 39, 40),
                points: series(|p| p.total.errors as f64),
            }],
        ),
        (
            "vus",
            "active VUs",
            "VUs",
            vec![Line {
                name: "active VUs",
                color: RGBColor(148, 103, 189),
                points: series(|p| p.active_vus as f64),
            }],
        ),
    ];
    charts
        .into_iter()
        .map(|(key, title, unit, lines)| {
            let svg = draw(title, unit, &lines).unwrap_or_else(|e| {
                tracing::warn!(chart = key, "cannot draw the chart: {e}");
                String::new()
            });
            (key, title, svg)
        })
        .collect()
}

/// Draws one line chart; the axes start at zero and fit the data.
fn draw(title: &str, unit: &str, lines: &[Line]) -> Result<String, String> {
    let all = || lines.iter().flat_map(|l| l.points.iter());
    let x_max = all().map(|p| p.0).fold(1.0, f64::max);
    let y_max = all().map(|p| p.1).fold(0.0, f64::max);
    let y_max = if y_max <= 0.0 { 1.0 } else { y_max * 1.15 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc(unit)
            .x_labels(6)
            .y_labels(5)
            .x_max_light_lines(1)
            .y_max_light_lines(1)
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(|e| e.to_string())?;
        for line in lines {
            let color = line.color;
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(line.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color));
        }
        if lines.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(RGBColor(200, 200, 200))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use camut_stats::series::OperationPoint;

    fn point(t: i64, rps: u64) -> SeriesPoint {
        SeriesPoint {
            time_ms: t,
            active_vus: 4,
            total: OperationPoint {
                requests: rps,
                p50_ms: 1.0,
                p90_ms: 2.0,
                p99_ms: 3.0,
                ..OperationPoint::default()
            },
            operations: Vec::new(),
        }
    }

    #[test]
    fn charts_are_svg_and_follow_the_data() {
        let one = run_charts(&[point(0, 10)]);
        assert_eq!(
            one.iter().map(|c| c.0).collect::<Vec<_>>(),
            ["requests", "latency", "errors", "vus"]
        );
        for (_, _, svg) in &one {
            assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{svg}");
        }
        assert!(one[1].2.contains("p99"), "latency legend");
        let two = run_charts(&[point(0, 10), point(1000, 50)]);
        assert_ne!(one[0].2, two[0].2, "a new point changes the chart");
        assert!(run_charts(&[]).iter().all(|c| c.2.contains("<svg")));
    }
}
