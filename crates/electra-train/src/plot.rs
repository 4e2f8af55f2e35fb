//! A picture of the training curves (SVG, no dependencies): losses, generator accuracy,
//! discriminator AUC (and its margin over the context-free baseline) and learning rate against
//! steps, read back from `metrics.jsonl`.

use std::fmt::Write;
use std::path::Path;

use crate::Result;

struct Series {
    title: &'static str,
    points: Vec<(f64, f64)>,
}

fn read_series(metrics: &Path) -> Vec<Series> {
    let text = std::fs::read_to_string(metrics).unwrap_or_default();
    let mut series = vec![
        Series { title: "generator loss (train)", points: vec![] },
        Series { title: "discriminator loss (train)", points: vec![] },
        Series { title: "generator accuracy (eval)", points: vec![] },
        Series { title: "discriminator AUC (eval)", points: vec![] },
        Series { title: "learning rate", points: vec![] },
        Series { title: "AUC minus the context-free (rarity) AUC (eval)", points: vec![] },
    ];
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let m = &v["metrics"];
        let Some(step) = m["step"].as_f64() else { continue };
        let mut push = |i: usize, key: &str| {
            if let Some(y) = m[key].as_f64() {
                series[i].points.push((step, y));
            }
        };
        if v["kind"] == "train" {
            push(0, "mlm_loss");
            push(1, "disc_loss");
            push(4, "learning_rate");
        } else {
            push(2, "gen_accuracy");
            push(3, "auc");
            if let (Some(a), Some(r)) = (m["auc"].as_f64(), m["rarity_auc"].as_f64()) {
                series[5].points.push((step, a - r));
            }
        }
    }
    series
}

/// Writes the curves of `metrics` to `out` (atomically).
pub fn write_curves(metrics: &Path, out: &Path) -> Result<()> {
    let series = read_series(metrics);
    let (w, h, pad) = (420.0, 220.0, 40.0);
    let mut svg = String::new();
    let total_h = h * series.len() as f64;
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{total_h}" font-family="sans-serif" font-size="11">"#
    );
    for (k, s) in series.iter().enumerate() {
        let top = k as f64 * h;
        let _ = write!(svg, r#"<text x="{pad}" y="{}" font-size="13">{}</text>"#, top + 16.0, s.title);
        let _ = write!(
            svg,
            r##"<rect x="{pad}" y="{}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
            top + 24.0,
            w - 2.0 * pad,
            h - 60.0
        );
        if s.points.is_empty() {
            continue;
        }
        let (x0, x1) = s.points.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (y0, y1) = s.points.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let (xs, ys) = ((x1 - x0).max(1e-12), (y1 - y0).max(1e-12));
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| {
                let px = pad + (x - x0) / xs * (w - 2.0 * pad);
                let py = top + 24.0 + (1.0 - (y - y0) / ys) * (h - 60.0);
                format!("{px:.1},{py:.1}")
            })
            .collect();
        let _ = write!(
            svg,
            r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{}"/>"##,
            pts.join(" ")
        );
        let _ = write!(
            svg,
            r#"<text x="{pad}" y="{}">{y1:.4}</text><text x="{pad}" y="{}">{y0:.4}   steps {x0}..{x1}</text>"#,
            top + 36.0,
            top + h - 24.0
        );
    }
    svg.push_str("</svg>\n");
    crate::hf_write(out, svg.as_bytes())
}
