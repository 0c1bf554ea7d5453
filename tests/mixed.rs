//! Mixed precision through the op wrappers (issue 11): activations, tensor
//! plumbing, channel sums, pooling and upsampling with F16 activations,
//! against the same wrappers on F32 tensors holding the same f16-rounded values
//! and against the CPU reference on those values; and the dtype errors.
//! Norms and losses: tests/mixed_norm_loss.rs. The method and the tolerances
//! are explained in tests/common/mixed.rs; each comparison names its own.

mod common;

use common::mixed::{
    act_t, both, err, exact, f16_ctx, f32_t, near_ref, read, round16, same, same_bits, stored,
};
use common::{assert_close, rand_vec};
use wunet::graph::ops::{PadMode, UpsampleMode};
use wunet::ops::{activation as act, pool, reduce, tensor as t, upsample as ups};
use wunet::reference::{activation as ra, conv as rc, pool as rp, tensor as rt, upsample as ru};
use wunet::{DType, Shape, Tensor, Window};

/// Batch 2, H != W != D, channels not multiples of 4; the last has an odd
/// element count (2001: the F16 binding ends with a padding half).
fn shapes() -> [Shape; 3] {
    [
        Shape::new4(2, 3, 7, 13),
        Shape::new5(2, 3, 5, 7, 9),
        Shape::new4(1, 3, 23, 29),
    ]
}

// ------------------------------------------------------------------ activation

#[test]
fn activations_in_f16() {
    let Some(c) = f16_ctx() else { return };
    let (slope, p, seed) = (0.2f32, 0.3f32, 1234u32);
    for s in shapes() {
        let (xv, gv) = (rand_vec(s.numel(), 1), rand_vec(s.numel(), 2));
        let [h, f] = both(|dt| {
            let (x, g) = (act_t(c, &xv, s, dt), act_t(c, &gv, s, dt));
            let y = Tensor::empty(c, s, dt)?;
            c.run(|rec| {
                act::relu_into(rec, &x, &y)?;
                Ok(vec![
                    y.clone(),
                    act::relu_grad(rec, &g, &x)?,
                    act::leaky_relu(rec, &x, slope)?,
                    act::leaky_relu_grad(rec, &g, &x, slope)?,
                    act::sigmoid(rec, &x)?,
                    // `x` as the forward output: the same values in both runs.
                    act::sigmoid_grad(rec, &g, &x)?,
                    act::dropout(rec, &x, p, seed)?,
                    act::dropout_grad(rec, &g, p, seed)?,
                ])
            })
        });
        let (x, g) = (round16(&xv), round16(&gv));
        // Selections (relu and its gradient) are exact; everything else is one
        // f32 product or function, rounded once.
        exact(c, &format!("{s} relu"), &h[0], &f[0]);
        exact(c, &format!("{s} relu_grad"), &h[1], &f[1]);
        for (i, name) in [
            (2, "leaky_relu"),
            (3, "leaky_relu_grad"),
            (4, "sigmoid"),
            (5, "sigmoid_grad"),
            (6, "dropout"),
            (7, "dropout_grad"),
        ] {
            stored(c, &format!("{s} {name}"), &h[i], &f[i]);
        }
        same_bits(
            &format!("{s} relu vs reference"),
            &read(c, &h[0]),
            &ra::relu(&x),
        );
        same_bits(
            &format!("{s} relu_grad vs reference"),
            &read(c, &h[1]),
            &ra::relu_grad(&g, &x),
        );
        // tests/activation.rs: leaky exact in f32, sigmoid (and its gradient)
        // 1e-6 + 1e-5 rel, dropout 1e-6 rel; each plus one f16 rounding.
        let refs: [(usize, Vec<f32>, (f32, f32)); 6] = [
            (2, ra::leaky_relu(&x, slope), (0.0, 0.0)),
            (3, ra::leaky_relu_grad(&g, &x, slope), (0.0, 0.0)),
            (4, ra::sigmoid(&x), (1e-6, 1e-5)),
            (5, ra::sigmoid_grad(&g, &x), (1e-6, 1e-5)),
            (6, ra::dropout(&x, p, seed), (0.0, 1e-6)),
            (7, ra::dropout_grad(&g, p, seed), (0.0, 1e-6)),
        ];
        for (i, want, fam) in refs {
            near_ref(
                &format!("{s} output {i} vs reference"),
                &read(c, &h[i]),
                &want,
                fam,
            );
        }
    }
}

// ------------------------------------------------------------------ tensor plumbing

