//! `wunet bench roofline --json results.jsonl --out roofline.png`: a
//! roofline plot (log-log: arithmetic intensity in FLOP/byte against
//! GFLOP/s) with the ceilings of the file's `bench peak` line (f32 FMA, f16
//! FMA and matrix units where measured, and the best bandwidth as the
//! sloped roof) and one point per kernel line, drawn with the plotting
//! stack of `curves.png` (plotters, embedded DejaVu Sans).
//!
//! Data-movement kernels (0 FLOPs) have no place on a log axis; they are
//! drawn at the left edge, at their share of the bandwidth roof there
//! (their `pct_peak`), as hollow squares. Kernels more than five decades
//! below the FMA peak (the loss-scale update: 4 FLOP) are left out.

use super::json::{Line, PeakRecord, Record};
use crate::data::io::write_png_rgb;
use crate::error::{Error, Result};
use crate::train::plot::font_available;
use plotters::prelude::*;
use std::path::Path;

const W: u32 = 1100;
const H: u32 = 760;

fn perr(e: impl std::fmt::Display) -> Error {
    Error::Other(format!("roofline plot: {e}"))
}

/// Where a kernel line goes: (intensity, GFLOP/s), or `None` for data movement.
fn point(r: &Record) -> Option<(f64, f64)> {
    (r.flop > 0.0 && r.intensity > 0.0).then(|| (r.intensity, r.achieved_gflops()))
}

/// Plot range: x (intensity) and y (GFLOP/s) bounds covering roofs and points.
fn ranges(peak: &PeakRecord, recs: &[Record]) -> ((f64, f64), (f64, f64)) {
    let top = [peak.matrix_gflops, peak.fma_f16_gflops]
        .into_iter()
        .flatten()
        .fold(peak.fma_gflops, f64::max);
    let pts: Vec<(f64, f64)> = recs.iter().filter_map(point).collect();
    let xmin = pts.iter().map(|p| p.0).fold(0.05, f64::min) / 2.0;
    let xmax = pts
        .iter()
        .map(|p| p.0)
        .fold(peak.ceilings().ridge() * 8.0, f64::max)
        * 2.0;
    // Down to the lowest point, but at most five decades below the FMA peak.
    let ymin = pts
        .iter()
        .map(|p| p.1)
        .filter(|v| *v > 0.0)
        .fold(peak.ceilings().gbps * xmin, f64::min)
        / 4.0;
    ((xmin, xmax), (ymin.max(peak.fma_gflops * 1e-5), top * 3.0))
}

