//! Charts of a run, drawn with `plotters` and written as SVG and PNG side by side.
//!
//! [`write_curves`] reads a pre-training run's `metrics.jsonl` back and draws a grid of panels
//! on one shared step axis: generator loss (train and eval), discriminator loss (train and
//! eval), generator accuracy with the unigram baseline, discriminator AUC with its context-free
//! (rarity) baselines and the two context probes (binned AUC, unigram-replacement AUC),
//! discriminator accuracy and learning rate. Every panel has ticks, axis labels, a title and a
//! legend; series absent from the file are skipped, malformed lines are ignored.
//!
//! [`Chart`] is the general form (a grid of [`Panel`]s of [`Series`]); fine-tuning draws its
//! per-seed curves with it too. Text is drawn in DejaVu Sans, embedded in the binary (the
//! `dejavu` crate): no system fonts or font libraries are needed, so a bare CI machine draws the
//! same PNG. The PNG is encoded with the `png` crate.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{Error, Result};

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    /// A thin solid line (dense series: training steps).
    Line,
    /// A thicker line with a marker at every point (sparse series: evaluations, epochs).
    Markers,
    /// A dashed line (baselines).
    Dashed,
}

/// One named curve of a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The name shown in the legend (a panel whose only series has no name has no legend).
    pub name: String,
    /// `(x, y)` points; non-finite (or absurdly large) ones are dropped, the rest sorted by x (for one x the last
    /// point wins, as a resumed run's rewritten steps should).
    pub points: Vec<(f64, f64)>,
    /// Index into the chart's colour cycle (series that belong together share one).
    pub color: usize,
    /// How it is drawn.
    pub kind: SeriesKind,
}

impl Series {
    /// A series with no points yet.
    pub fn new(name: impl Into<String>, color: usize, kind: SeriesKind) -> Self {
        Self { name: name.into(), points: Vec::new(), color, kind }
    }
}

/// One panel: a titled plot with its own y axis; the x axis is the chart's.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Shown above the plot.
    pub title: String,
    /// The y axis' label.
    pub y_label: String,
    /// The curves.
    pub series: Vec<Series>,
    /// Values the y range always includes (e.g. 0 for an accuracy, 0.5 for an AUC).
    pub y_include: Vec<f64>,
}

impl Panel {
    /// A panel with no series yet.
    pub fn new(title: impl Into<String>, y_label: impl Into<String>) -> Self {
        Self { title: title.into(), y_label: y_label.into(), series: Vec::new(), y_include: Vec::new() }
    }

    /// Whether any series has a finite point.
    pub fn has_data(&self) -> bool {
        self.series.iter().any(|s| s.points.iter().any(plottable))
    }
}

/// A grid of panels sharing one x axis (range and label).
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Shown above the grid.
    pub title: String,
    /// The x axis' label (every panel's).
    pub x_label: String,
    /// Whether x takes whole values only (epochs): ticks fall on integers.
    pub integer_x: bool,
    /// Panels per row.
    pub columns: usize,
    /// The panels, row by row.
    pub panels: Vec<Panel>,
}

/// Pixel size of one panel of the PNG (the SVG has the same geometry).
const CELL: (u32, u32) = (620, 380);
/// Height of the chart's title strip.
const TITLE_H: u32 = 44;
/// The font family every text uses (registered once, from the embedded DejaVu Sans).
const FAMILY: &str = "sans-serif";
/// The colour cycle (matplotlib's "tab10").
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The PNG written beside `svg` (the same stem).
pub fn png_path(svg: &Path) -> PathBuf {
    svg.with_extension("png")
}

impl Chart {
    /// The image size in pixels.
    pub fn size(&self) -> (u32, u32) {
        let cols = self.columns.clamp(1, self.panels.len().max(1));
        let rows = self.panels.len().div_ceil(cols).max(1);
        (CELL.0 * cols as u32, TITLE_H + CELL.1 * rows as u32)
    }

