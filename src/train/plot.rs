//! `curves.png`: training loss (top) and validation metrics (bottom) against
//! the step, drawn with plotters into a bitmap and written atomically.
//!
//! Text uses DejaVu Sans, embedded in the binary (the `dejavu` crate), so
//! the plot looks the same on every machine, fonts installed or not;
//! `WUNET_FONT=<file.ttf>` picks another font.

use super::log::Row;
use crate::data::io::write_png_rgb;
use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// Register the font for plotters once: `WUNET_FONT` when it names a
/// loadable TrueType file, else the embedded DejaVu Sans. `false` only if
/// neither loads.
pub fn font_available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        if let Some(bytes) = std::env::var("WUNET_FONT")
            .ok()
            .and_then(|p| std::fs::read(p).ok())
        {
            let b: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, b).is_ok() {
                return true;
            }
        }
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
    })
}

fn perr(e: impl std::fmt::Display) -> Error {
    Error::Other(format!("plot: {e}"))
}

/// Draw the curves of `rows` into `path` (PNG, 900 x 640).
pub fn plot_curves(path: &Path, rows: &[Row]) -> Result<()> {
    let text = font_available();
    let rgb = render(rows, text).map_err(|e| Error::file(path, e))?;
    write_png_rgb(path, 900, 640, &rgb)
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A chart over `[0, max_step] x [0, ymax]` with its grid; captions and axis
/// labels only with `text`.
fn chart<'a, 'b>(
    area: &'a Area<'b>,
    text: bool,
    caption: &str,
    max_step: f64,
    ymax: f64,
) -> Result<Chart<'a, 'b>> {
    let mut b = ChartBuilder::on(area);
    b.margin(12);
    if text {
        b.caption(caption, ("sans-serif", 18))
            .x_label_area_size(28)
            .y_label_area_size(56);
    }
    let mut c = b
        .build_cartesian_2d(0.0..max_step, 0.0..ymax)
        .map_err(perr)?;
    let mut mesh = c.configure_mesh();
    if text {
        mesh.x_desc("step")
            .x_label_formatter(&|x| format!("{x:.0}"));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(perr)?;
    Ok(c)
}

/// Render to RGB bytes; `text: false` draws no text at all.
pub fn render(rows: &[Row], text: bool) -> Result<Vec<u8>> {
    let (w, h) = (900u32, 640u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let (top, bottom) = root.split_vertically(h / 2);
        let max_step = rows.iter().map(|r| r.step).max().unwrap_or(1).max(1) as f64;
        // training loss
        let loss: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| r.loss.filter(|l| l.is_finite()).map(|l| (r.step as f64, l)))
            .collect();
        let ymax = loss.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-3) * 1.05;
        let mut c = chart(&top, text, "training loss", max_step, ymax)?;
        c.draw_series(LineSeries::new(loss, &BLUE)).map_err(perr)?;
        // validation metrics
        type Get = fn(&Row) -> Option<f64>;
        let series: [(&str, RGBColor, Get); 4] = [
            ("val pixel error", RED, |r| r.val_pixel_error),
            ("val Rand error", MAGENTA, |r| r.val_rand_error),
            ("val ISBI Rand error", CYAN, |r| r.val_isbi_rand_error),
            ("val mean Dice", GREEN, |r| r.val_mean_dice),
        ];
        let mut c = chart(&bottom, text, "validation", max_step, 1.0)?;
        let mut any = false;
        for (name, colour, get) in series {
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|r| get(r).map(|v| (r.step as f64, v)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            any = true;
            let s = c
                .draw_series(LineSeries::new(pts.clone(), &colour))
                .map_err(perr)?;
            if text {
                s.label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
            }
            c.draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(perr)?;
        }
        if text && any {
            c.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(perr)?;
        }
        root.present().map_err(perr)?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        (1..=20)
            .map(|s| Row {
                step: s,
                loss: Some(1.0 / s as f64),
                val_pixel_error: (s % 5 == 0).then_some(0.3 / s as f64),
                val_mean_dice: (s % 5 == 0).then_some(1.0 - 1.0 / s as f64),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn renders_without_text() {
        let rgb = render(&rows(), false).unwrap();
        // blue loss pixels and red metric pixels exist
        let has = |c: [u8; 3]| rgb.chunks(3).any(|p| p == c);
        assert!(has([0, 0, 255]) && has([255, 0, 0]));
    }

    #[test]
    fn renders_with_the_embedded_font() {
        assert!(font_available());
        let with = render(&rows(), true).unwrap();
        let without = render(&rows(), false).unwrap();
        assert_ne!(with, without);
    }
}