/// Render the roofline of `peak` and `recs` to RGB bytes (`W` x `H`).
pub fn render(peak: &PeakRecord, recs: &[Record], title: &str) -> Result<Vec<u8>> {
    let text = font_available();
    let mut buf = vec![0u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let ((x0, x1), (y0, y1)) = ranges(peak, recs);
        let mut b = ChartBuilder::on(&root);
        b.margin(16);
        if text {
            b.caption(title, ("sans-serif", 18))
                .x_label_area_size(40)
                .y_label_area_size(70);
        }
        let mut c = b
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .map_err(perr)?;
        let mut mesh = c.configure_mesh();
        if text {
            mesh.x_desc("arithmetic intensity (FLOP/byte)")
                .y_desc("GFLOP/s");
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(perr)?;
        draw_roofs(&mut c, peak, (x0, x1), text)?;
        draw_points(&mut c, peak, recs, (x0, y0), text)?;
        if text {
            c.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(perr)?;
        }
        root.present().map_err(perr)?;
    }
    Ok(buf)
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<
        plotters::coord::combinators::LogCoord<f64>,
        plotters::coord::combinators::LogCoord<f64>,
    >,
>;

/// The bandwidth slope up to each compute ceiling, and the flat ceilings.
fn draw_roofs(c: &mut Chart, peak: &PeakRecord, (x0, x1): (f64, f64), text: bool) -> Result<()> {
    let bw = peak.ceilings().gbps;
    let roofs = [
        ("f32 FMA", Some(peak.fma_gflops), RED),
        ("f16 FMA", peak.fma_f16_gflops, MAGENTA),
        ("f16 matrix units", peak.matrix_gflops, BLUE),
    ];
    for (name, v, colour) in roofs {
        let Some(top) = v else { continue };
        let ridge = top / bw;
        let pts = vec![(x0, bw * x0), (ridge, top), (x1, top)];
        let s = c
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
            .map_err(perr)?;
        if text {
            let label = format!("{name} {top:.1} GFLOP/s, {bw:.1} GB/s");
            s.label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
        }
    }
    Ok(())
}

/// One marker per kernel line, one legend entry per kind: filled circles for
/// compute-bound kernels, triangles for memory-bound kernels with FLOPs,
/// hollow squares at the left edge for data movement, large black circles
/// (labelled) for whole U-Net steps. Points below the plot are left out.
fn draw_points(
    c: &mut Chart,
    peak: &PeakRecord,
    recs: &[Record],
    (x0, y0): (f64, f64),
    text: bool,
) -> Result<()> {
    let bw = peak.ceilings().gbps;
    let green = RGBColor(0, 140, 0);
    let orange = RGBColor(220, 120, 0);
    let mut kinds: [Vec<(f64, f64)>; 4] = Default::default();
    let mut steps = Vec::new();
    for r in recs {
        let (p, kind) = match point(r) {
            Some(p) if r.op == "step" => {
                steps.push((format!("{} step", r.case.trim_end_matches(".step")), p));
                (p, 0)
            }
            Some(p) if r.bound == "compute" => (p, 1),
            Some(p) => (p, 2),
            None => ((x0 * 1.05, bw * x0 * r.pct_peak / 100.0), 3),
        };
        if p.1 >= y0 && p.1.is_finite() {
            kinds[kind].push(p);
        }
    }
    let [step, compute, memory, moves] = kinds;
    let legend =
        |s: &mut plotters::chart::SeriesAnno<BitMapBackend>, name: &str, colour: RGBColor| {
            if text {
                s.label(name)
                    .legend(move |(x, y)| Circle::new((x + 8, y), 4, colour.filled()));
            }
        };
    let s = c
        .draw_series(compute.iter().map(|&p| Circle::new(p, 4, green.filled())))
        .map_err(perr)?;
    legend(s, "compute-bound op", green);
    let s = c
        .draw_series(
            memory
                .iter()
                .map(|&p| TriangleMarker::new(p, 5, orange.filled())),
        )
        .map_err(perr)?;
    legend(s, "memory-bound op", orange);
    let s = c
        .draw_series(moves.iter().map(|&p| {
            Rectangle::new(
                [(p.0, p.1 / 1.08), (p.0 * 1.08, p.1 * 1.08)],
                orange.stroke_width(1),
            )
        }))
        .map_err(perr)?;
    legend(
        s,
        "data movement (0 FLOP), at its share of bandwidth",
        orange,
    );
    let s = c
        .draw_series(step.iter().map(|&p| Circle::new(p, 7, BLACK.filled())))
        .map_err(perr)?;
    legend(s, "whole U-Net training step", BLACK);
    if text {
        for (label, p) in steps {
            c.draw_series([Text::new(
                label,
                (p.0 * 1.15, p.1),
                ("sans-serif", 14).into_font(),
            )])
            .map_err(perr)?;
        }
    }
    Ok(())
}

/// Read `json` (a `--json` results file with a `bench peak` line) and write
/// the roofline PNG to `out`; returns the number of kernels plotted.
pub fn plot_file(json: &Path, out: &Path) -> Result<usize> {
    let lines = super::json::read_jsonl(json)?;
    let mut peak = None;
    let mut recs = Vec::new();
    for l in lines {
        match l {
            Line::Peak(p) => peak = peak.or(Some(p)),
            Line::Kernel(r) => recs.push(r),
        }
    }
    let peak = peak.ok_or_else(|| {
        Error::file(
            json,
            "no ceilings line (op \"peak\"): use `wunet bench all --json` or prepend `wunet bench peak --json`",
        )
    })?;
    let title = format!(
        "roofline: {} ({}, {})",
        peak.env.adapter, peak.env.backend, peak.env.driver
    );
    let rgb = render(&peak, &recs, &title)?;
    write_png_rgb(out, W as usize, H as usize, &rgb)?;
    Ok(recs.len())
}
