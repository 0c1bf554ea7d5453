//! Host-side initial values of parameters and state, deterministic for a seed.
//!
//! Each tensor draws from its own ChaCha8 stream: the seed selects the key and
//! an FNV-1a hash of the value's name selects the stream, so a tensor's values
//! depend only on `(seed, name, numel)`, not on how many tensors precede it.
//!
//! He normal (He et al. 2015, used by the U-Net paper): `N(0, 2 / fan_in)`.
//! - Convolution weight `(O, C, k..)`: `fan_in = C * prod(k)`.
//! - Transposed convolution weight `(C_in, C_out, k..)`: `fan_in = C_in *
//!   prod(k) / prod(stride)` (at least 1), the number of products summed into
//!   each output, so the forward pass keeps the variance as He intended. For
//!   the U-Net 2x2 stride-2 up-convolution this is `C_in`. (PyTorch's
//!   `kaiming_normal_` applied to a ConvTranspose weight reads dim 1 and would
//!   use `C_out * prod(k)`; that counts the backward pass's fan-in instead.)

use super::ir::{Graph, ValueId};
use crate::shape::Window;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How a parameter or state tensor starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Normal with mean 0 and std `sqrt(2 / fan_in)`.
    HeNormal {
        fan_in: usize,
    },
    /// Normal with mean 0 and the given std.
    Normal {
        std: f32,
    },
    Zeros,
    Ones,
    Const(f32),
    /// The mixed-precision loss scaler `[scale, 1/scale, 0, 0]` (4 values).
    LossScaler(f32),
}

/// He fan-in of a convolution weight `(O, c_in, k..)`.
pub fn conv_fan_in(c_in: usize, win: &Window) -> usize {
    (c_in * win.kernel_numel()).max(1)
}

/// He fan-in of a transposed convolution weight `(c_in, C_out, k..)`: see the module docs.
pub fn conv_transpose_fan_in(c_in: usize, win: &Window) -> usize {
    let s: usize = win.stride.iter().product();
    ((c_in * win.kernel_numel()) as f64 / s.max(1) as f64)
        .round()
        .max(1.0) as usize
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `numel` values of `init` for the tensor called `name`.
pub fn init_tensor(init: &Init, numel: usize, seed: u64, name: &str) -> Vec<f32> {
    match *init {
        Init::Zeros => vec![0.0; numel],
        Init::Ones => vec![1.0; numel],
        Init::Const(c) => vec![c; numel],
        Init::LossScaler(s) => {
            let mut v = vec![0.0; numel];
            v[..2.min(numel)].copy_from_slice(&[s, 1.0 / s][..2.min(numel)]);
            v
        }
        Init::HeNormal { fan_in } => normal(numel, (2.0 / fan_in.max(1) as f64).sqrt(), seed, name),
        Init::Normal { std } => normal(numel, std as f64, seed, name),
    }
}

/// `numel` draws of N(0, std^2), from a stream of `seed` named by `name`.
fn normal(numel: usize, std: f64, seed: u64, name: &str) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(fnv1a(name));
    let mut out = Vec::with_capacity(numel + 1);
    while out.len() < numel {
        // Box-Muller: u1 in (0, 1] so the log is finite.
        let u1 = 1.0 - rng.random::<f64>();
        let u2 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let t = std::f64::consts::TAU * u2;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(numel);
    out
}

/// Initial values of every parameter and state value of `g`, in value order.
pub fn init_graph(g: &Graph, seed: u64) -> Vec<(ValueId, Vec<f32>)> {
    g.ids()
        .filter_map(|id| {
            let v = g.value(id);
            v.init()
                .map(|init| (id, init_tensor(&init, v.shape.numel(), seed, &v.name)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_he_scaled() {
        let a = init_tensor(&Init::HeNormal { fan_in: 50 }, 20001, 7, "w");
        let b = init_tensor(&Init::HeNormal { fan_in: 50 }, 20001, 7, "w");
        let c = init_tensor(&Init::HeNormal { fan_in: 50 }, 20001, 8, "w");
        let d = init_tensor(&Init::HeNormal { fan_in: 50 }, 20001, 7, "v");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(a.len(), 20001);
        let n = a.len() as f64;
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        // std of the sample mean is 0.2/sqrt(20001) = 0.0014; of the variance about 0.04 * sqrt(2/n) = 0.0004.
        assert!(mean.abs() < 0.006, "mean {mean}");
        assert!((var - 0.04).abs() < 0.002, "var {var}");
        assert_eq!(init_tensor(&Init::Ones, 3, 0, "g"), vec![1.0; 3]);
        assert_eq!(init_tensor(&Init::Zeros, 2, 0, "b"), vec![0.0; 2]);
    }

    #[test]
    fn fan_in() {
        let w = Window::cube(2, 3, 1, 1);
        assert_eq!(conv_fan_in(64, &w), 576);
        assert_eq!(conv_transpose_fan_in(128, &Window::cube(3, 2, 2, 0)), 128);
        assert_eq!(conv_transpose_fan_in(10, &Window::cube(2, 3, 2, 1)), 23);
    }
}
