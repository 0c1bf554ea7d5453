//! Tensor plumbing (elementwise, concat/split, crop, pad) and the channel sum against the CPU
//! reference, and the reference backwards against finite differences.

mod common;
use common::{assert_close, ctx, rand_vec};
use wunet::graph::ops::PadMode;
use wunet::ops::tensor as t;
use wunet::reference::fd::{dot, numeric_grad};
use wunet::reference::tensor as r;
use wunet::shape::center_crop_offset;
use wunet::{Context, DType, Shape, Tensor};

fn up(c: &Context, v: &[f32], s: Shape) -> Tensor {
    Tensor::from_f32(c, v, s).unwrap()
}

/// (input shape, lo, hi) padding cases; reflect needs lo, hi < size.
fn pad_cases() -> Vec<(Shape, [usize; 3], [usize; 3])> {
    vec![
        (Shape::new4(2, 3, 7, 13), [0, 1, 2], [0, 3, 0]),
        (Shape::new4(1, 5, 4, 3), [0, 3, 2], [0, 2, 2]),
        (Shape::new4(1, 1, 2, 9), [0, 1, 0], [0, 1, 8]),
        (Shape::new5(2, 3, 3, 5, 4), [1, 2, 3], [2, 0, 1]),
        (Shape::new5(1, 5, 4, 3, 6), [3, 2, 5], [3, 2, 5]),
    ]
}

fn fd_check(name: &str, x: &[f32], analytic: &[f32], f: &mut dyn FnMut(&[f32]) -> f64) {
    let which: Vec<usize> = (0..x.len()).collect();
    let num: Vec<f32> = numeric_grad(f, x, &which, 1e-3)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    // Linear maps: only the f32 rounding of x +- eps remains.
    assert_close(name, analytic, &num, 1e-3, 1e-3);
}

#[test]
fn reference_reflect_matches_pytorch() {
    // torch.nn.functional.pad(torch.tensor([[[1., 2., 3., 4.]]]), (2, 3), mode='reflect')
    let xs = Shape::new4(1, 1, 1, 4);
    let (y, _) = r::pad(
        &[1.0, 2.0, 3.0, 4.0],
        &xs,
        [0, 0, 2],
        [0, 0, 3],
        PadMode::Reflect,
    );
    assert_eq!(y, vec![3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0]);
    let (y, _) = r::pad(
        &[1.0, 2.0, 3.0, 4.0],
        &xs,
        [0, 0, 1],
        [0, 0, 2],
        PadMode::Zero,
    );
    assert_eq!(y, vec![0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0]);
}

#[test]
fn reference_backwards_match_finite_differences() {
    for (ci, (xs, lo, hi)) in pad_cases().into_iter().enumerate() {
        for mode in [PadMode::Zero, PadMode::Reflect] {
            let x = rand_vec(xs.numel(), ci as u64);
            let (_, ys) = r::pad(&x, &xs, lo, hi, mode);
            let g = rand_vec(ys.numel(), 50 + ci as u64);
            let dx = r::pad_grad(&g, &ys, lo, hi, mode, &xs);
            fd_check(&format!("pad case {ci} {mode:?}"), &x, &dx, &mut |xp| {
                dot(&g, &r::pad(xp, &xs, lo, hi, mode).0)
            });
        }
        // Crop back to the input size from the padded tensor: crop_grad is its adjoint.
        let ps = xs.with_spatial(wunet::shape::pad_out(xs.spatial(), lo, hi));
        let p = rand_vec(ps.numel(), 70 + ci as u64);
        let g = rand_vec(xs.numel(), 80 + ci as u64);
        let dp = r::crop_grad(&g, &xs, lo, &ps);
        fd_check(&format!("crop case {ci}"), &p, &dp, &mut |pp| {
            dot(&g, &r::crop(pp, &ps, lo, xs.spatial()).0)
        });
    }
    // Split is the adjoint of concat.
    let (a, b) = (Shape::new4(2, 3, 5, 7), Shape::new4(2, 5, 5, 7));
    let (av, bv) = (rand_vec(a.numel(), 1), rand_vec(b.numel(), 2));
    let g = rand_vec(a.numel() + b.numel(), 3);
    let parts = r::split_channels(&g, &a.with_c(8), &[3, 5]);
    fd_check("concat a", &av, &parts[0], &mut |ap| {
        dot(&g, &r::concat_channels(&[(ap, a), (&bv, b)]).0)
    });
    fd_check("concat b", &bv, &parts[1], &mut |bp| {
        dot(&g, &r::concat_channels(&[(&av, a), (bp, b)]).0)
    });
}