    /// Draws the chart to `svg` and to [`png_path`]`(svg)` (each written atomically).
    ///
    /// # Errors
    /// [`Error::Chart`] when drawing fails, [`Error::Io`] when a file cannot be written.
    pub fn write(&self, svg: &Path) -> Result<()> {
        let fail = |path: &Path, message: String| Error::Chart { path: path.to_path_buf(), message };
        register_font().map_err(|m| fail(svg, m))?;
        let (w, h) = self.size();

        let mut text = String::new();
        {
            let root = SVGBackend::with_string(&mut text, (w, h)).into_drawing_area();
            self.draw(&root).map_err(|e| fail(svg, e.to_string()))?;
            root.present().map_err(|e| fail(svg, e.to_string()))?;
        }
        crate::hf_write(svg, text.as_bytes())?;

        let png = png_path(svg);
        let mut rgb = vec![0u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            self.draw(&root).map_err(|e| fail(&png, e.to_string()))?;
            root.present().map_err(|e| fail(&png, e.to_string()))?;
        }
        let bytes = encode_png(&rgb, w, h).map_err(|e| fail(&png, e.to_string()))?;
        crate::hf_write(&png, &bytes)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<(), DB> {
        root.fill(&WHITE)?;
        let (title, grid) = root.split_vertically(TITLE_H);
        let (tw, _) = title.dim_in_pixel();
        title.draw(&Text::new(
            self.title.clone(),
            (tw as i32 / 2, TITLE_H as i32 / 2),
            font(22.0).pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        if self.panels.is_empty() {
            return Ok(());
        }
        let cols = self.columns.clamp(1, self.panels.len());
        let rows = self.panels.len().div_ceil(cols);
        let x = self.x_range();
        for (panel, cell) in self.panels.iter().zip(grid.split_evenly((rows, cols))) {
            self.draw_panel(panel, &cell, x.clone())?;
        }
        Ok(())
    }

    /// The x range shared by every panel: all points, padded (whole epochs keep half a step).
    fn x_range(&self) -> std::ops::Range<f64> {
        let xs = self.panels.iter().flat_map(|p| &p.series).flat_map(|s| &s.points).filter(|p| plottable(p)).map(|p| p.0);
        let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
        if !lo.is_finite() {
            return 0.0..1.0;
        }
        if self.integer_x {
            return (lo - 0.5).min(0.5)..hi + 0.5;
        }
        let lo = lo.min(0.0);
        let hi = if hi > lo { hi } else { lo + 1.0 };
        lo..hi + (hi - lo) * 0.02
    }

    fn draw_panel<DB: DrawingBackend>(&self, panel: &Panel, cell: &DrawingArea<DB, Shift>, x: std::ops::Range<f64>) -> DrawResult<(), DB> {
        let series: Vec<Series> = panel.series.iter().map(clean).filter(|s| !s.points.is_empty()).collect();
        let (cw, _) = cell.dim_in_pixel();
        let named = !(series.len() == 1 && series[0].name.is_empty());
        let legend = if named { legend_layout(cell, &series, cw.saturating_sub(90))? } else { Vec::new() };
        let legend_h = legend.last().map_or(0, |e| e.row + 1) as u32 * LEGEND_ROW + if legend.is_empty() { 0 } else { 6 };
        let (_, cell_h) = cell.dim_in_pixel();
        let (plot, legend_area) = cell.split_vertically(cell_h.saturating_sub(legend_h));

        let y = y_range(&series, &panel.y_include);
        // Whole x values: at most one tick per unit, so every tick falls on a whole number.
        let x_ticks = if self.integer_x { ((x.end - x.start).ceil() as usize + 1).min(12) } else { 8 };
        let mut chart = ChartBuilder::on(&plot)
            .caption(&panel.title, font(17.0))
            .margin(10)
            .margin_right(18)
            .x_label_area_size(40)
            .y_label_area_size(66)
            .build_cartesian_2d(x, y)?;
        let integer_x = self.integer_x;
        let x_fmt = move |v: &f64| fmt_x(*v, integer_x);
        let y_fmt = |v: &f64| fmt_tick(*v);
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(panel.y_label.as_str())
            .x_labels(x_ticks)
            .y_labels(7)
            .max_light_lines(4)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style(font(13.0))
            .axis_desc_style(font(14.0))
            .bold_line_style(RGBColor(225, 225, 225))
            .light_line_style(RGBColor(245, 245, 245))
            .axis_style(RGBColor(90, 90, 90))
            .draw()?;
        if series.is_empty() {
            let (xr, yr) = (chart.x_range(), chart.y_range());
            let middle = ((xr.start + xr.end) / 2.0, (yr.start + yr.end) / 2.0);
            let style = font(14.0).color(&RGBColor(120, 120, 120)).pos(Pos::new(HPos::Center, VPos::Center));
            chart.plotting_area().draw(&Text::new("no data", middle, style))?;
        }
        for s in &series {
            let color = COLORS[s.color % COLORS.len()];
            let pts = s.points.iter().copied();
            match s.kind {
                SeriesKind::Line => {
                    chart.draw_series(LineSeries::new(pts, color.stroke_width(1)))?;
                }
                SeriesKind::Markers => {
                    chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
                    chart.draw_series(pts.map(|p| Circle::new(p, 3, color.filled())))?;
                }
                SeriesKind::Dashed => {
                    chart.draw_series(DashedLineSeries::new(pts, 6, 4, color.stroke_width(2)))?;
                }
            }
        }
        draw_legend(&legend_area, &series, &legend)
    }
}

type DrawResult<T, DB> = std::result::Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Height of one legend row.
const LEGEND_ROW: u32 = 19;
/// Size of the legend's text.
const LEGEND_FONT: f64 = 13.0;
/// Width of a legend entry's line sample plus the gap before its text.
const SAMPLE_W: i32 = 34;

struct LegendEntry {
    row: usize,
    x: i32,
}

/// Where each legend entry goes: left to right, wrapping at `width`.
fn legend_layout<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, series: &[Series], width: u32) -> DrawResult<Vec<LegendEntry>, DB> {
    let mut out = Vec::with_capacity(series.len());
    let (mut row, mut x) = (0usize, 0i32);
    for s in series {
        let (tw, _) = area.estimate_text_size(&s.name, &font(LEGEND_FONT))?;
        let w = SAMPLE_W + tw as i32 + 22;
        if x > 0 && x + w > width as i32 {
            row += 1;
            x = 0;
        }
        out.push(LegendEntry { row, x });
        x += w;
    }
    Ok(out)
}

fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, series: &[Series], layout: &[LegendEntry]) -> DrawResult<(), DB> {
    let left = 72;
    for (s, e) in series.iter().zip(layout) {
        let color = COLORS[s.color % COLORS.len()];
        let (x, y) = (left + e.x, e.row as i32 * LEGEND_ROW as i32 + LEGEND_ROW as i32 / 2);
        let line = vec![(x, y), (x + 26, y)];
        match s.kind {
            SeriesKind::Dashed => {
                area.draw(&PathElement::new(vec![(x, y), (x + 10, y)], color.stroke_width(2)))?;
                area.draw(&PathElement::new(vec![(x + 16, y), (x + 26, y)], color.stroke_width(2)))?;
            }
            SeriesKind::Markers => {
                area.draw(&PathElement::new(line, color.stroke_width(2)))?;
                area.draw(&Circle::new((x + 13, y), 3, color.filled()))?;
            }
            SeriesKind::Line => area.draw(&PathElement::new(line, color.stroke_width(2)))?,
        }
        area.draw(&Text::new(s.name.clone(), (x + SAMPLE_W, y), font(LEGEND_FONT).pos(Pos::new(HPos::Left, VPos::Center))))?;
    }
    Ok(())
}

fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font()).color(&RGBColor(30, 30, 30))
}

