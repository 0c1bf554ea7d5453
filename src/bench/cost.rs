//! FLOP and byte counts of every op, in one place: [`op_cost`], a function of
//! the op (its attributes) and the shapes and dtypes of its inputs and
//! outputs, as the graph knows them. `wunet bench op|all|unet* --profile`
//! divide these by the measured time and place each kernel under the
//! adapter's own ceilings ([`Ceilings`], from `wunet bench peak`): a roofline.
//!
//! Bytes are the compulsory traffic: every input read once, every output
//! written once, inputs an op updates in place (optimiser state, running
//! statistics) written back once. FLOPs count a multiply-add as 2; for the
//! elementwise families they are per-element constants of the formula
//! (stated beside each op below; `exp`, `log`, `sqrt`, division and a
//! comparison count 1 each). Data movement ops (concat, crop, pad, split,
//! unpooling, nearest upsampling) have 0 FLOPs: they are memory-bound by
//! definition.

use crate::graph::ops::{Op, UpsampleMode};
use crate::shape::{DType, Shape};

/// Work of one op: floating-point operations and compulsory bytes moved.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    pub flop: f64,
    pub bytes: f64,
}

impl Cost {
    /// FLOP per byte (0 for data movement).
    pub fn intensity(&self) -> f64 {
        if self.bytes > 0.0 {
            self.flop / self.bytes
        } else {
            0.0
        }
    }
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        self.flop += o.flop;
        self.bytes += o.bytes;
    }
}

/// One tensor an op reads or writes.
pub type Operand = (Shape, DType);

fn bytes(ts: &[Operand]) -> f64 {
    ts.iter().map(|(s, dt)| s.bytes_of(*dt) as f64).sum()
}

fn numel(ts: &[Operand], i: usize) -> f64 {
    ts.get(i).map(|(s, _)| s.numel() as f64).unwrap_or(0.0)
}

/// Elements per row of a weight `[O, C, k..]` (per output channel; per input
/// channel `C_in` of a transposed weight): the multiply-adds one element
/// takes.
fn per_row(w: Option<&Operand>) -> f64 {
    w.map(|(s, _)| {
        let rows = s.logical().first().copied().unwrap_or(1).max(1);
        s.numel() as f64 / rows as f64
    })
    .unwrap_or(0.0)
}

/// FLOPs of `op` (see the module docs for the per-element constants).
fn flop(op: &Op, ins: &[Operand], outs: &[Operand]) -> f64 {
    let out0 = numel(outs, 0);
    let in0 = numel(ins, 0);
    match op {
        // Dense formula: 2 x outputs x (weight elements per output channel).
        Op::Conv(a) => 2.0 * out0 * per_row(ins.get(1)) + if a.bias { out0 } else { 0.0 },
        Op::ConvRelu(a) => {
            2.0 * out0 * per_row(ins.get(1)) + if a.bias { 2.0 * out0 } else { out0 }
        }
        // Every input element meets every weight of its row C_in.
        Op::ConvTranspose(a) => 2.0 * in0 * per_row(ins.get(1)) + if a.bias { out0 } else { 0.0 },
        Op::ConvGradInput(_) => 2.0 * in0 * per_row(ins.get(1)),
        Op::ConvGradWeight(_) => 2.0 * numel(ins, 1) * per_row(outs.first()),
        Op::ConvTransposeGradInput(_) => 2.0 * out0 * per_row(ins.get(1)),
        Op::ConvTransposeGradWeight(_) => 2.0 * in0 * per_row(outs.first()),
        Op::BiasGrad => in0,
        // One comparison or addition per window tap.
        Op::MaxPool(a) => out0 * a.window.kernel_numel() as f64,
        Op::AvgPool(a) => out0 * a.window.kernel_numel() as f64,
        Op::MaxPoolGrad(_) => out0,
        Op::AvgPoolGrad(a) => in0 * a.pool.window.kernel_numel() as f64,
        Op::MaxUnpool(_) | Op::MaxUnpoolGrad => 0.0,
        // Statistics (sum, sum of squares: 3), normalise and affine (4), running stats.
        Op::BatchNorm(a) if !a.training => 2.0 * in0,
        Op::BatchNormRelu(a) if !a.training => 3.0 * in0,
        Op::BatchNorm(_) | Op::InstanceNorm(_) | Op::GroupNorm(_) => 7.0 * in0,
        // The ReLU's comparison (forward) and mask (backward) on top.
        Op::BatchNormRelu(_) => 8.0 * in0,
        Op::BatchNormReluGrad(_) => 10.0 * in0,
        // Two reductions (dy, dy * xhat: 3) and the input gradient (6).
        Op::BatchNormGrad(_) | Op::InstanceNormGrad(_) | Op::GroupNormGrad(_) => 9.0 * in0,
        Op::Relu | Op::ReluGrad => in0,
        Op::LeakyRelu(_) | Op::LeakyReluGrad(_) | Op::Dropout(_) | Op::DropoutGrad(_) => 2.0 * in0,
        // exp, add, division, sign; grad: y * (1 - y) * dy.
        Op::Sigmoid => 4.0 * in0,
        Op::SigmoidGrad => 3.0 * in0,
        Op::Add | Op::Scale(_) => out0,
        Op::Concat
        | Op::Split(_)
        | Op::CenterCrop(_)
        | Op::Pad(_)
        | Op::Zeros(_)
        | Op::Identity
        | Op::CenterCropGrad(_)
        | Op::PadGrad(_) => 0.0,
        // Linear: a multiply-add per tap, 2^dims taps per output (input for the gradient).
        Op::Upsample(a) | Op::UpsampleGrad(a) => match a.mode {
            UpsampleMode::Nearest => 0.0,
            UpsampleMode::Linear => {
                let taps = a.factor.iter().filter(|&&f| f > 1).count();
                let n = if matches!(op, Op::Upsample(_)) {
                    out0
                } else {
                    in0
                };
                2.0 * n * (1u32 << taps) as f64
            }
        },
        // Per logit: max, exp, sum, log-sum-exp, softmax and its gradient.
        Op::SoftmaxCrossEntropy(_) => 6.0 * in0,
        // Per logit: softmax (4), three sums (3), gradient (4).
        Op::DiceLoss(_) => 11.0 * in0,
        // p -= lr * (m * v + g) with momentum and weight decay: 5; plain: 3.
        Op::SgdUpdate(a) => in0 * if a.uses_velocity() { 5.0 } else { 3.0 },
        // Two moments, bias corrections, sqrt, division, update.
        Op::AdamUpdate(_) => 14.0 * in0,
        // Conversion (and the loss scale on gradients).
        Op::Cast(_) => in0,
        Op::CastGrad(a) => in0 * if a.scale_grad { 2.0 } else { 1.0 },
        Op::FiniteCheck => ins.iter().map(|(s, _)| s.numel() as f64).sum(),
        Op::UpdateScale(_) => 4.0,
    }
}

