//! Geometry of the register-blocked kernels for CPU adapters (`conv_fwd::main_cpu`
//! and the grad-input kernel's CPU entry): the register block, the lanes per output
//! row and the workgroup size, from the window and the output's width.

use crate::shape::Window;

/// Register block (output channels, positions per invocation) of the CPU forward kernel:
/// as many positions as keep the row segment within 16 values, at most 4.
pub(super) fn cpu_block(win: &Window) -> (usize, usize) {
    if let Ok(v) = std::env::var("WUNET_CPU_BLOCK") {
        if let Some((a, b)) = v.split_once('x') {
            if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                if a * b <= 32 && a > 0 && b > 0 && span(win, b) <= 16 {
                    return (a, b);
                }
            }
        }
    }
    let pb = (1..=4).rev().find(|&pb| span(win, pb) <= 16).unwrap_or(1);
    (32 / pb.max(4), pb)
}

/// Lanes of a 64-wide workgroup given to one output row of `width` positions at `pb`
/// positions per lane: a power of two, so narrow rows share a workgroup.
pub(super) fn lanes_per_row(width: usize, pb: usize) -> usize {
    width.div_ceil(pb).next_power_of_two().clamp(1, 64)
}

/// Workgroup size of the CPU kernels: 64, or the (power-of-two, >= 8) number of
/// lanes that `rows` rows of `lpr` lanes need when that is fewer.
pub(super) fn cpu_workgroup(rows: usize, lpr: usize) -> usize {
    (rows * lpr).next_power_of_two().clamp(8, 64).max(lpr)
}

/// Input columns one lane reads for `pb` adjacent outputs of a row.
pub(super) fn span(win: &Window, pb: usize) -> usize {
    (pb - 1) * win.stride[2] + (win.kernel[2] - 1) * win.dilation[2] + 1
}

/// Pipeline constants of `conv_fwd::main_cpu` for this window.
pub(super) fn cpu_overrides(win: &Window) -> Vec<(&'static str, f64)> {
    let (ob, pb) = cpu_block(win);
    vec![
        ("OB", ob as f64),
        ("PB", pb as f64),
        ("KW", win.kernel[2] as f64),
        ("SW", win.stride[2] as f64),
        ("DW", win.dilation[2] as f64),
    ]
}