/// Larger magnitudes are not drawn (a diverged value would flatten every other point, and the
/// range of two of them would overflow).
const PLOTTABLE: f64 = 1e100;

fn plottable(p: &(f64, f64)) -> bool {
    p.0.abs() < PLOTTABLE && p.1.abs() < PLOTTABLE // false for NaN too
}

/// A copy of `s` with plottable points only, sorted by x, the last point kept for a repeated x,
/// thinned to at most [`MAX_POINTS`] (+ 1).
fn clean(s: &Series) -> Series {
    let mut points: Vec<(f64, f64)> = s.points.iter().copied().filter(plottable).collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0)); // stable: equal x keep their order
    let mut kept: Vec<(f64, f64)> = Vec::with_capacity(points.len());
    for p in points {
        match kept.last_mut() {
            Some(last) if last.0 == p.0 => *last = p,
            _ => kept.push(p),
        }
    }
    // A long run logged often: every k-th point (and the last), so a file stays small.
    if kept.len() > MAX_POINTS {
        let k = kept.len().div_ceil(MAX_POINTS);
        let last = kept[kept.len() - 1];
        kept = kept.into_iter().step_by(k).collect();
        if kept.last() != Some(&last) {
            kept.push(last);
        }
    }
    Series { points: kept, ..s.clone() }
}