#[test]
fn elementwise_tensor_ops_in_f16() {
    let Some(c) = f16_ctx() else { return };
    // Elementwise ops take any rank: a plain vector too.
    let [s0, s1, s2] = shapes();
    for s in [s0, s1, s2, Shape::vector(1001)] {
        let (av, bv, yv) = (
            rand_vec(s.numel(), 3),
            rand_vec(s.numel(), 4),
            rand_vec(s.numel(), 5),
        );
        let [h, f] = both(|dt| {
            let (a, b) = (act_t(c, &av, s, dt), act_t(c, &bv, s, dt));
            let acc = act_t(c, &yv, s, dt);
            let filled = Tensor::empty(c, s, dt)?;
            c.run(|rec| {
                let sum = t::add(rec, &a, &b)?;
                let scaled = t::scale(rec, &a, -0.75)?;
                t::axpy_into(rec, 0.3, &b, &acc)?;
                t::fill_into(rec, &filled, 0.1)?;
                let copied = t::copy(rec, &b)?;
                Ok(vec![sum, scaled, acc.clone(), filled.clone(), copied])
            })
        });
        // add, scale, axpy: one f32 operation, rounded once; fill rounds 0.1 once.
        for (i, name) in [(0, "add"), (1, "scale"), (2, "axpy"), (3, "fill")] {
            stored(c, &format!("{s} {name}"), &h[i], &f[i]);
        }
        exact(c, &format!("{s} copy"), &h[4], &f[4]);
        let (a, b, mut y) = (round16(&av), round16(&bv), round16(&yv));
        rt::axpy(0.3, &b, &mut y);
        // tests/tensor_ops.rs: 1e-6 (atol and rtol), plus one f16 rounding.
        let fam = (1e-6, 1e-6);
        near_ref(
            &format!("{s} add vs reference"),
            &read(c, &h[0]),
            &rt::add(&a, &b),
            fam,
        );
        let want = rt::scale(&a, -0.75);
        near_ref(
            &format!("{s} scale vs reference"),
            &read(c, &h[1]),
            &want,
            fam,
        );
        near_ref(&format!("{s} axpy vs reference"), &read(c, &h[2]), &y, fam);
        same_bits(
            &format!("{s} fill"),
            &read(c, &h[3]),
            &round16(&vec![0.1; s.numel()]),
        );
        same_bits(&format!("{s} copy vs reference"), &read(c, &h[4]), &b);
    }
}

