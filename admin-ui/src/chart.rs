//! The issuance-rate chart: one stacked bar per hour (allowed below, denied above), as
//! SVG drawn from `GET stats/issuance` (sizes are SVG attributes, not inline styles,
//! which the Content-Security-Policy forbids).

use leptos::prelude::*;

use crate::api::HourCount;

/// The drawing's width and height in SVG units (it scales to its container).
pub const CHART_WIDTH: f64 = 720.0;
/// See [`CHART_WIDTH`].
pub const CHART_HEIGHT: f64 = 200.0;
const LEFT: f64 = 36.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 10.0;

/// One bar's geometry: where it stands and how tall each part is.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Left edge.
    pub x: f64,
    /// Width.
    pub width: f64,
    /// Height of the allowed part.
    pub allow_height: f64,
    /// Height of the denied part, drawn on top.
    pub deny_height: f64,
}

/// The largest hourly total, at least 1 (so an empty day draws flat bars).
pub fn scale_max(hours: &[HourCount]) -> u64 {
    hours
        .iter()
        .map(|h| h.allow + h.deny)
        .max()
        .unwrap_or(0)
        .max(1)
}

/// The bars for `hours`, left to right, scaled to the tallest hour.
pub fn bars(hours: &[HourCount]) -> Vec<Bar> {
    let plot_width = CHART_WIDTH - LEFT;
    let plot_height = CHART_HEIGHT - TOP - BOTTOM;
    let slot = plot_width / hours.len().max(1) as f64;
    let max = scale_max(hours) as f64;
    hours
        .iter()
        .enumerate()
        .map(|(i, h)| Bar {
            x: LEFT + i as f64 * slot + slot * 0.15,
            width: slot * 0.7,
            allow_height: h.allow as f64 / max * plot_height,
            deny_height: h.deny as f64 / max * plot_height,
        })
        .collect()
}

/// `2026-11-28T17:00:00Z` → `17:00`.
fn hour_label(hour: &str) -> String {
    hour.split_once('T')
        .map(|(_, t)| t.chars().take(5).collect())
        .unwrap_or_default()
}

/// The chart of `hours` (oldest first), with totals in its caption.
#[component]
pub fn IssuanceChart(
    /// Decisions per hour, oldest first.
    hours: Vec<HourCount>,
) -> impl IntoView {
    let allowed: u64 = hours.iter().map(|h| h.allow).sum();
    let denied: u64 = hours.iter().map(|h| h.deny).sum();
    let max = scale_max(&hours);
    let baseline = CHART_HEIGHT - BOTTOM;
    let geometry = bars(&hours);
    let count = hours.len();
    let bars_view = hours
        .iter()
        .zip(geometry)
        .enumerate()
        .map(|(i, (h, bar))| {
            let allow_y = baseline - bar.allow_height;
            let deny_y = allow_y - bar.deny_height;
            let tip = format!(
                "{}: {} allowed, {} denied",
                crate::ui::human_time(&h.hour),
                h.allow,
                h.deny
            );
            // Every sixth hour (and the last) is labelled under its bar.
            let label = (i % 6 == 0 || i + 1 == count).then(|| {
                view! {
                    <text class="axis" x=(bar.x + bar.width / 2.0).to_string()
                        y=(CHART_HEIGHT - 6.0).to_string() text-anchor="middle">
                        {hour_label(&h.hour)}
                    </text>
                }
            });
            view! {
                <g class="bar" data-allow=h.allow.to_string() data-deny=h.deny.to_string()>
                    <title>{tip}</title>
                    <rect class="bar-allow" x=bar.x.to_string() y=allow_y.to_string()
                        width=bar.width.to_string() height=bar.allow_height.to_string()></rect>
                    <rect class="bar-deny" x=bar.x.to_string() y=deny_y.to_string()
                        width=bar.width.to_string() height=bar.deny_height.to_string()></rect>
                    {label}
                </g>
            }
        })
        .collect::<Vec<_>>();
    let view_box = format!("0 0 {CHART_WIDTH} {CHART_HEIGHT}");
    view! {
        <figure class="chart">
            <svg viewBox=view_box role="img" aria-label="Requests per hour, last 24 hours">
                <line class="axis-line" x1=LEFT.to_string() x2=CHART_WIDTH.to_string()
                    y1=baseline.to_string() y2=baseline.to_string()></line>
                <text class="axis" x=(LEFT - 6.0).to_string() y=(TOP + 8.0).to_string()
                    text-anchor="end">{max.to_string()}</text>
                <text class="axis" x=(LEFT - 6.0).to_string() y=baseline.to_string()
                    text-anchor="end">"0"</text>
                {bars_view}
            </svg>
            <figcaption>
                <span class="legend legend-allow">{format!("{allowed} allowed")}</span>
                <span class="legend legend-deny">{format!("{denied} denied")}</span>
                " in the last " {count.to_string()} " hours"
            </figcaption>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(allow: u64, deny: u64) -> HourCount {
        HourCount {
            hour: "2026-11-28T17:00:00Z".into(),
            allow,
            deny,
        }
    }

    #[test]
    fn the_tallest_hour_fills_the_plot_and_others_scale_to_it() {
        let hours = [hour(10, 0), hour(3, 2), hour(0, 0)];
        let b = bars(&hours);
        let full = CHART_HEIGHT - TOP - BOTTOM;
        assert_eq!(b.len(), 3);
        assert!((b[0].allow_height - full).abs() < 1e-9);
        assert!((b[1].allow_height - full * 0.3).abs() < 1e-9);
        assert!((b[1].deny_height - full * 0.2).abs() < 1e-9);
        assert_eq!(b[2].allow_height + b[2].deny_height, 0.0);
        assert!(b[1].x > b[0].x + b[0].width);
    }

    #[test]
    fn an_empty_day_scales_to_one() {
        assert_eq!(scale_max(&[hour(0, 0)]), 1);
        assert_eq!(scale_max(&[]), 1);
        assert_eq!(hour_label("2026-11-28T07:00:00Z"), "07:00");
    }
}