/// The most points a series is drawn with.
const MAX_POINTS: usize = 2000;

/// The y range: every point and `include`, padded by 6% (a flat series gets a band of ±10%, or
/// a unit scale when it is all zero).
fn y_range(series: &[Series], include: &[f64]) -> std::ops::Range<f64> {
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let data = ys.clone().count() > 0;
    let all = ys.chain(include.iter().copied().filter(|v| v.is_finite()));
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
    if !data || !lo.is_finite() {
        let (a, b) = include.iter().fold((0.0f64, 1.0f64), |(a, b), &v| if v.is_finite() { (a.min(v), b.max(v)) } else { (a, b) });
        return a..b;
    }
    let span = hi - lo;
    if span == 0.0 && hi == 0.0 {
        return -0.05..1.0; // all zero (a score that never moved): 0 at the bottom of a unit scale
    }
    let pad = if span > 0.0 { span * 0.06 } else { hi.abs() * 0.1 };
    lo - pad..hi + pad
}

fn fmt_x(v: f64, integer: bool) -> String {
    if integer {
        return if (v - v.round()).abs() < 1e-6 && v >= 0.0 { format!("{}", v.round()) } else { String::new() };
    }
    if v.abs() >= 10_000.0 && (v / 1000.0).fract().abs() < 1e-9 {
        return format!("{}k", v / 1000.0);
    }
    fmt_tick(v)
}

/// A tick label: at most 4 decimals, trailing zeros dropped; very small or large values in
/// scientific notation (learning rates).
pub fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a < 1e-12 {
        return "0".into();
    }
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.1e}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// Registers the embedded DejaVu Sans as [`FAMILY`] (once per process).
fn register_font() -> std::result::Result<(), String> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "the embedded DejaVu Sans font could not be read".to_string())
    })
    .clone()
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::High);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(rgb)?;
        writer.finish()?;
    }
    Ok(out)
}

