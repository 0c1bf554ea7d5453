//! Pooling kernels (max with indices, max-unpool, average) against the CPU
//! reference, and the reference backwards against finite differences.

mod common;
use common::{assert_close, ctx, rand_vec};
use wunet::ops::pool;
use wunet::reference::fd::{dot, numeric_grad};
use wunet::reference::pool as r;
use wunet::shape::unpool_out_len;
use wunet::{Context, DType, Shape, Tensor, Window};

fn w2(k: [usize; 2], s: [usize; 2], p: [usize; 2]) -> Window {
    Window::new(&k, &s, &p, &[1, 1])
}
fn w3(k: [usize; 3], s: [usize; 3], p: [usize; 3]) -> Window {
    Window::new(&k, &s, &p, &[1, 1, 1])
}

/// Pairwise distinct values in [-1, 1) at spacing 2/n, shuffled (no ties, so the
/// argmax is unique and finite differences with eps < 1/n never change it).
fn distinct_vec(n: usize, seed: u64) -> Vec<f32> {
    let keys = rand_vec(n, seed);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    let mut v = vec![0f32; n];
    for (rank, &i) in order.iter().enumerate() {
        v[i] = rank as f32 * 2.0 / n as f32 - 1.0;
    }
    v
}

fn cases() -> Vec<(Shape, Window)> {
    vec![
        (Shape::new4(2, 3, 7, 13), w2([2, 2], [2, 2], [0, 0])),
        (Shape::new4(2, 3, 7, 13), w2([3, 3], [2, 2], [1, 1])),
        (Shape::new4(1, 5, 9, 6), w2([3, 2], [2, 1], [1, 0])),
        (Shape::new4(2, 5, 11, 8), w2([3, 3], [1, 1], [1, 1])),
        (Shape::new4(1, 3, 6, 10), w2([2, 4], [3, 2], [1, 2])),
        (
            Shape::new5(2, 3, 5, 7, 6),
            w3([2, 2, 2], [2, 2, 2], [0, 0, 0]),
        ),
        (
            Shape::new5(1, 5, 4, 9, 7),
            w3([3, 2, 3], [2, 2, 1], [1, 0, 1]),
        ),
        (
            Shape::new5(1, 3, 7, 5, 6),
            w3([3, 3, 3], [2, 2, 2], [1, 1, 1]),
        ),
    ]
}

fn up(c: &Context, v: &[f32], s: Shape) -> Tensor {
    Tensor::from_f32(c, v, s).unwrap()
}

// ------------------------------------------------------------------ reference vs finite differences

fn check_fd(name: &str, x: &[f32], analytic: &[f32], f: &mut dyn FnMut(&[f32]) -> f64, eps: f64) {
    let which: Vec<usize> = (0..x.len()).collect();
    let num = numeric_grad(f, x, &which, eps);
    let num: Vec<f32> = num.iter().map(|v| *v as f32).collect();
    // Central differences of piecewise-linear functions in f32 inputs: 1e-3 covers the
    // rounding of x +- eps (eps ~1e-4 on values ~1).
    assert_close(name, analytic, &num, 1e-3, 1e-3);
}

#[test]
fn reference_max_pool_grad_matches_finite_differences() {
    for (ci, (xs, win)) in cases().into_iter().enumerate() {
        let x = distinct_vec(xs.numel(), 100 + ci as u64);
        let (_, ind, ys) = r::max_pool(&x, &xs, &win);
        let g = rand_vec(ys.numel(), 200 + ci as u64);
        let dx = r::max_pool_grad(&g, &ind, &ys, &xs);
        let eps = 0.25 / xs.numel() as f64;
        check_fd(
            &format!("max_pool case {ci}"),
            &x,
            &dx,
            &mut |xp| dot(&g, &r::max_pool(xp, &xs, &win).0),
            eps,
        );
    }
}

#[test]
fn reference_avg_pool_grad_matches_finite_differences() {
    for (ci, (xs, win)) in cases().into_iter().enumerate() {
        for cip in [true, false] {
            let x = rand_vec(xs.numel(), 300 + ci as u64);
            let (_, ys) = r::avg_pool(&x, &xs, &win, cip);
            let g = rand_vec(ys.numel(), 400 + ci as u64);
            let dx = r::avg_pool_grad(&g, &ys, &win, cip, &xs);
            check_fd(
                &format!("avg_pool case {ci} cip {cip}"),
                &x,
                &dx,
                &mut |xp| dot(&g, &r::avg_pool(xp, &xs, &win, cip).0),
                1e-3,
            );
        }
    }
}

#[test]
fn reference_max_unpool_grad_matches_finite_differences() {
    let xs = Shape::new4(2, 3, 7, 13);
    let win = w2([2, 2], [2, 2], [0, 0]);
    let (p, ind, ps) = r::max_pool(&distinct_vec(xs.numel(), 5), &xs, &win);
    let out = xs.spatial();
    let (_, ys) = r::max_unpool(&p, &ps, &ind, out);
    let g = rand_vec(ys.numel(), 6);
    let dx = r::max_unpool_grad(&g, &ys, &ind, &ps);
    check_fd(
        "max_unpool",
        &p,
        &dx,
        &mut |xp| dot(&g, &r::max_unpool(xp, &ps, &ind, out).0),
        1e-3,
    );
}