#[test]
fn elementwise_ops_match_reference() {
    let Some(c) = ctx() else { return };
    for s in [
        Shape::new4(2, 3, 7, 13),
        Shape::new5(1, 5, 3, 4, 7),
        Shape::vector(1000),
    ] {
        let (av, bv, yv) = (
            rand_vec(s.numel(), 1),
            rand_vec(s.numel(), 2),
            rand_vec(s.numel(), 3),
        );
        let (a, b) = (up(c, &av, s), up(c, &bv, s));
        let acc = up(c, &yv, s);
        let filled = Tensor::empty(c, s, DType::F32).unwrap();
        let (sum, scaled, copied) = c
            .run(|rec| {
                let sum = t::add(rec, &a, &b)?;
                let scaled = t::scale(rec, &a, -0.75)?;
                t::axpy_into(rec, 0.5, &b, &acc)?;
                t::fill_into(rec, &filled, 2.5)?;
                Ok((sum, scaled, t::copy(rec, &b)?))
            })
            .unwrap();
        assert_close(
            &format!("{s} add"),
            &sum.to_f32_vec(c).unwrap(),
            &r::add(&av, &bv),
            1e-6,
            1e-6,
        );
        assert_close(
            &format!("{s} scale"),
            &scaled.to_f32_vec(c).unwrap(),
            &r::scale(&av, -0.75),
            1e-6,
            1e-6,
        );
        let mut want = yv.clone();
        r::axpy(0.5, &bv, &mut want);
        assert_close(
            &format!("{s} axpy"),
            &acc.to_f32_vec(c).unwrap(),
            &want,
            1e-6,
            1e-6,
        );
        assert_eq!(filled.to_f32_vec(c).unwrap(), vec![2.5; s.numel()]);
        assert_eq!(copied.to_f32_vec(c).unwrap(), bv);
    }
}

#[test]
fn concat_and_split_match_reference() {
    let Some(c) = ctx() else { return };
    for (shapes, sp) in [
        (vec![3, 5], [1, 7, 13]),
        (vec![1, 3, 5], [1, 4, 3]),
        (vec![2, 2], [3, 5, 4]),
    ] {
        let mk = |ch: usize| {
            if sp[0] == 1 {
                Shape::new4(2, ch, sp[1], sp[2])
            } else {
                Shape::new5(2, ch, sp[0], sp[1], sp[2])
            }
        };
        let datas: Vec<(Vec<f32>, Shape)> = shapes
            .iter()
            .enumerate()
            .map(|(i, &ch)| (rand_vec(mk(ch).numel(), i as u64), mk(ch)))
            .collect();
        let refs: Vec<(&[f32], Shape)> = datas.iter().map(|(v, s)| (&v[..], *s)).collect();
        let (yref, ys) = r::concat_channels(&refs);
        let xs: Vec<Tensor> = datas.iter().map(|(v, s)| up(c, v, *s)).collect();
        let gv = rand_vec(ys.numel(), 9);
        let g = up(c, &gv, ys);
        let dref = r::split_channels(&gv, &ys, &shapes);
        let (y, parts) = c
            .run(|rec| {
                let xr: Vec<&Tensor> = xs.iter().collect();
                Ok((
                    t::concat_channels(rec, &xr)?,
                    t::split_channels(rec, &g, &shapes)?,
                ))
            })
            .unwrap();
        assert_eq!(y.shape, ys);
        assert_eq!(y.to_f32_vec(c).unwrap(), yref, "concat {shapes:?} {sp:?}");
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.shape, mk(shapes[i]));
            assert_eq!(
                p.to_f32_vec(c).unwrap(),
                dref[i],
                "split {shapes:?} {sp:?} part {i}"
            );
        }
    }
}