/// FLOPs and compulsory bytes of one `op` node with these inputs and outputs.
pub fn op_cost(op: &Op, ins: &[Operand], outs: &[Operand]) -> Cost {
    if op.is_alias() {
        // An alias moves nothing (`Identity`: output 0 is its input).
        return Cost::default();
    }
    let written_back: Vec<Operand> = op
        .mutates()
        .iter()
        .filter_map(|&i| ins.get(i).copied())
        .collect();
    Cost {
        flop: flop(op, ins, outs),
        bytes: bytes(ins) + bytes(outs) + bytes(&written_back),
    }
}

/// The adapter's ceilings a kernel is measured against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ceilings {
    /// f32 FMA throughput, GFLOP/s.
    pub gflops: f64,
    /// Memory bandwidth, GB/s (the best of read, write and copy).
    pub gbps: f64,
}

/// Where a measured kernel sits under the roof.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Roof {
    /// FLOP per byte.
    pub intensity: f64,
    /// `true` when the FMA ceiling is the lower one at this intensity.
    pub compute_bound: bool,
    pub gflops: f64,
    pub gbps: f64,
    /// Achieved share of the ceiling that binds, in percent.
    pub pct_peak: f64,
}

impl Ceilings {
    /// Achieved rates of `cost` done in `ms`, and the share of the binding
    /// ceiling: the FMA peak where `intensity x bandwidth` exceeds it, else
    /// the bandwidth.
    pub fn place(&self, cost: Cost, ms: f64) -> Roof {
        let secs = (ms * 1e-3).max(1e-12);
        let gflops = cost.flop / secs / 1e9;
        let gbps = cost.bytes / secs / 1e9;
        let intensity = cost.intensity();
        let compute_bound = intensity * self.gbps > self.gflops;
        let pct_peak = if compute_bound {
            100.0 * gflops / self.gflops
        } else {
            100.0 * gbps / self.gbps
        };
        Roof {
            intensity,
            compute_bound,
            gflops,
            gbps,
            pct_peak,
        }
    }

    /// The ridge point: the intensity (FLOP/byte) where the two ceilings meet.
    pub fn ridge(&self) -> f64 {
        self.gflops / self.gbps.max(1e-12)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::ops::ConvAttrs;
    use crate::shape::Window;

    #[test]
    fn conv_flop_is_the_dense_formula() {
        let x = Shape::new4(1, 8, 16, 16);
        let w = Shape::from_slice(&[4, 8, 3, 3]).unwrap_or(x);
        let y = Shape::new4(1, 4, 16, 16);
        let op = Op::Conv(ConvAttrs {
            window: Window::cube(2, 3, 1, 1),
            bias: false,
        });
        let c = op_cost(&op, &[(x, DType::F32), (w, DType::F32)], &[(y, DType::F32)]);
        assert_eq!(c.flop, 2.0 * 4.0 * 256.0 * 72.0);
        assert_eq!(c.bytes, 4.0 * (8.0 * 256.0 + 4.0 * 72.0 + 4.0 * 256.0));
    }

    #[test]
    fn roof_picks_the_lower_ceiling() {
        let c = Ceilings {
            gflops: 100.0,
            gbps: 10.0,
        };
        assert_eq!(c.ridge(), 10.0);
        // 1 GFLOP over 0.1 GB in 100 ms: intensity 10 - on the ridge; memory side.
        let r = c.place(
            Cost {
                flop: 1e9,
                bytes: 1e8,
            },
            100.0,
        );
        assert!(!r.compute_bound && (r.pct_peak - 10.0).abs() < 1e-9);
        let r = c.place(
            Cost {
                flop: 1e10,
                bytes: 1e8,
            },
            1000.0,
        );
        assert!(r.compute_bound && (r.pct_peak - 10.0).abs() < 1e-9);
    }
}