#[test]
fn concat_split_crop_pad_in_f16() {
    let Some(c) = f16_ctx() else { return };
    // (concat inputs; crop offset and size; pad low and high), 2D then 3D.
    let cases = [
        (
            [
                Shape::new4(2, 3, 9, 11),
                Shape::new4(2, 2, 9, 11),
                Shape::new4(2, 5, 9, 11),
            ],
            ([0, 1, 2], [1, 5, 6]),
            ([0, 1, 2], [0, 2, 1]),
        ),
        (
            [
                Shape::new5(2, 3, 5, 6, 7),
                Shape::new5(2, 1, 5, 6, 7),
                Shape::new5(2, 2, 5, 6, 7),
            ],
            ([1, 2, 0], [3, 4, 4]),
            ([1, 2, 1], [2, 1, 3]),
        ),
    ];
    for (ci, (xs3, (off, size), (lo, hi))) in cases.into_iter().enumerate() {
        let xs = xs3[0];
        let ys = wunet::ops::tensor::concat_channels_out_shape(&xs3).unwrap();
        let sizes: Vec<usize> = xs3.iter().map(|s| s.c()).collect();
        let xvs: Vec<Vec<f32>> = (0..3)
            .map(|i| rand_vec(xs3[i].numel(), 10 + i as u64))
            .collect();
        let gv = rand_vec(ys.numel(), 13);
        let cs = xs.with_spatial(size);
        let cv = rand_vec(cs.numel(), 14);
        let ps = wunet::ops::tensor::pad_out_shape(&xs, lo, hi, PadMode::Zero).unwrap();
        let pv = rand_vec(ps.numel(), 15);
        let [h, f] = both(|dt| {
            let xts: Vec<Tensor> = (0..3).map(|i| act_t(c, &xvs[i], xs3[i], dt)).collect();
            let g = act_t(c, &gv, ys, dt);
            let (cg, pg) = (act_t(c, &cv, cs, dt), act_t(c, &pv, ps, dt));
            let x = &xts[0];
            c.run(|rec| {
                let mut out = vec![t::concat_channels(rec, &[&xts[0], &xts[1], &xts[2]])?];
                out.extend(t::split_channels(rec, &g, &sizes)?);
                out.push(t::crop(rec, x, off, size)?);
                out.push(t::crop_grad(rec, &cg, off, xs)?);
                for mode in [PadMode::Zero, PadMode::Reflect] {
                    out.push(t::pad(rec, x, lo, hi, mode)?);
                    out.push(t::pad_grad(rec, &pg, lo, hi, mode, xs)?);
                }
                Ok(out)
            })
        });
        let name = |what: &str| format!("case {ci} {xs} {what}");
        // Moves of values are exact; the reflect backward sums up to 8 values
        // in f32 (27 in 3D), rounded once.
        for (i, what) in [
            (0, "concat"),
            (1, "split 0"),
            (2, "split 1"),
            (3, "split 2"),
            (4, "crop"),
            (5, "crop_grad"),
            (6, "zero pad"),
            (7, "zero pad_grad"),
            (8, "reflect pad"),
        ] {
            exact(c, &name(what), &h[i], &f[i]);
        }
        stored(c, &name("reflect pad_grad"), &h[9], &f[9]);
        let xr: Vec<Vec<f32>> = xvs.iter().map(|v| round16(v)).collect();
        let (g, cgr, pgr) = (round16(&gv), round16(&cv), round16(&pv));
        let parts: Vec<(&[f32], Shape)> = (0..3).map(|i| (&xr[i][..], xs3[i])).collect();
        let mut want = vec![rt::concat_channels(&parts).0];
        want.extend(rt::split_channels(&g, &ys, &sizes));
        want.push(rt::crop(&xr[0], &xs, off, size).0);
        want.push(rt::crop_grad(&cgr, &cs, off, &xs));
        for mode in [PadMode::Zero, PadMode::Reflect] {
            want.push(rt::pad(&xr[0], &xs, lo, hi, mode).0);
            want.push(rt::pad_grad(&pgr, &ps, lo, hi, mode, &xs));
        }
        for (i, w) in want.iter().enumerate().take(9) {
            same_bits(
                &name(&format!("output {i} vs reference")),
                &read(c, &h[i]),
                w,
            );
        }
        // tests/tensor_ops.rs: 1e-5 (sums in another order), plus one f16 rounding.
        near_ref(
            &name("reflect pad_grad vs reference"),
            &read(c, &h[9]),
            &want[9],
            (1e-5, 1e-5),
        );
    }
}

// ------------------------------------------------------------------ reduce

#[test]
fn channel_sum_reads_f16() {
    let Some(c) = f16_ctx() else { return };
    for xs in [Shape::new4(2, 5, 17, 19), Shape::new5(2, 3, 5, 6, 7)] {
        let xv = rand_vec(xs.numel(), 20);
        let [h, f] = both(|dt| {
            let x = act_t(c, &xv, xs, dt);
            let out = Tensor::zeros(c, Shape::vector(xs.c()), DType::F32)?;
            c.run(|rec| reduce::channel_sum_into(rec, &x, &out, false))?;
            Ok(out)
        });
        // An f32 output of the same f32 sums in both runs.
        same(c, &format!("{xs} channel_sum"), &h, &f);
        // tests/conv.rs's bias-gradient tolerance (1e-4); the output is f32.
        let want = rc::channel_sum(&round16(&xv), &xs);
        assert_close(
            &format!("{xs} channel_sum vs reference"),
            &read(c, &h),
            &want,
            1e-4,
            1e-4,
        );
    }
}

// ------------------------------------------------------------------ pooling

