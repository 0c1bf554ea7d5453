//! GPU convolution kernels (every variant) against the CPU reference.

mod common;
use common::{assert_close, ctx, rand_vec};
use wunet::ops::conv::{self, ConvKernel};
use wunet::reference::conv as r;
use wunet::shape::conv_weight_shape;
use wunet::{DType, Shape, Tensor, Window};

// The Winograd variants run their kernels on the stride-1 3x3(x3) cases (forward and grad
// input) and the default kernels on the others (tests/winograd.rs has their own cases).
const VARIANTS: [ConvKernel; 5] = [
    ConvKernel::Tiled,
    ConvKernel::Cpu,
    ConvKernel::Direct,
    ConvKernel::Winograd2,
    ConvKernel::Winograd4,
];

struct Case {
    x: Shape,
    o: usize,
    win: Window,
    bias: bool,
}

fn w2(k: [usize; 2], s: [usize; 2], p: [usize; 2], d: [usize; 2]) -> Window {
    Window::new(&k, &s, &p, &d)
}
fn w3(k: [usize; 3], s: [usize; 3], p: [usize; 3], d: [usize; 3]) -> Window {
    Window::new(&k, &s, &p, &d)
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            x: Shape::new4(2, 3, 7, 13),
            o: 5,
            win: w2([3, 3], [1, 1], [1, 1], [1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new4(1, 5, 11, 9),
            o: 17,
            win: w2([3, 2], [2, 3], [1, 2], [1, 1]),
            bias: false,
        },
        Case {
            x: Shape::new4(3, 1, 13, 10),
            o: 3,
            win: w2([3, 3], [1, 1], [2, 2], [2, 2]),
            bias: true,
        },
        Case {
            x: Shape::new4(2, 17, 5, 6),
            o: 70,
            win: w2([1, 1], [1, 1], [0, 0], [1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new4(1, 3, 1, 1),
            o: 5,
            win: w2([1, 1], [1, 1], [0, 0], [1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new4(1, 4, 8, 6),
            o: 3,
            win: w2([2, 2], [2, 2], [0, 0], [1, 1]),
            bias: false,
        },
        Case {
            x: Shape::new4(1, 3, 70, 5),
            o: 2,
            win: w2([3, 3], [1, 1], [0, 0], [1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new5(2, 3, 5, 7, 6),
            o: 4,
            win: w3([3, 3, 3], [1, 1, 1], [1, 1, 1], [1, 1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new5(1, 2, 6, 5, 9),
            o: 5,
            win: w3([2, 3, 1], [2, 1, 3], [1, 0, 0], [1, 2, 1]),
            bias: false,
        },
        Case {
            x: Shape::new4(2, 3, 6, 5),
            o: 4,
            win: w2([1, 3], [1, 1], [1, 2], [1, 1]),
            bias: false,
        },
        Case {
            x: Shape::new4(1, 2, 5, 40),
            o: 3,
            win: w2([2, 9], [1, 1], [1, 4], [1, 3]),
            bias: true,
        },
        Case {
            x: Shape::new4(3, 6, 3, 150),
            o: 9,
            win: w2([3, 3], [1, 1], [1, 1], [1, 1]),
            bias: true,
        },
        Case {
            x: Shape::new5(1, 3, 4, 6, 8),
            o: 2,
            win: w3([2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1]),
            bias: true,
        },
    ]
}

fn upload(c: &wunet::Context, v: &[f32], s: Shape) -> Tensor {
    Tensor::from_f32(c, v, s).unwrap()
}

// Long reductions in f32 against an f64 reference: 1e-4 each, scaled by sqrt(K/1024)
// as in the golden schema's rule once K exceeds 1024.
fn tol(k: usize) -> f32 {
    1e-4 * (k as f32 / 1024.0).sqrt().max(1.0)
}

#[test]
fn conv_forward_and_backward_match_reference() {
    let Some(c) = ctx() else { return };
    for (ci, case) in cases().iter().enumerate() {
        let ws = conv_weight_shape(case.o, case.x.c(), &case.win, case.x.is_3d());
        let xv = rand_vec(case.x.numel(), 10 + ci as u64);
        let wv = rand_vec(ws.numel(), 20 + ci as u64);
        let bv = rand_vec(case.o, 30 + ci as u64);
        let (yref, ys) = r::conv_fwd(
            &xv,
            &case.x,
            &wv,
            &ws,
            case.bias.then_some(&bv[..]),
            &case.win,
        );
        let gv = rand_vec(ys.numel(), 40 + ci as u64);
        let dxref = r::conv_dgrad(&gv, &ys, &wv, &ws, &case.x, &case.win);
        let dwref = r::conv_wgrad(&xv, &case.x, &gv, &ys, &ws, &case.win);
        let dbref = r::channel_sum(&gv, &ys);
        let (x, w, b, g) = (
            upload(c, &xv, case.x),
            upload(c, &wv, ws),
            upload(c, &bv, Shape::vector(case.o)),
            upload(c, &gv, ys),
        );
        for k in VARIANTS {
            let y = Tensor::empty(c, ys, DType::F32).unwrap();
            let dx = Tensor::empty(c, case.x, DType::F32).unwrap();
            let dw = Tensor::empty(c, ws, DType::F32).unwrap();
            let db = c
                .run(|rec| {
                    conv::conv_into(rec, &x, &w, case.bias.then_some(&b), &case.win, &y, k)?;
                    conv::conv_grad_input_into(rec, &g, &w, &case.win, &dx, k)?;
                    conv::conv_grad_weight_into(rec, &x, &g, &case.win, &dw, k)?;
                    conv::bias_grad(rec, &g)
                })
                .unwrap();
            let name = format!("case {ci} {} -> {ys} {:?} {k:?}", case.x, case.win);
            let kf = case.x.c() * case.win.kernel_numel();
            assert_close(
                &format!("{name} y"),
                &y.to_f32_vec(c).unwrap(),
                &yref,
                tol(kf),
                tol(kf),
            );
            let kd = case.o * case.win.kernel_numel();
            assert_close(
                &format!("{name} dx"),
                &dx.to_f32_vec(c).unwrap(),
                &dxref,
                tol(kd),
                tol(kd),
            );
            let kw = ys.n() * ys.spatial_numel();
            assert_close(
                &format!("{name} dw"),
                &dw.to_f32_vec(c).unwrap(),
                &dwref,
                tol(kw),
                tol(kw),
            );
            assert_close(
                &format!("{name} db"),
                &db.to_f32_vec(c).unwrap(),
                &dbref,
                tol(kw),
                tol(kw),
            );
        }
    }
}

/// The fused ReLU epilogue (`conv_relu_into`, the executor's `ConvRelu`) stores exactly what
/// `conv_into` then `relu` store, on every variant and case, f32 and f16 storage; the
/// cooperative-matrix kernels use the same epilogue function (tests/conv_coop.rs runs them).
#[test]
fn conv_relu_equals_conv_then_relu_bitwise() {
    let Some(c) = ctx() else { return };
    let acts = if c.has_f16() {
        vec![DType::F32, DType::F16]
    } else {
        vec![DType::F32]
    };
    for (ci, case) in cases().iter().enumerate() {
        let is_3d = case.x.is_3d();
        let ws = conv_weight_shape(case.o, case.x.c(), &case.win, is_3d);
        let ys = conv::conv_out_shape(&case.x, &ws, &case.win).unwrap();
        let w = upload(c, &rand_vec(ws.numel(), 900 + ci as u64), ws);
        let b = upload(c, &rand_vec(case.o, 950 + ci as u64), Shape::vector(case.o));
        let bias = case.bias.then_some(&b);
        for &act in &acts {
            let xv = rand_vec(case.x.numel(), 800 + ci as u64);
            let x = match act {
                DType::F16 => Tensor::from_f32_as_f16(c, &xv, case.x).unwrap(),
                _ => upload(c, &xv, case.x),
            };
            for k in VARIANTS {
                let empty = || Tensor::empty(c, ys, act).unwrap();
                let (y, z, fused) = (empty(), empty(), empty());
                c.run(|rec| {
                    conv::conv_into(rec, &x, &w, bias, &case.win, &y, k)?;
                    wunet::ops::activation::relu_into(rec, &y, &z)?;
                    conv::conv_relu_into(rec, &x, &w, bias, &case.win, &fused, k)
                })
                .unwrap();
                let (want, got) = (z.read_bytes(c).unwrap(), fused.read_bytes(c).unwrap());
                assert!(want == got, "case {ci} {k:?} {act:?}: fused ReLU differs");
            }
        }
    }
}
