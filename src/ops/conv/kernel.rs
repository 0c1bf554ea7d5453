//! [`ConvKernel`]: the convolution kernel variants, what `Auto` resolves to
//! on an adapter, and each variant's entry points.

use crate::gpu::{AdapterClass, DType, Recorder};
use crate::ops::coop;

/// Which kernel variant to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConvKernel {
    /// Tiled on GPUs, register blocks on CPU adapters.
    #[default]
    Auto,
    /// Workgroup-memory tiles (GPUs).
    Tiled,
    /// Register blocks, no barriers (CPU adapters).
    Cpu,
    /// One output per invocation (fallback; forward and grad-input only).
    Direct,
    /// Matrix units (cooperative matrices): f16 operands, f32 accumulation. Forward,
    /// stride-1 grad input (via the forward on flipped weights) and grad weight; strided
    /// grad inputs and transposed-conv forwards use the adapter's default kernel. Stride-1
    /// forwards (and so stride-1 grad inputs) and weight gradients run the direct kernels
    /// where they apply (`CoopDirect`) unless `WUNET_COOP_DIRECT=0` (then as `CoopIm2col`;
    /// `=fwd`: the direct forward only); see [`crate::ops::coop`].
    Coop,
    /// The `Coop` kernels with the matrix operations emulated in plain WGSL: runs on any
    /// adapter with f16 support, slowly. For testing the coop kernels without matrix units.
    CoopEmulated,
    /// `Coop` with the direct kernels (`conv_coop_direct`, `conv_coop_direct_wgrad`: input
    /// box staged once per channel chunk, every tap fed from it) wherever they apply (stride
    /// 1, dilation 1, kernel <= 3; forward, stride-1 grad input and, with >= 8 taps, grad
    /// weight), whatever `WUNET_COOP_DIRECT` says.
    CoopDirect,
    /// `CoopDirect`, emulated (see `CoopEmulated`).
    CoopDirectEmulated,
    /// `Coop` with the im2col kernels only (`conv_coop`, `conv_coop_wgrad`), never the
    /// direct ones.
    CoopIm2col,
    /// `CoopIm2col`, emulated.
    CoopIm2colEmulated,
    /// Winograd F(2x2,3x3) (2D) / F(2x2x2,3x3x3) (3D) for stride-1 3x3(x3) forwards, grad
    /// inputs and grad weights ([`super::winograd`]); other convolutions run the adapter's default
    /// kernel.
    Winograd2,
    /// Winograd F(4x4,3x3) (2D) / F(4x4x4,3x3x3) (3D) for the same convolutions as
    /// `Winograd2`.
    Winograd4,
    /// Transposed convolutions: the up-convolution kernel `conv_up` (workgroup tiles),
    /// an error unless the window qualifies ([`super::up::qualifies`]). Other ops: as `Auto`.
    Up,
}

impl ConvKernel {
    /// The kernel that runs for `self` on this device with activations of type `act`:
    /// `Auto` -> `Coop` where [`coop::auto_uses_coop`] says so, else by adapter class.
    pub fn resolve_for(self, ctx: &crate::gpu::Context, act: DType) -> ConvKernel {
        match self {
            ConvKernel::Auto => {
                if let Some(k) = coop::forced(ctx) {
                    return k;
                }
                if coop::auto_uses_coop(ctx, act) {
                    return ConvKernel::Coop;
                }
                class_default(ctx)
            }
            // Up names the transposed-conv kernel; other convolutions run as Auto would
            // without matrix units.
            ConvKernel::Up => class_default(ctx),
            k => k,
        }
    }
    pub(super) fn resolve(self, rec: &Recorder, act: DType) -> ConvKernel {
        self.resolve_for(rec.ctx, act)
    }
    /// `Coop*` where the matrix-unit kernels do not apply (strided grad input, transposed
    /// conv forward): the adapter's default kernel.
    pub(super) fn without_coop(self, rec: &Recorder) -> ConvKernel {
        if self.is_coop() || self.is_winograd() {
            class_default(rec.ctx)
        } else {
            self
        }
    }
    /// One of the Winograd variants.
    pub fn is_winograd(self) -> bool {
        matches!(self, ConvKernel::Winograd2 | ConvKernel::Winograd4)
    }
    /// One of the matrix-unit variants (`Coop*`).
    pub fn is_coop(self) -> bool {
        coop::coop_mode(self).is_some()
    }
    pub(super) fn entry(self) -> &'static str {
        debug_assert!(!self.is_coop());
        match self {
            ConvKernel::Tiled => "main_tiled",
            ConvKernel::Cpu => "main_cpu",
            _ => "main_direct",
        }
    }
}

pub(super) fn class_default(ctx: &crate::gpu::Context) -> ConvKernel {
    match ctx.class {
        AdapterClass::Cpu => ConvKernel::Cpu,
        AdapterClass::Gpu => ConvKernel::Tiled,
    }
}