/// The pre-training panels filled from the lines of `metrics.jsonl` (`{"kind": "train"|"eval",
/// "metrics": {"step": .., ..}}`); lines that are not such JSON are skipped and counted.
fn pretrain_panels(text: &str) -> (Vec<Panel>, usize) {
    // (panel, series name, colour, kind, record kind, metric key)
    type Spec = (usize, &'static str, usize, SeriesKind, &'static str, &'static str);
    const SPECS: &[Spec] = &[
        (0, "train", 0, SeriesKind::Line, "train", "mlm_loss"),
        (0, "eval", 1, SeriesKind::Markers, "eval", "mlm_loss"),
        (1, "train", 0, SeriesKind::Line, "train", "disc_loss"),
        (1, "eval", 1, SeriesKind::Markers, "eval", "disc_loss"),
        (2, "train", 0, SeriesKind::Line, "train", "gen_accuracy"),
        (2, "eval", 1, SeriesKind::Markers, "eval", "gen_accuracy"),
        (2, "unigram baseline (eval)", 7, SeriesKind::Dashed, "eval", "unigram_accuracy"),
        (3, "AUC", 0, SeriesKind::Markers, "eval", "auc"),
        (3, "rarity baseline", 0, SeriesKind::Dashed, "eval", "rarity_auc"),
        (3, "binned AUC", 3, SeriesKind::Markers, "eval", "binned_auc"),
        (3, "binned rarity", 3, SeriesKind::Dashed, "eval", "binned_rarity_auc"),
        (3, "unigram-replaced AUC", 2, SeriesKind::Markers, "eval", "unigram_auc"),
        (3, "unigram-replaced rarity", 2, SeriesKind::Dashed, "eval", "unigram_rarity_auc"),
        (4, "", 0, SeriesKind::Line, "train", "learning_rate"), // no legend: the title says it
        (5, "train", 0, SeriesKind::Line, "train", "disc_accuracy"),
        (5, "eval", 1, SeriesKind::Markers, "eval", "disc_accuracy"),
    ];
    let mut panels = vec![
        Panel::new("generator loss (MLM)", "cross-entropy"),
        Panel::new("discriminator loss (replaced-token detection)", "binary cross-entropy"),
        Panel::new("generator accuracy at masked positions", "accuracy"),
        Panel::new("discriminator AUC (eval) and context probes", "AUC"),
        Panel::new("learning rate", "learning rate"),
        Panel::new("discriminator accuracy", "accuracy"),
    ];
    panels[2].y_include = vec![0.0];
    panels[3].y_include = vec![0.5];
    panels[4].y_include = vec![0.0];
    let mut slots: Vec<(usize, usize)> = Vec::new(); // SPECS index -> (panel, series index)
    for (p, name, color, kind, _, _) in SPECS {
        panels[*p].series.push(Series::new(*name, *color, *kind));
        slots.push((*p, panels[*p].series.len() - 1));
    }
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            skipped += 1;
            continue;
        };
        let m = &v["metrics"];
        let (Some(kind), Some(step)) = (v["kind"].as_str(), m["step"].as_f64()) else {
            skipped += 1;
            continue;
        };
        for ((_, _, _, _, record, key), (p, s)) in SPECS.iter().zip(&slots) {
            if *record == kind
                && let Some(y) = m[*key].as_f64()
            {
                panels[*p].series[*s].points.push((step, y));
            }
        }
    }
    (panels, skipped)
}