#[test]
fn pooling_in_f16() {
    let Some(c) = f16_ctx() else { return };
    // k3 s2 p1 (overlapping windows: the backwards sum several outputs) in 2D;
    // k2 s2 in 3D on odd sizes (floor).
    for (xs, win) in [
        (Shape::new4(2, 3, 9, 10), Window::cube(2, 3, 2, 1)),
        (Shape::new5(2, 3, 5, 6, 7), Window::cube(3, 2, 2, 0)),
    ] {
        let ys = pool::pool_out_shape(&xs, &win).unwrap();
        let (xv, gv, uv) = (
            rand_vec(xs.numel(), 30),
            rand_vec(ys.numel(), 31),
            rand_vec(xs.numel(), 32),
        );
        let [(h, hi), (f, fi)] = both(|dt| {
            let (x, dy, du) = (
                act_t(c, &xv, xs, dt),
                act_t(c, &gv, ys, dt),
                act_t(c, &uv, xs, dt),
            );
            c.run(|rec| {
                let (y, idx) = pool::max_pool(rec, &x, &win)?;
                let out = vec![
                    pool::max_pool_grad(rec, &dy, &idx, &win, xs)?,
                    pool::max_unpool(rec, &y, &idx, xs.spatial())?,
                    pool::max_unpool_grad(rec, &du, &idx)?,
                    pool::avg_pool(rec, &x, &win, true)?,
                    pool::avg_pool(rec, &x, &win, false)?,
                    pool::avg_pool_grad(rec, &dy, &win, true, xs)?,
                    pool::avg_pool_grad(rec, &dy, &win, false, xs)?,
                    y,
                ];
                Ok((out, idx))
            })
        });
        let name = |what: &str| format!("{xs} {win:?} {what}");
        // Maxima, indices and (un)pooling moves are exact; sums are f32, rounded once.
        exact(c, &name("max_pool y"), &h[7], &f[7]);
        let idx = hi.to_u32_vec(c).unwrap();
        assert_eq!(idx, fi.to_u32_vec(c).unwrap(), "{}", name("indices"));
        exact(c, &name("max_unpool"), &h[1], &f[1]);
        exact(c, &name("max_unpool_grad"), &h[2], &f[2]);
        for (i, what) in [
            (0, "max_pool_grad"),
            (3, "avg_pool (count_include_pad)"),
            (4, "avg_pool"),
            (5, "avg_pool_grad (count_include_pad)"),
            (6, "avg_pool_grad"),
        ] {
            stored(c, &name(what), &h[i], &f[i]);
        }
        let (x, g, u) = (round16(&xv), round16(&gv), round16(&uv));
        let (yref, iref, _) = rp::max_pool(&x, &xs, &win);
        same_bits(&name("max_pool vs reference"), &read(c, &h[7]), &yref);
        assert_eq!(idx, iref, "{}", name("indices vs reference"));
        let unref = rp::max_unpool(&yref, &ys, &iref, xs.spatial()).0;
        same_bits(&name("max_unpool vs reference"), &read(c, &h[1]), &unref);
        let want = rp::max_unpool_grad(&u, &xs, &iref, &ys);
        same_bits(
            &name("max_unpool_grad vs reference"),
            &read(c, &h[2]),
            &want,
        );
        // tests/pool.rs: 1e-4 (atol and rtol), plus one f16 rounding.
        let fam = (1e-4, 1e-4);
        let want = rp::max_pool_grad(&g, &iref, &ys, &xs);
        near_ref(
            &name("max_pool_grad vs reference"),
            &read(c, &h[0]),
            &want,
            fam,
        );
        for (k, cip) in [(0, true), (1, false)] {
            let want = rp::avg_pool(&x, &xs, &win, cip).0;
            near_ref(
                &name("avg_pool vs reference"),
                &read(c, &h[3 + k]),
                &want,
                fam,
            );
            let want = rp::avg_pool_grad(&g, &ys, &win, cip, &xs);
            near_ref(
                &name("avg_pool_grad vs ref"),
                &read(c, &h[5 + k]),
                &want,
                fam,
            );
        }
    }
}

// ------------------------------------------------------------------ upsampling

#[test]
fn upsampling_in_f16() {
    let Some(c) = f16_ctx() else { return };
    for (xs, fac) in [
        (Shape::new4(2, 3, 5, 7), [1, 2, 3]),
        (Shape::new5(2, 2, 3, 4, 5), [2, 2, 2]),
    ] {
        for mode in [UpsampleMode::Nearest, UpsampleMode::Linear] {
            let ys = ups::upsample_out_shape(&xs, fac).unwrap();
            let (xv, gv) = (rand_vec(xs.numel(), 40), rand_vec(ys.numel(), 41));
            let [h, f] = both(|dt| {
                let (x, dy) = (act_t(c, &xv, xs, dt), act_t(c, &gv, ys, dt));
                c.run(|rec| {
                    Ok(vec![
                        ups::upsample(rec, &x, fac, mode)?,
                        ups::upsample_grad(rec, &dy, fac, mode, xs)?,
                    ])
                })
            });
            let name = |what: &str| format!("{xs} {fac:?} {mode:?} {what}");
            // Nearest forward copies; the rest are f32 sums or blends, rounded once.
            if mode == UpsampleMode::Nearest {
                exact(c, &name("forward"), &h[0], &f[0]);
            } else {
                stored(c, &name("forward"), &h[0], &f[0]);
            }
            stored(c, &name("backward"), &h[1], &f[1]);
            // tests/upsample.rs: 1e-4 (atol and rtol), plus one f16 rounding.
            let (x, g) = (round16(&xv), round16(&gv));
            let want = ru::upsample(&x, &xs, fac, mode).0;
            near_ref(
                &name("forward vs reference"),
                &read(c, &h[0]),
                &want,
                (1e-4, 1e-4),
            );
            let want = ru::upsample_grad(&g, fac, mode, &xs);
            near_ref(
                &name("backward vs reference"),
                &read(c, &h[1]),
                &want,
                (1e-4, 1e-4),
            );
        }
    }
}