#[test]
fn crop_and_grad_match_reference() {
    let Some(c) = ctx() else { return };
    for (xs, size, off) in [
        (Shape::new4(2, 3, 13, 17), [1, 8, 9], None),
        (Shape::new4(1, 5, 7, 13), [1, 4, 13], Some([0, 3, 0])),
        (Shape::new5(2, 3, 9, 6, 7), [4, 3, 6], None),
        (Shape::new5(1, 2, 5, 5, 5), [2, 2, 2], Some([3, 0, 1])),
    ] {
        let off = off.unwrap_or_else(|| center_crop_offset(xs.spatial(), size).unwrap());
        let xv = rand_vec(xs.numel(), 4);
        let (yref, ys) = r::crop(&xv, &xs, off, size);
        let gv = rand_vec(ys.numel(), 5);
        let dxref = r::crop_grad(&gv, &ys, off, &xs);
        let (x, g) = (up(c, &xv, xs), up(c, &gv, ys));
        // Stale contents in dx must be overwritten with zeros outside the crop.
        let dx = up(c, &vec![7.0; xs.numel()], xs);
        let y = c
            .run(|rec| {
                let y = t::crop(rec, &x, off, size)?;
                t::crop_grad_into(rec, &g, off, &dx)?;
                Ok(y)
            })
            .unwrap();
        assert_eq!(
            y.to_f32_vec(c).unwrap(),
            yref,
            "crop {xs} -> {size:?} at {off:?}"
        );
        assert_eq!(
            dx.to_f32_vec(c).unwrap(),
            dxref,
            "crop_grad {xs} -> {size:?} at {off:?}"
        );
    }
    let x = Tensor::zeros(c, Shape::new4(1, 2, 9, 8), DType::F32).unwrap();
    let y = c.run(|rec| t::center_crop(rec, &x, [1, 4, 5])).unwrap();
    assert_eq!(y.shape, Shape::new4(1, 2, 4, 5));
}

