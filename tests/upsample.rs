//! Upsampling kernels (nearest, bi/trilinear) against the CPU reference, and the
//! reference backward against finite differences.

mod common;
use common::{assert_close, ctx, rand_vec};
use wunet::graph::ops::UpsampleMode;
use wunet::ops::upsample as ups;
use wunet::reference::fd::{dot, numeric_grad};
use wunet::reference::upsample as r;
use wunet::{DType, Shape, Tensor};

const MODES: [UpsampleMode; 2] = [UpsampleMode::Nearest, UpsampleMode::Linear];

fn cases() -> Vec<(Shape, [usize; 3])> {
    vec![
        (Shape::new4(2, 3, 7, 13), [1, 2, 2]),
        (Shape::new4(1, 5, 4, 6), [1, 3, 2]),
        (Shape::new4(2, 3, 5, 1), [1, 1, 3]),
        (Shape::new4(1, 1, 1, 1), [1, 2, 2]),
        (Shape::new5(2, 3, 3, 5, 4), [2, 2, 2]),
        (Shape::new5(1, 5, 4, 3, 6), [1, 2, 3]),
        (Shape::new5(1, 3, 2, 4, 3), [3, 1, 2]),
    ]
}

#[test]
fn reference_matches_pytorch_values() {
    // torch.nn.functional.interpolate(x, scale_factor=.., mode=.., align_corners=False)
    let xs = Shape::new4(1, 1, 1, 2);
    let (y, _) = r::upsample(&[0.0, 1.0], &xs, [1, 1, 2], UpsampleMode::Linear);
    assert_eq!(y, vec![0.0, 0.25, 0.75, 1.0]);
    let (y, _) = r::upsample(&[0.0, 1.0], &xs, [1, 1, 3], UpsampleMode::Linear);
    assert_close(
        "f3",
        &y,
        &[0.0, 0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0, 1.0],
        1e-6,
        0.0,
    );
    let (y, ys) = r::upsample(&[1.0, 2.0], &xs, [1, 2, 2], UpsampleMode::Nearest);
    assert_eq!(ys, Shape::new4(1, 1, 2, 4));
    assert_eq!(y, vec![1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
}

#[test]
fn reference_grad_matches_finite_differences() {
    for (ci, (xs, f)) in cases().into_iter().enumerate() {
        for mode in MODES {
            let x = rand_vec(xs.numel(), 100 + ci as u64);
            let (_, ys) = r::upsample(&x, &xs, f, mode);
            let g = rand_vec(ys.numel(), 200 + ci as u64);
            let dx = r::upsample_grad(&g, f, mode, &xs);
            let which: Vec<usize> = (0..x.len()).collect();
            let num: Vec<f32> = numeric_grad(
                &mut |xp| dot(&g, &r::upsample(xp, &xs, f, mode).0),
                &x,
                &which,
                1e-3,
            )
            .into_iter()
            .map(|v| v as f32)
            .collect();
            // Linear in x: only the f32 rounding of x +- eps and of the outputs remains.
            assert_close(
                &format!("case {ci} {xs} {f:?} {mode:?}"),
                &dx,
                &num,
                1e-3,
                1e-3,
            );
        }
    }
}

#[test]
fn upsample_forward_and_backward_match_reference() {
    let Some(c) = ctx() else { return };
    for (ci, (xs, f)) in cases().into_iter().enumerate() {
        for mode in MODES {
            let xv = rand_vec(xs.numel(), 10 + ci as u64);
            let (yref, ys) = r::upsample(&xv, &xs, f, mode);
            let gv = rand_vec(ys.numel(), 20 + ci as u64);
            let dxref = r::upsample_grad(&gv, f, mode, &xs);
            let x = Tensor::from_f32(c, &xv, xs).unwrap();
            let g = Tensor::from_f32(c, &gv, ys).unwrap();
            let dx = Tensor::empty(c, xs, DType::F32).unwrap();
            let y = c
                .run(|rec| {
                    let y = ups::upsample(rec, &x, f, mode)?;
                    ups::upsample_grad_into(rec, &g, f, mode, &dx)?;
                    Ok(y)
                })
                .unwrap();
            let name = format!("case {ci} {xs} {f:?} {mode:?}");
            assert_eq!(y.shape, ys, "{name}");
            assert_close(
                &format!("{name} y"),
                &y.to_f32_vec(c).unwrap(),
                &yref,
                1e-4,
                1e-4,
            );
            assert_close(
                &format!("{name} dx"),
                &dx.to_f32_vec(c).unwrap(),
                &dxref,
                1e-4,
                1e-4,
            );
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    let Some(c) = ctx() else { return };
    let x = Tensor::zeros(c, Shape::new4(1, 2, 3, 5), DType::F32).unwrap();
    let mut rec = wunet::gpu::Recorder::new(c);
    let e = ups::upsample(&mut rec, &x, [2, 2, 2], UpsampleMode::Nearest).unwrap_err();
    assert!(e.to_string().contains("upsample"), "{e}");
    assert!(ups::upsample(&mut rec, &x, [1, 0, 2], UpsampleMode::Linear).is_err());
    let dy = Tensor::zeros(c, Shape::new4(1, 2, 6, 9), DType::F32).unwrap();
    let e =
        ups::upsample_grad(&mut rec, &dy, [1, 2, 2], UpsampleMode::Linear, x.shape).unwrap_err();
    assert!(e.to_string().contains("6x9"), "{e}");
}
