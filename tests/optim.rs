//! Optimiser updates: several GPU steps against the CPU reference, each as one
//! recorded program replayed with a rewritten `hyper` tensor (as the executor does).

mod common;
use common::{assert_close, ctx, rand_vec};
use wunet::graph::ops::{AdamAttrs, SgdAttrs};
use wunet::ops::optim::{self as go};
use wunet::reference::optim as r;
use wunet::train::schedule::LrSchedule;
use wunet::{Context, DType, Shape, Tensor};

const SIZES: [usize; 4] = [1, 1023, 1025, 5003];
const STEPS: u64 = 6;

fn up(c: &Context, v: &[f32], s: Shape) -> Tensor {
    Tensor::from_f32(c, v, s).unwrap()
}

fn read(c: &Context, t: &Tensor) -> Vec<f32> {
    t.to_f32_vec(c).unwrap()
}

fn write(c: &Context, t: &Tensor, v: &[f32]) {
    c.queue
        .write_buffer(t.buffer(), t.offset, bytemuck::cast_slice(v));
}

/// A shape of `n` elements (weight-like, odd sizes).
fn shape_of(n: usize) -> Shape {
    Shape::vector(n)
}

fn grad_at(n: usize, step: u64) -> Vec<f32> {
    rand_vec(n, 1000 + step).iter().map(|v| v * 0.5).collect()
}

#[test]
fn sgd_steps_match_reference() {
    let Some(c) = ctx() else { return };
    let sched = LrSchedule::poly(0.05, 10);
    let cfgs = [
        SgdAttrs {
            momentum: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            amp: false,
        },
        SgdAttrs {
            momentum: 0.9,
            weight_decay: 1e-2,
            nesterov: false,
            amp: false,
        },
        SgdAttrs {
            momentum: 0.99,
            weight_decay: 3e-5,
            nesterov: true,
            amp: false,
        },
    ];
    for cfg in cfgs {
        for n in SIZES {
            let s = shape_of(n);
            let p0 = rand_vec(n, 7);
            let (p, g) = (up(c, &p0, s), Tensor::zeros(c, s, DType::F32).unwrap());
            let buf = Tensor::zeros(c, s, DType::F32).unwrap();
            let hyper = go::hyper_tensor(c).unwrap();
            let uses_buf = cfg.momentum != 0.0;
            let prog = c
                .record(|rec| {
                    go::sgd_update(rec, &p, &g, uses_buf.then_some(&buf), &hyper, None, &cfg)
                })
                .unwrap();
            let (mut pr, mut br) = (p0.clone(), vec![0f32; n]);
            for step in 1..=STEPS {
                let lr = sched.lr(step - 1) as f32;
                let gv = grad_at(n, step);
                write(c, &g, &gv);
                go::write_hyper(c, &hyper, cfg.hyper(step, lr)).unwrap();
                prog.submit(c);
                r::sgd_update(&mut pr, &gv, uses_buf.then_some(&mut br[..]), lr, &cfg);
                let name = format!("sgd {cfg:?} n {n} step {step}");
                assert_close(&format!("{name} param"), &read(c, &p), &pr, 1e-5, 1e-5);
                if uses_buf {
                    assert_close(&format!("{name} buf"), &read(c, &buf), &br, 1e-5, 1e-5);
                }
            }
            // The parameters really moved.
            assert!(pr.iter().zip(&p0).any(|(a, b)| (a - b).abs() > 1e-3));
        }
    }
}