// ------------------------------------------------------------------ errors

#[test]
fn mixed_dtypes_are_errors_naming_op_and_tensors() {
    let Some(c) = f16_ctx() else { return };
    let mut rec = wunet::gpu::Recorder::new(c);
    let s = Shape::new4(2, 3, 5, 7);
    let v = vec![0.5; s.numel()];
    let (h, f) = (act_t(c, &v, s, DType::F16), f32_t(c, &v, s));
    let (h2, f2) = (act_t(c, &v, s, DType::F16), f32_t(c, &v, s));
    let e = err("add", t::add(&mut rec, &h, &f));
    assert!(e.contains("add: a is F16 but b is F32"), "{e}");
    let e = err("add into", t::add_into(&mut rec, &h, &h2, &f2));
    assert!(e.contains("add: a is F16 but output is F32"), "{e}");
    let e = err("relu", act::relu_into(&mut rec, &h, &f));
    assert!(e.contains("relu: input is F16 but output is F32"), "{e}");
    let e = err("relu_grad", act::relu_grad(&mut rec, &f, &h));
    assert!(
        e.contains("relu_grad: input is F16 but grad_output is F32"),
        "{e}"
    );
    let e = err("concat", t::concat_channels(&mut rec, &[&h, &f]));
    assert!(
        e.contains("concat_channels: input 0 is F16 but input 1 is F32"),
        "{e}"
    );
    let parts = [
        &Tensor::empty(c, Shape::new4(2, 1, 5, 7), DType::F16).unwrap(),
        &Tensor::empty(c, Shape::new4(2, 2, 5, 7), DType::F32).unwrap(),
    ];
    let e = err("split", t::split_channels_into(&mut rec, &h, &parts));
    assert!(
        e.contains("split_channels: input is F16 but output 1 is F32"),
        "{e}"
    );
    let e = err(
        "pad",
        t::pad_into(&mut rec, &h, [0; 3], [0; 3], PadMode::Zero, &f),
    );
    assert!(e.contains("pad: input is F16 but output is F32"), "{e}");
    let win = Window::cube(2, 2, 2, 0);
    let ys = pool::pool_out_shape(&s, &win).unwrap();
    let y = Tensor::empty(c, ys, DType::F32).unwrap();
    let idx = Tensor::empty(c, ys, DType::U32).unwrap();
    let e = err(
        "max_pool",
        pool::max_pool_into(&mut rec, &h, &win, &y, &idx),
    );
    assert!(
        e.contains("max_pool: input is F16 but output is F32"),
        "{e}"
    );
    let dy = Tensor::empty(c, ys, DType::F16).unwrap();
    let e = err(
        "avg_pool_grad",
        pool::avg_pool_grad_into(&mut rec, &dy, &win, false, &f),
    );
    assert!(
        e.contains("avg_pool_grad: grad_output is F16 but grad_input is F32"),
        "{e}"
    );
    let us = ups::upsample_out_shape(&s, [1, 2, 2]).unwrap();
    let up = Tensor::empty(c, us, DType::F32).unwrap();
    let e = err(
        "upsample",
        ups::upsample_into(&mut rec, &h, [1, 2, 2], UpsampleMode::Nearest, &up),
    );
    assert!(
        e.contains("upsample: input is F16 but output is F32"),
        "{e}"
    );
    // Bias-gradient sums are F32.
    let db = Tensor::empty(c, Shape::vector(3), DType::F16).unwrap();
    let e = err(
        "channel_sum",
        reduce::channel_sum_into(&mut rec, &h, &db, false),
    );
    assert!(
        e.contains("channel_sum: output 3 has dtype F16, expected F32"),
        "{e}"
    );
    // Integer tensors are no activations.
    let i = Tensor::zeros(c, s, DType::I32).unwrap();
    let e = err("relu I32", act::relu(&mut rec, &i));
    assert!(
        e.contains("relu: input 2x3x5x7 has dtype I32; activations are F32 or F16"),
        "{e}"
    );
    let u = Tensor::zeros(c, s, DType::U32).unwrap();
    let e = err("fill U32", t::fill_into(&mut rec, &u, 0.0));
    assert!(e.contains("fill: output 2x3x5x7 has dtype U32"), "{e}");
    // Nothing was recorded by the failing calls.
    assert!(rec.finish().is_empty());
}
