//! The chart of a fine-tuning run over several seeds: training loss and every dev score per
//! epoch, one line per seed, as SVG and PNG (drawn by [`electra_train::plot::Chart`]).

use std::path::Path;

use electra_train::plot::{Chart, Panel, Series, SeriesKind};

use crate::run::RunResult;
use crate::{Error, Result};

/// The chart files written in a fine-tuning output directory: the SVG, and the PNG beside it.
pub const CHART_FILES: [&str; 2] = ["curves.svg", "curves.png"];

/// The chart of `runs` (one per seed) on task `task`: a training-loss panel, then one panel
/// per dev score (the first is the one that picks the best epoch), epochs on the x axis.
pub fn chart(task: &str, runs: &[&RunResult]) -> Chart {
    let mut names: Vec<&str> = Vec::new();
    for r in runs {
        for e in &r.epochs {
            for (n, _) in &e.scores {
                if !names.contains(&n.as_str()) {
                    names.push(n);
                }
            }
        }
    }
    let mut loss = Panel::new("training loss", "mean loss over the epoch");
    let mut scores: Vec<Panel> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let title = if i == 0 { format!("dev {n} (picks the best epoch)") } else { format!("dev {n}") };
            Panel::new(title, *n)
        })
        .collect();
    for (k, r) in runs.iter().enumerate() {
        let name = format!("seed {}", r.seed);
        let mut s = Series::new(&name, k, SeriesKind::Markers);
        s.points = r.epochs.iter().map(|e| (e.epoch as f64, e.train_loss)).collect();
        loss.series.push(s);
        for (panel, n) in scores.iter_mut().zip(&names) {
            let mut s = Series::new(&name, k, SeriesKind::Markers);
            s.points = r
                .epochs
                .iter()
                .filter_map(|e| e.scores.iter().find(|(m, _)| m == n).map(|(_, v)| (e.epoch as f64, *v)))
                .collect();
            panel.series.push(s);
        }
    }
    let seeds = runs.len();
    Chart {
        title: format!("fine-tuning {task}: {seeds} seed{}", if seeds == 1 { "" } else { "s" }),
        x_label: "epoch".into(),
        integer_x: true,
        columns: 2,
        panels: std::iter::once(loss).chain(scores).collect(),
    }
}

/// Writes [`chart`]`(task, runs)` to `dir` as [`CHART_FILES`] (each file atomically).
///
/// # Errors
/// [`Error::Io`] when a file cannot be written, [`Error::Invalid`] when drawing fails.
pub fn write_curves(task: &str, runs: &[&RunResult], dir: &Path) -> Result<()> {
    chart(task, runs).write(&dir.join(CHART_FILES[0])).map_err(|e| match e {
        electra_train::Error::Io { path, source } => Error::Io { path, source },
        other => Error::Invalid(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::EpochRecord;

    fn run(seed: u64, epochs: usize) -> RunResult {
        let epochs: Vec<EpochRecord> = (1..=epochs)
            .map(|epoch| EpochRecord {
                epoch,
                step: epoch * 10,
                train_loss: 0.7 / epoch as f64 + seed as f64 * 0.01,
                scores: vec![("accuracy".into(), 0.6 + 0.1 * epoch as f64), ("f1".into(), 0.5 + 0.1 * epoch as f64)],
                elapsed_s: epoch as f64,
            })
            .collect();
        RunResult { seed, epochs, best_epoch: 1, best: Vec::new(), model_dir: "seed".into(), seconds: 1.0 }
    }

    #[test]
    fn the_finetuning_chart_is_written_as_svg_and_png() {
        let dir = std::env::temp_dir().join(format!("electra-finetune-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let runs = [run(1, 3), run(2, 3), run(3, 2)];
        let refs: Vec<&RunResult> = runs.iter().collect();
        write_curves("sst-2", &refs, &dir).expect("chart");
        let svg = std::fs::read_to_string(dir.join(CHART_FILES[0])).expect("svg");
        // The texts of the SVG (plotters writes `<text ...>\nTEXT\n</text>`).
        let texts: Vec<&str> =
            svg.split("<text").skip(1).filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim())).collect();
        for needle in [
            "fine-tuning sst-2: 3 seeds",
            "training loss",
            "mean loss over the epoch",
            "dev accuracy (picks the best epoch)",
            "dev f1",
            "epoch",
            "seed 1",
            "seed 3",
            "3", // an epoch tick
        ] {
            assert!(texts.contains(&needle), "the SVG lacks the text {needle:?}: {texts:?}");
        }
        assert_eq!(texts.iter().filter(|t| **t == "seed 2").count(), 3, "one legend entry per panel");
        let png = std::fs::read(dir.join(CHART_FILES[1])).expect("png");
        assert_eq!(png[..8], [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]);
        assert!(png.len() > 10_000, "PNG of {} bytes", png.len());
        // Three panels (loss, accuracy, f1), one series per seed, in two columns: two rows.
        let c = chart("sst-2", &refs);
        assert_eq!(c.panels.len(), 3);
        assert!(c.panels.iter().all(|p| p.series.len() == 3));
        assert_eq!(c.panels[1].series[2].points, vec![(1.0, 0.6 + 0.1 * 1.0), (2.0, 0.6 + 0.1 * 2.0)]);
        let one_row = Chart { panels: c.panels[..2].to_vec(), ..c.clone() };
        assert_eq!(c.size().0, one_row.size().0);
        assert!(c.size().1 > one_row.size().1);
        // No runs (or runs without epochs): still a chart, no panic.
        write_curves("empty", &[], &dir).expect("empty chart");
        let empty = run(4, 0);
        write_curves("no epochs", &[&empty], &dir).expect("no epochs");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