#[test]
fn adam_and_adamw_steps_match_reference() {
    let Some(c) = ctx() else { return };
    let sched = LrSchedule::Step {
        lr: 1e-2,
        gamma: 0.5,
        every: 2,
    };
    let cfgs = [
        AdamAttrs::default(),
        AdamAttrs {
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-6,
            weight_decay: 1e-2,
            decoupled: false,
            amp: false,
        },
        AdamAttrs {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 5e-2,
            decoupled: true,
            amp: false,
        },
    ];
    for cfg in cfgs {
        for n in SIZES {
            let s = shape_of(n);
            let p0 = rand_vec(n, 9);
            let (p, g) = (up(c, &p0, s), Tensor::zeros(c, s, DType::F32).unwrap());
            let (m, v) = (
                Tensor::zeros(c, s, DType::F32).unwrap(),
                Tensor::zeros(c, s, DType::F32).unwrap(),
            );
            let hyper = go::hyper_tensor(c).unwrap();
            let prog = c
                .record(|rec| go::adam_update(rec, &p, &g, &m, &v, &hyper, None, &cfg))
                .unwrap();
            let (mut pr, mut mr, mut vr) = (p0.clone(), vec![0f32; n], vec![0f32; n]);
            for step in 1..=STEPS {
                let lr = sched.lr(step - 1) as f32;
                let gv = grad_at(n, step);
                write(c, &g, &gv);
                go::write_hyper(c, &hyper, cfg.hyper(step, lr)).unwrap();
                prog.submit(c);
                r::adam_update(&mut pr, &gv, &mut mr, &mut vr, step, lr, &cfg);
                let name = format!("adam {cfg:?} n {n} step {step}");
                assert_close(&format!("{name} param"), &read(c, &p), &pr, 1e-5, 1e-5);
                assert_close(&format!("{name} exp_avg"), &read(c, &m), &mr, 1e-6, 1e-5);
                assert_close(&format!("{name} exp_avg_sq"), &read(c, &v), &vr, 1e-7, 1e-5);
            }
            assert!(pr.iter().zip(&p0).any(|(a, b)| (a - b).abs() > 1e-3));
        }
    }
}

#[test]
fn hyper_values_hold_the_bias_corrections() {
    let h = go::hyper_values(1, 0.5, 0.9, 0.999);
    assert_eq!(h[0], 0.5);
    assert!(
        (h[1] - 0.1).abs() < 1e-7 && (h[2] - 0.001).abs() < 1e-9,
        "{h:?}"
    );
    let h = go::hyper_values(10, 0.5, 0.9, 0.999);
    assert!((h[1] as f64 - (1.0 - 0.9f64.powi(10))).abs() < 1e-7);
    assert!((h[2] as f64 - (1.0 - 0.999f64.powi(10))).abs() < 1e-8);
    assert_eq!(h[3], 10.0);
    // The attributes' bias corrections use their (f32) betas, as the executor does.
    let a = AdamAttrs::default();
    assert_eq!(
        a.hyper(10, 0.5),
        go::hyper_values(10, 0.5, 0.9f32 as f64, 0.999f32 as f64)
    );
}

#[test]
fn optim_errors_name_the_op() {
    let Some(c) = ctx() else { return };
    let z = |n: usize| Tensor::zeros(c, Shape::vector(n), DType::F32).unwrap();
    let (p, g, g2, hyper) = (z(10), z(10), z(11), go::hyper_tensor(c).unwrap());
    let mut rec = wunet::gpu::Recorder::new(c);
    let e = go::sgd_update(
        &mut rec,
        &p,
        &g2,
        None,
        &hyper,
        None,
        &SgdAttrs {
            momentum: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            amp: false,
        },
    );
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("sgd: parameter 10 and gradient 11 must have the same shape"));
    let nnunet = SgdAttrs {
        momentum: 0.99,
        weight_decay: 3e-5,
        nesterov: true,
        amp: false,
    };
    let e = go::sgd_update(&mut rec, &p, &g, None, &hyper, None, &nnunet);
    assert!(e.unwrap_err().to_string().contains("momentum buffer"));
    let e = go::adam_update(
        &mut rec,
        &p,
        &g,
        &z(10),
        &z(10),
        &z(3),
        None,
        &AdamAttrs {
            decoupled: true,
            ..AdamAttrs::default()
        },
    );
    assert!(e.unwrap_err().to_string().contains("adamw: hyper"));
    let e = go::adam_update(
        &mut rec,
        &p,
        &g,
        &p,
        &z(10),
        &hyper,
        None,
        &AdamAttrs::default(),
    );
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("must not share storage"));
    assert!(go::write_hyper(c, &z(3), [0.0; 4]).is_err());
    assert!(rec.program.is_empty());
}