#[test]
fn pad_and_grad_match_reference() {
    let Some(c) = ctx() else { return };
    for (ci, (xs, lo, hi)) in pad_cases().into_iter().enumerate() {
        for mode in [PadMode::Zero, PadMode::Reflect] {
            let xv = rand_vec(xs.numel(), 10 + ci as u64);
            let (yref, ys) = r::pad(&xv, &xs, lo, hi, mode);
            let gv = rand_vec(ys.numel(), 20 + ci as u64);
            let dxref = r::pad_grad(&gv, &ys, lo, hi, mode, &xs);
            let (x, g) = (up(c, &xv, xs), up(c, &gv, ys));
            let (y, dx) = c
                .run(|rec| {
                    Ok((
                        t::pad(rec, &x, lo, hi, mode)?,
                        t::pad_grad(rec, &g, lo, hi, mode, xs)?,
                    ))
                })
                .unwrap();
            let name = format!("case {ci} {xs} {lo:?} {hi:?} {mode:?}");
            assert_eq!(y.shape, ys, "{name}");
            assert_eq!(y.to_f32_vec(c).unwrap(), yref, "{name} y");
            // Reflect backward sums up to 27 terms in another order than the reference.
            assert_close(
                &format!("{name} dx"),
                &dx.to_f32_vec(c).unwrap(),
                &dxref,
                1e-5,
                1e-5,
            );
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    let Some(c) = ctx() else { return };
    let mut rec = wunet::gpu::Recorder::new(c);
    let a = Tensor::zeros(c, Shape::new4(1, 2, 4, 5), DType::F32).unwrap();
    let b = Tensor::zeros(c, Shape::new4(1, 3, 4, 6), DType::F32).unwrap();
    let e = t::concat_channels(&mut rec, &[&a, &b]).unwrap_err();
    assert!(
        e.to_string().contains("concat_channels") && e.to_string().contains("1x3x4x6"),
        "{e}"
    );
    assert!(t::concat_channels(&mut rec, &[&a]).is_err());
    assert!(t::split_channels(&mut rec, &a, &[1, 2]).is_err());
    let e = t::add(&mut rec, &a, &b).unwrap_err();
    assert!(e.to_string().contains("add"), "{e}");
    // In place: a wgpu usage conflict, refused with an error.
    assert!(t::add_into(&mut rec, &a, &a, &a).is_err());
    assert!(t::axpy_into(&mut rec, 1.0, &a, &a).is_err());
    assert!(t::pad(&mut rec, &a, [0, 4, 0], [0, 0, 0], PadMode::Reflect).is_err());
    assert!(t::pad(&mut rec, &a, [1, 0, 0], [0, 0, 0], PadMode::Zero).is_err());
    assert!(t::pad(&mut rec, &a, [0, 4, 0], [0, 0, 0], PadMode::Zero).is_ok());
    assert!(t::crop(&mut rec, &a, [0, 1, 0], [1, 4, 5]).is_err());
    assert!(t::center_crop(&mut rec, &a, [1, 5, 5]).is_err());
    let u = Tensor::zeros(c, Shape::new4(1, 2, 4, 5), DType::U32).unwrap();
    assert!(t::copy_into(&mut rec, &u, &a).is_err());
}

#[test]
fn large_grids_are_split_over_two_dimensions() {
    let Some(c) = ctx() else { return };
    // More than 65535 workgroups of 256: the grid spills into y (id = wid.x + wid.y * nwg.x).
    let max = c.limits.max_compute_workgroups_per_dimension as usize;
    let n = max * 256 + 300;
    let s = Shape::vector(n);
    let Ok(y) = Tensor::empty(c, s, DType::F32) else {
        eprintln!("skip: the adapter cannot hold {n} floats in one binding");
        return;
    };
    let x = up(c, &[1.0], Shape::vector(1));
    c.run(|rec| {
        t::fill_into(rec, &y, 1.5)?;
        // Only the last 300 elements are touched by the second grid row: check them after a copy.
        let last = t::crop(
            rec,
            &y.reshape(Shape::new4(1, 1, 1, n))?,
            [0, 0, n - 1],
            [1, 1, 1],
        )?;
        t::axpy_into(rec, 2.0, &last, &x.reshape(Shape::new4(1, 1, 1, 1))?)
    })
    .unwrap();
    let v = y.to_f32_vec(c).unwrap();
    assert!(v.iter().all(|&e| e == 1.5), "fill missed elements");
    assert_eq!(x.to_f32_vec(c).unwrap(), vec![4.0]);
}

/// `channel_sum` (the bias gradient) at every lane count its dispatch picks (about 16
/// values per lane, 1 to 256 lanes per channel): many channels of one value (1 lane, 256
/// channels per workgroup and a partly empty last workgroup), small planes, planes longer
/// than 256 lanes x 16, 3D; with and without accumulating onto the output.
#[test]
fn channel_sum_matches_reference_at_every_lane_count() {
    let Some(c) = ctx() else { return };
    for (i, xs) in [
        Shape::new4(3, 300, 1, 1),  // 3 values per channel: 1 lane
        Shape::new4(2, 517, 2, 3),  // 12 values: 1 lane, 517 channels
        Shape::new4(2, 9, 5, 7),    // 70 values: 8 lanes
        Shape::new4(1, 3, 97, 101), // 9797 values: 256 lanes
        Shape::new5(2, 5, 3, 4, 7), // 3D, 168 values: 16 lanes
        Shape::new4(4, 33, 16, 16), // 1024 values: 64 lanes
    ]
    .into_iter()
    .enumerate()
    {
        let xv = rand_vec(xs.numel(), 30 + i as u64);
        let prior = rand_vec(xs.c(), 60 + i as u64);
        let want = wunet::reference::conv::channel_sum(&xv, &xs);
        let x = up(c, &xv, xs);
        for accumulate in [false, true] {
            let out = up(c, &prior, Shape::vector(xs.c()));
            c.run(|rec| wunet::ops::reduce::channel_sum_into(rec, &x, &out, accumulate))
                .unwrap();
            let want: Vec<f32> = match accumulate {
                true => want.iter().zip(&prior).map(|(w, p)| w + p).collect(),
                false => want.clone(),
            };
            // tests/conv.rs's bias-gradient tolerance
            let what = format!("{xs} channel_sum accumulate={accumulate}");
            assert_close(&what, &out.to_f32_vec(c).unwrap(), &want, 1e-4, 1e-4);
        }
    }
}
