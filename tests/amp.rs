//! Mixed-precision building blocks (`ops::amp`): casts, the loss-scaled cast,
//! the finiteness check of gradients and the loss-scale update, against their
//! CPU definitions.

mod common;

use half::f16;
use wunet::gpu::{DType, Tensor};
use wunet::ops::amp::{self, scaler_init, SCALER_LEN};
use wunet::shape::Shape;

fn f16_round(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

#[test]
fn casts_round_to_nearest_and_widen_exactly() {
    let Some(ctx) = common::ctx() else { return };
    if !ctx.features.contains(wgpu::Features::SHADER_F16) {
        eprintln!("skip: {} has no SHADER_F16", ctx.describe());
        return;
    }
    let n = 1037; // odd: the F16 tensor has a padding half
    let x: Vec<f32> = common::rand_vec(n, 3).iter().map(|v| v * 3.0).collect();
    let s = Shape::new4(1, 1, 17, 61);
    let xt = Tensor::from_f32(ctx, &x, s).unwrap();
    let h = Tensor::empty(ctx, s, DType::F16).unwrap();
    let back = Tensor::empty(ctx, s, DType::F32).unwrap();
    let scaler = Tensor::from_f32(ctx, &scaler_init(1024.0), Shape::vector(SCALER_LEN)).unwrap();
    let hs = Tensor::empty(ctx, s, DType::F16).unwrap();
    ctx.run(|rec| {
        amp::cast_into(rec, &xt, &h, None)?;
        amp::cast_into(rec, &h, &back, None)?;
        amp::cast_into(rec, &xt, &hs, Some(&scaler))
    })
    .unwrap();
    let got = back.to_f32_vec(ctx).unwrap();
    let scaled = hs.to_f32_vec(ctx).unwrap();
    for i in 0..n {
        // f32 -> f16 rounds to nearest (ties to even) like half::f16::from_f32;
        // f16 -> f32 is exact. Tolerance 0: both are exactly specified.
        assert_eq!(got[i], f16_round(x[i]), "element {i}");
        assert_eq!(scaled[i], f16_round(x[i] * 1024.0), "scaled element {i}");
    }
    // Overflow of the scaled cast gives Inf, which the finiteness check catches.
    let big = Tensor::from_f32(ctx, &[70000.0, 1.0], Shape::vector(2)).unwrap();
    let hb = Tensor::empty(ctx, Shape::vector(2), DType::F16).unwrap();
    ctx.run(|rec| amp::cast_into(rec, &big, &hb, None)).unwrap();
    assert!(hb.to_f32_vec(ctx).unwrap()[0].is_infinite());
}

#[test]
fn cast_rejects_other_dtype_pairs() {
    let Some(ctx) = common::ctx() else { return };
    let a = Tensor::zeros(ctx, Shape::vector(4), DType::F32).unwrap();
    let b = Tensor::zeros(ctx, Shape::vector(4), DType::F32).unwrap();
    let c = Tensor::zeros(ctx, Shape::vector(5), DType::F32).unwrap();
    let e = ctx
        .run(|rec| amp::cast_into(rec, &a, &b, None))
        .unwrap_err();
    assert!(e.to_string().contains("F32 -> F32"), "{e}");
    let e = ctx
        .run(|rec| amp::cast_into(rec, &a, &c, None))
        .unwrap_err();
    assert!(e.to_string().contains("differ"), "{e}");
}

#[test]
fn finite_check_flags_any_inf_or_nan_in_any_gradient() {
    let Some(ctx) = common::ctx() else { return };
    // 8 gradients: two dispatches of 6; lengths differ so that a bad value at
    // the end of a long tensor is beyond the others' lengths.
    let lens = [5usize, 3000, 7, 1, 64, 999, 2, 4100];
    let flag = Tensor::zeros(ctx, Shape::vector(1), DType::U32).unwrap();
    let run = |bad: Option<(usize, f32)>| -> u32 {
        let grads: Vec<Tensor> = lens
            .iter()
            .enumerate()
            .map(|(k, &n)| {
                let mut v = common::rand_vec(n, k as u64 + 1);
                if let Some((which, val)) = bad {
                    if which == k {
                        v[n - 1] = val;
                    }
                }
                Tensor::from_f32(ctx, &v, Shape::vector(n)).unwrap()
            })
            .collect();
        let refs: Vec<&Tensor> = grads.iter().collect();
        ctx.run(|rec| amp::finite_check_into(rec, &refs, &flag))
            .unwrap();
        flag.to_u32_vec(ctx).unwrap()[0]
    };
    assert_eq!(run(None), 0, "all finite");
    assert_eq!(
        run(Some((7, f32::NAN))),
        1,
        "NaN at the end of the last gradient"
    );
    assert_eq!(
        run(None),
        0,
        "the flag is cleared at the start of each check"
    );
    assert_eq!(run(Some((1, f32::INFINITY))), 1, "+Inf");
    assert_eq!(
        run(Some((3, f32::NEG_INFINITY))),
        1,
        "-Inf in a one-element gradient"
    );
    assert_eq!(run(Some((5, f32::MAX))), 0, "f32::MAX is finite");
}

/// The CPU definition of one update (see kernels/amp.wgsl).
fn update_ref(s: &mut [f32; 4], overflow: bool, interval: u32) {
    if overflow {
        s[0] *= 0.5;
        s[2] = 0.0;
        s[3] += 1.0;
    } else {
        s[2] += 1.0;
        if s[2] >= interval as f32 {
            s[0] = (s[0] * 2.0).min(16_777_216.0);
            s[2] = 0.0;
        }
    }
    s[1] = 1.0 / s[0];
}

#[test]
fn update_scale_halves_on_overflow_and_doubles_after_interval_clean_steps() {
    let Some(ctx) = common::ctx() else { return };
    let interval = 3;
    let scaler = Tensor::from_f32(ctx, &scaler_init(8.0), Shape::vector(SCALER_LEN)).unwrap();
    let flag = Tensor::zeros(ctx, Shape::vector(1), DType::U32).unwrap();
    let mut want = scaler_init(8.0);
    let pattern = [
        false, true, false, false, false, false, true, true, false, false, false,
    ];
    for (step, &overflow) in pattern.iter().enumerate() {
        ctx.queue.write_buffer(
            flag.buffer(),
            flag.offset,
            bytemuck::cast_slice(&[overflow as u32]),
        );
        ctx.run(|rec| amp::update_scale_into(rec, &flag, &scaler, interval))
            .unwrap();
        update_ref(&mut want, overflow, interval);
        let got = scaler.to_f32_vec(ctx).unwrap();
        assert_eq!(
            got,
            want.to_vec(),
            "after step {step} (overflow {overflow})"
        );
    }
    assert_eq!(want[3], 3.0, "three skipped steps counted");
}

/// An amp update divides the gradient by the scale (scaler[1] = 1/scale) and
/// writes nothing when the overflow flag is set; with a power-of-two scale
/// the result equals the plain update on the unscaled gradient bit for bit.
#[test]
fn amp_updates_unscale_and_skip_on_overflow() {
    use wunet::graph::ops::{AdamAttrs, SgdAttrs};
    use wunet::ops::optim;
    let Some(ctx) = common::ctx() else { return };
    let n = 2051;
    let s = Shape::vector(n);
    let p0 = common::rand_vec(n, 11);
    let g: Vec<f32> = common::rand_vec(n, 12).iter().map(|v| v * 1e-3).collect();
    let scale = 4096.0f32;
    let gs: Vec<f32> = g.iter().map(|v| v * scale).collect();
    let hyper = optim::hyper_tensor(ctx).unwrap();
    optim::write_hyper(ctx, &hyper, optim::hyper_values(1, 0.1, 0.9, 0.999)).unwrap();
    let scaler = Tensor::from_f32(ctx, &scaler_init(scale), Shape::vector(SCALER_LEN)).unwrap();
    let flag = |v: u32| Tensor::from_u32(ctx, &[v], Shape::vector(1)).unwrap();
    let sgd = SgdAttrs {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 1e-4,
        amp: false,
    };
    let adam = AdamAttrs::default();
    // Runs (plain on g) and (amp on g * scale with `flag`); returns both params after.
    let run = |use_adam: bool, f: u32| -> (Vec<f32>, Vec<f32>) {
        let mk = |v: &[f32]| Tensor::from_f32(ctx, v, s).unwrap();
        let (pa, pb) = (mk(&p0), mk(&p0));
        let (ga, gb) = (mk(&g), mk(&gs));
        let z = || Tensor::zeros(ctx, s, DType::F32).unwrap();
        let (ma, va, mb, vb) = (z(), z(), z(), z());
        let fl = flag(f);
        ctx.run(|rec| {
            if use_adam {
                let amp_cfg = AdamAttrs { amp: true, ..adam };
                optim::adam_update(rec, &pa, &ga, &ma, &va, &hyper, None, &adam)?;
                optim::adam_update(
                    rec,
                    &pb,
                    &gb,
                    &mb,
                    &vb,
                    &hyper,
                    Some((&fl, &scaler)),
                    &amp_cfg,
                )
            } else {
                let amp_cfg = SgdAttrs { amp: true, ..sgd };
                optim::sgd_update(rec, &pa, &ga, Some(&ma), &hyper, None, &sgd)?;
                optim::sgd_update(
                    rec,
                    &pb,
                    &gb,
                    Some(&mb),
                    &hyper,
                    Some((&fl, &scaler)),
                    &amp_cfg,
                )
            }
        })
        .unwrap();
        (pa.to_f32_vec(ctx).unwrap(), pb.to_f32_vec(ctx).unwrap())
    };
    for use_adam in [false, true] {
        let (plain, amp) = run(use_adam, 0);
        assert_eq!(
            plain, amp,
            "adam {use_adam}: unscaled amp update = plain update"
        );
        assert_ne!(
            plain, p0,
            "adam {use_adam}: the update changed the parameter"
        );
        let (_, skipped) = run(use_adam, 1);
        assert_eq!(skipped, p0, "adam {use_adam}: overflow skips the update");
    }
    // An amp update without its inputs, or inputs without amp, is an error.
    let p = Tensor::zeros(ctx, s, DType::F32).unwrap();
    let e = ctx
        .run(|rec| {
            optim::sgd_update(
                rec,
                &p,
                &p,
                None,
                &hyper,
                None,
                &SgdAttrs {
                    momentum: 0.0,
                    nesterov: false,
                    amp: true,
                    ..sgd
                },
            )
        })
        .unwrap_err();
    assert!(e.to_string().contains("needs the overflow flag"), "{e}");
}