#[test]
fn reference_ties_pick_first_and_padding_is_minus_infinity() {
    // Constant input: every window's argmax is its first real element.
    let xs = Shape::new4(1, 1, 5, 5);
    let (y, ind, ys) = r::max_pool(&[-2.0; 25], &xs, &w2([3, 3], [2, 2], [1, 1]));
    assert_eq!(ys, Shape::new4(1, 1, 3, 3));
    assert!(y.iter().all(|&v| v == -2.0), "{y:?}");
    assert_eq!(ind, vec![0, 1, 3, 5, 6, 8, 15, 16, 18]);
}

// ------------------------------------------------------------------ GPU vs reference

#[test]
fn max_pool_forward_and_backward_match_reference() {
    let Some(c) = ctx() else { return };
    for (ci, (xs, win)) in cases().into_iter().enumerate() {
        let xv = distinct_vec(xs.numel(), 10 + ci as u64);
        let (yref, iref, ys) = r::max_pool(&xv, &xs, &win);
        let gv = rand_vec(ys.numel(), 20 + ci as u64);
        let dxref = r::max_pool_grad(&gv, &iref, &ys, &xs);
        let (x, g) = (up(c, &xv, xs), up(c, &gv, ys));
        let (y, ind, dx) = c
            .run(|rec| {
                let (y, ind) = pool::max_pool(rec, &x, &win)?;
                let dx = pool::max_pool_grad(rec, &g, &ind, &win, xs)?;
                Ok((y, ind, dx))
            })
            .unwrap();
        let name = format!("case {ci} {xs} {win:?}");
        assert_eq!(y.shape, ys, "{name}");
        assert_eq!(y.to_f32_vec(c).unwrap(), yref, "{name} y");
        assert_eq!(ind.to_u32_vec(c).unwrap(), iref, "{name} indices");
        assert_close(
            &format!("{name} dx"),
            &dx.to_f32_vec(c).unwrap(),
            &dxref,
            1e-4,
            1e-4,
        );
    }
}

#[test]
fn max_pool_pads_with_minus_infinity() {
    let Some(c) = ctx() else { return };
    for (xs, win) in [
        (Shape::new4(2, 3, 7, 13), w2([3, 3], [2, 2], [1, 1])),
        (
            Shape::new5(1, 3, 5, 4, 6),
            w3([3, 3, 3], [2, 2, 2], [1, 1, 1]),
        ),
    ] {
        let xv: Vec<f32> = rand_vec(xs.numel(), 7)
            .iter()
            .map(|v| -1.5 - v.abs())
            .collect();
        let (yref, iref, ys) = r::max_pool(&xv, &xs, &win);
        assert!(yref.iter().all(|&v| v < -1.0));
        let x = up(c, &xv, xs);
        let (y, ind) = c.run(|rec| pool::max_pool(rec, &x, &win)).unwrap();
        let yv = y.to_f32_vec(c).unwrap();
        assert!(
            yv.iter().all(|&v| v < -1.0),
            "{xs}: a padding zero won: {yv:?}"
        );
        assert_eq!(yv, yref);
        assert_eq!(ind.to_u32_vec(c).unwrap(), iref);
        assert_eq!(y.shape, ys);
    }
}

#[test]
fn max_pool_ties_pick_the_first_maximum() {
    let Some(c) = ctx() else { return };
    let xs = Shape::new4(2, 3, 7, 9);
    let win = w2([3, 3], [2, 2], [1, 1]);
    // Few distinct values: many ties within each window.
    let xv: Vec<f32> = rand_vec(xs.numel(), 8)
        .iter()
        .map(|v| (v * 2.0).round())
        .collect();
    let (yref, iref, _) = r::max_pool(&xv, &xs, &win);
    let x = up(c, &xv, xs);
    let (y, ind) = c.run(|rec| pool::max_pool(rec, &x, &win)).unwrap();
    assert_eq!(y.to_f32_vec(c).unwrap(), yref);
    assert_eq!(ind.to_u32_vec(c).unwrap(), iref);
}