/// Draws the curves of the pre-training run whose `metrics.jsonl` is `metrics`: `out` (SVG) and
/// the PNG beside it ([`png_path`]), each written atomically. Panels without any series are
/// left out (a generator-only run has no discriminator panels); a missing or empty file gives
/// a chart of empty panels, malformed lines are skipped.
///
/// # Errors
/// [`Error::Io`] when `metrics` exists but cannot be read or an image cannot be written,
/// [`Error::Chart`] when drawing fails.
pub fn write_curves(metrics: &Path, out: &Path) -> Result<()> {
    let text = match std::fs::read_to_string(metrics) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %metrics.display(), "no metrics file: the chart has no curves");
            String::new()
        }
        Err(e) => return Err(Error::io(metrics, e)),
    };
    let (mut panels, skipped) = pretrain_panels(&text);
    if skipped > 0 {
        tracing::warn!(path = %metrics.display(), skipped, "lines of the metrics file that are not metrics records were skipped");
    }
    for p in &mut panels {
        p.series.retain(|s| !s.points.is_empty());
    }
    if panels.iter().any(Panel::has_data) {
        panels.retain(Panel::has_data);
    }
    let run = metrics.parent().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned());
    let chart = Chart {
        title: match run {
            Some(r) if !r.is_empty() => format!("ELECTRA pre-training: {r}"),
            _ => "ELECTRA pre-training".into(),
        },
        x_label: "step".into(),
        integer_x: false,
        columns: 2,
        panels,
    };
    chart.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_MAGIC: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    fn synthetic_metrics(with_probes: bool) -> String {
        let mut lines = Vec::new();
        for step in (10..=200).step_by(10) {
            let t = f64::from(step) / 200.0;
            lines.push(format!(
                r#"{{"kind":"train","metrics":{{"step":{step},"mlm_loss":{},"disc_loss":{},"learning_rate":{},"gen_accuracy":{},"disc_accuracy":{},"tokens_per_sec":5000.0}}}}"#,
                9.0 - 5.0 * t,
                0.7 - 0.3 * t,
                5e-4 * t.min(0.5) * 2.0,
                0.4 * t,
                0.85 + 0.1 * t
            ));
            if step % 50 == 0 {
                let probes = if with_probes {
                    format!(r#","binned_auc":{},"binned_rarity_auc":0.5,"unigram_auc":{},"unigram_rarity_auc":0.51"#, 0.5 + 0.2 * t, 0.55 + 0.3 * t)
                } else {
                    String::new()
                };
                lines.push(format!(
                    r#"{{"kind":"eval","metrics":{{"step":{step},"mlm_loss":{},"disc_loss":{},"gen_accuracy":{},"unigram_accuracy":0.057,"auc":{},"rarity_auc":0.7,"disc_accuracy":0.9{probes}}}}}"#,
                    8.0 - 4.0 * t,
                    0.5 - 0.2 * t,
                    0.35 * t,
                    0.6 + 0.3 * t
                ));
            }
        }
        lines.join("\n") + "\n"
    }

    /// The texts of an SVG written by plotters (`<text ...>\nTEXT\n</text>`).
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text").skip(1).filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim().to_string())).collect()
    }

    fn check_png(path: &Path, size: (u32, u32)) {
        let bytes = std::fs::read(path).expect("png written");
        assert_eq!(bytes[..8], PNG_MAGIC, "not a PNG");
        assert!(bytes.len() > 10_000 && bytes.len() < 2_000_000, "PNG of {} bytes", bytes.len());
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder.read_info().expect("a readable PNG");
        assert_eq!((reader.info().width, reader.info().height), size);
    }

    #[test]
    fn chart_files_written_with_panels_series_and_axes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("my-run");
        std::fs::create_dir(&dir).expect("run dir");
        let metrics = dir.join("metrics.jsonl");
        std::fs::write(&metrics, synthetic_metrics(true)).expect("write");
        let svg = dir.join("curves.svg");
        write_curves(&metrics, &svg).expect("chart");
        let text = std::fs::read_to_string(&svg).expect("svg written");
        assert!(text.starts_with("<svg"), "{}", &text[..80.min(text.len())]);
        let texts = svg_texts(&text);
        for needle in [
            "ELECTRA pre-training: my-run",
            // panel titles
            "generator loss (MLM)",
            "discriminator loss (replaced-token detection)",
            "generator accuracy at masked positions",
            "discriminator AUC (eval) and context probes",
            "learning rate",
            "discriminator accuracy",
            // axis labels
            "step",
            "cross-entropy",
            "AUC",
            // series (legends)
            "train",
            "eval",
            "unigram baseline (eval)",
            "rarity baseline",
            "binned AUC",
            "binned rarity",
            "unigram-replaced AUC",
            "unigram-replaced rarity",
            // ticks
            "200",
            "5.0e-4",
        ] {
            assert!(texts.iter().any(|t| t == needle), "the SVG lacks the text {needle:?}: {texts:?}");
        }
        assert_eq!(texts.iter().filter(|t| *t == "step").count(), 6, "one shared step axis label per panel");
        assert!(!texts.iter().any(|t| t == "no data"));
        check_png(&png_path(&svg), (2 * CELL.0, TITLE_H + 3 * CELL.1));
    }

    #[test]
    fn older_metrics_without_probes_skip_those_series() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = dir.path().join("metrics.jsonl");
        std::fs::write(&metrics, synthetic_metrics(false)).expect("write");
        let svg = dir.path().join("curves.svg");
        write_curves(&metrics, &svg).expect("chart");
        let text = std::fs::read_to_string(&svg).expect("svg");
        assert!(text.contains("rarity baseline") && !text.contains("binned AUC") && !text.contains("unigram-replaced"));
    }

    #[test]
    fn empty_missing_and_malformed_metrics_still_give_a_chart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let svg = dir.path().join("curves.svg");
        // Missing.
        write_curves(&dir.path().join("absent.jsonl"), &svg).expect("missing file");
        assert!(std::fs::read_to_string(&svg).expect("svg").contains("no data"));
        assert!(png_path(&svg).is_file());
        // Empty, then garbage: truncated JSON, wrong shapes, non-numbers, a NaN-ish string.
        let metrics = dir.path().join("metrics.jsonl");
        for text in [
            "",
            "\n\n",
            "not json\n{\"kind\":\"train\",\"metrics\":{\"step\":1\n[1,2]\n{\"kind\":3}\n{\"kind\":\"eval\",\"metrics\":{\"step\":\"x\",\"auc\":0.5}}\n",
            "{\"kind\":\"train\",\"metrics\":{\"step\":5,\"mlm_loss\":\"NaN\",\"learning_rate\":1e308}}\n{\"kind\":\"train\",\"metrics\":{\"step\":5,\"mlm_loss\":3.0}}\n",
        ] {
            std::fs::write(&metrics, text).expect("write");
            write_curves(&metrics, &svg).expect("no panic, a chart");
            assert!(std::fs::read_to_string(&svg).expect("svg").contains("generator loss"));
            let bytes = std::fs::read(png_path(&svg)).expect("png");
            assert_eq!(bytes[..8], PNG_MAGIC);
        }
        // Only the panels with data are drawn; all six when none has any.
        std::fs::write(&metrics, "junk\n").expect("write");
        write_curves(&metrics, &svg).expect("junk");
        assert_eq!(image_size(&png_path(&svg)), (2 * CELL.0, TITLE_H + 3 * CELL.1));
        // A single point (one train line) still has a sensible range; one panel, one row.
        std::fs::write(&metrics, "{\"kind\":\"train\",\"metrics\":{\"step\":0,\"mlm_loss\":3.0}}\n").expect("write");
        write_curves(&metrics, &svg).expect("one point");
        assert!(std::fs::read_to_string(&svg).expect("svg").contains("generator loss"));
        assert_eq!(image_size(&png_path(&svg)), (CELL.0, TITLE_H + CELL.1));
    }

    fn image_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).expect("png");
        let reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("png");
        (reader.info().width, reader.info().height)
    }

    #[test]
    fn flat_series_get_a_visible_y_range() {
        let flat = |y: f64| {
            let mut s = Series::new("s", 0, SeriesKind::Line);
            s.points = vec![(1.0, y), (2.0, y)];
            y_range(&[s], &[])
        };
        assert_eq!(flat(0.0), -0.05..1.0);
        let r = flat(5e-4);
        assert!(r.start < 5e-4 && r.end > 5e-4 && r.end - r.start < 2e-4, "{r:?}");
        assert_eq!(y_range(&[], &[0.5]), 0.0..1.0);
    }

    #[test]
    fn tick_labels() {
        assert_eq!(fmt_tick(0.0), "0");
        assert_eq!(fmt_tick(0.30000000000000004), "0.3");
        assert_eq!(fmt_tick(2.5), "2.5");
        assert_eq!(fmt_tick(0.0005), "5.0e-4");
        assert_eq!(fmt_tick(-1.0), "-1");
        assert_eq!(fmt_x(20_000.0, false), "20k");
        assert_eq!(fmt_x(250.0, false), "250");
        assert_eq!(fmt_x(2.0, true), "2");
        assert_eq!(fmt_x(2.5, true), "");
    }

    #[test]
    fn clean_sorts_drops_non_finite_and_keeps_the_last_of_a_step() {
        let mut s = Series::new("s", 0, SeriesKind::Line);
        s.points = vec![(2.0, 1.0), (1.0, f64::NAN), (1.0, 5.0), (2.0, 3.0), (f64::INFINITY, 1.0)];
        assert_eq!(clean(&s).points, vec![(1.0, 5.0), (2.0, 3.0)]);
        // A long series is thinned, keeping its first and last points.
        s.points = (0..10_001).map(|i| (f64::from(i), 1.0)).collect();
        let thin = clean(&s).points;
        assert!(thin.len() <= MAX_POINTS + 1, "{}", thin.len());
        assert_eq!((thin[0], thin[thin.len() - 1]), ((0.0, 1.0), (10_000.0, 1.0)));
    }
}