#[test]
fn avg_pool_forward_and_backward_match_reference() {
    let Some(c) = ctx() else { return };
    for (ci, (xs, win)) in cases().into_iter().enumerate() {
        for cip in [true, false] {
            let xv = rand_vec(xs.numel(), 30 + ci as u64);
            let (yref, ys) = r::avg_pool(&xv, &xs, &win, cip);
            let gv = rand_vec(ys.numel(), 40 + ci as u64);
            let dxref = r::avg_pool_grad(&gv, &ys, &win, cip, &xs);
            let (x, g) = (up(c, &xv, xs), up(c, &gv, ys));
            let y = Tensor::empty(c, ys, DType::F32).unwrap();
            let dx = Tensor::empty(c, xs, DType::F32).unwrap();
            c.run(|rec| {
                pool::avg_pool_into(rec, &x, &win, cip, &y)?;
                pool::avg_pool_grad_into(rec, &g, &win, cip, &dx)
            })
            .unwrap();
            let name = format!("case {ci} {xs} {win:?} count_include_pad {cip}");
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
fn max_unpool_forward_and_backward_match_reference() {
    let Some(c) = ctx() else { return };
    for (xs, win) in [
        (Shape::new4(2, 3, 7, 13), w2([2, 2], [2, 2], [0, 0])),
        (Shape::new4(1, 5, 8, 6), w2([2, 3], [2, 3], [0, 0])),
        (
            Shape::new5(2, 3, 5, 7, 6),
            w3([2, 2, 2], [2, 2, 2], [0, 0, 0]),
        ),
    ] {
        let xv = distinct_vec(xs.numel(), 50);
        let (pv, iv, ps) = r::max_pool(&xv, &xs, &win);
        // The original (odd) size, given explicitly, and the default size.
        let default = win.unpool_out(ps.spatial()).unwrap();
        assert_eq!(
            default[2],
            unpool_out_len(ps.w(), win.kernel[2], win.stride[2], win.pad[2]).unwrap()
        );
        for out in [xs.spatial(), default] {
            let (yref, ys) = r::max_unpool(&pv, &ps, &iv, out);
            let gv = rand_vec(ys.numel(), 60);
            let dxref = r::max_unpool_grad(&gv, &ys, &iv, &ps);
            let (p, g) = (up(c, &pv, ps), up(c, &gv, ys));
            let ind = Tensor::from_u32(c, &iv, ps).unwrap();
            let (y, dx) = c
                .run(|rec| {
                    Ok((
                        pool::max_unpool(rec, &p, &ind, out)?,
                        pool::max_unpool_grad(rec, &g, &ind)?,
                    ))
                })
                .unwrap();
            let name = format!("{xs} {win:?} -> {ys}");
            assert_eq!(y.shape, ys);
            assert_eq!(y.to_f32_vec(c).unwrap(), yref, "{name} y");
            assert_eq!(dx.to_f32_vec(c).unwrap(), dxref, "{name} dx");
            if out == xs.spatial() {
                // Unpooling puts every max back where it came from.
                let yv = y.to_f32_vec(c).unwrap();
                assert!(
                    yv.iter().zip(&xv).all(|(a, b)| *a == 0.0 || a == b),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn unpool_overwrites_stale_output() {
    let Some(c) = ctx() else { return };
    let ps = Shape::new4(1, 2, 2, 3);
    let pv = rand_vec(ps.numel(), 1);
    let iv: Vec<u32> = (0..ps.numel() as u32).map(|i| (i % 6) * 4 + 1).collect();
    let (yref, ys) = r::max_unpool(&pv, &ps, &iv, [1, 4, 6]);
    let y = Tensor::from_f32(c, &vec![9.0; ys.numel()], ys).unwrap();
    let (p, ind) = (up(c, &pv, ps), Tensor::from_u32(c, &iv, ps).unwrap());
    c.run(|rec| pool::max_unpool_into(rec, &p, &ind, &y))
        .unwrap();
    assert_eq!(y.to_f32_vec(c).unwrap(), yref);
}

#[test]
fn bad_shapes_are_errors() {
    let Some(c) = ctx() else { return };
    let x = Tensor::zeros(c, Shape::new4(1, 2, 6, 6), DType::F32).unwrap();
    let mut rec = wunet::gpu::Recorder::new(c);
    // Padding above half the kernel.
    let e = pool::max_pool(&mut rec, &x, &w2([2, 2], [2, 2], [2, 2])).unwrap_err();
    assert!(e.to_string().contains("max_pool"), "{e}");
    // A 3D window on a 2D input.
    assert!(pool::avg_pool(&mut rec, &x, &w3([2, 2, 2], [2, 2, 2], [0, 0, 0]), true).is_err());
    // Window larger than the input.
    assert!(pool::max_pool(&mut rec, &x, &w2([7, 7], [1, 1], [0, 0])).is_err());
    // Wrong grad shape.
    let dy = Tensor::zeros(c, Shape::new4(1, 2, 4, 3), DType::F32).unwrap();
    let ind = Tensor::zeros(c, Shape::new4(1, 2, 4, 3), DType::U32).unwrap();
    let e =
        pool::max_pool_grad(&mut rec, &dy, &ind, &w2([2, 2], [2, 2], [0, 0]), x.shape).unwrap_err();
    assert!(
        e.to_string().contains("6x6") && e.to_string().contains("4x3"),
        "{e}"
    );
    // f32 indices.
    let (y, _) = pool::max_pool(&mut rec, &x, &w2([2, 2], [2, 2], [0, 0])).unwrap();
    assert!(
        pool::max_pool_into(&mut rec, &x, &w2([2, 2], [2, 2], [0, 0]), &y, &y.clone()).is_err()
    );
    assert!(pool::max_unpool(&mut rec, &y, &y, [1, 6, 6]).is_err());
    // In place is refused rather than a wgpu usage conflict.
    assert!(pool::avg_pool_into(&mut rec, &x, &w2([1, 1], [1, 1], [0, 0]), true, &x).is_err());
}
