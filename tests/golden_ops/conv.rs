//! Golden adapters: `conv2d`, `conv3d`, `conv_transpose2d`, `conv_transpose3d`
//! (forward `y`; gradients of `x`, `weight`, `bias`), via `wunet::ops::conv`.
//! Activations `x`, `grad_y`, `y`, `grad x` (F16 in the mixed run); `weight`,
//! `bias` and their gradients F32.

use super::harness::{AdapterResult, Case, Outcome, Produced};
use wunet::ops::conv;
use wunet::Window;

/// The window of a (transposed) convolution case; `groups != 1` is skipped.
fn window(case: &Case, transposed: bool, kernel: &[usize]) -> Result<Window, Outcome> {
    let groups = case.attr_usize("groups")?;
    if groups != 1 {
        return Err(Outcome::Skip(format!(
            "groups = {groups} not supported (the engine's convolutions have groups = 1)"
        )));
    }
    let s = case.attr_usizes("stride")?;
    let p = case.attr_usizes("padding")?;
    let d = case.attr_usizes("dilation")?;
    let nd = kernel.len();
    if s.len() != nd || p.len() != nd || d.len() != nd {
        return Err(Outcome::Error(format!(
            "attrs stride/padding/dilation must have {nd} entries"
        )));
    }
    let win = Window::new(kernel, &s, &p, &d);
    if transposed {
        let op = case.attr_usizes("output_padding")?;
        if op.len() != nd {
            return Err(Outcome::Error(format!(
                "attrs output_padding must have {nd} entries"
            )));
        }
        return Ok(win.with_output_padding(&op));
    }
    Ok(win)
}

/// `conv2d` / `conv3d`: inputs x, weight (OIHW), bias (if attrs.bias); grad_output y.
pub fn conv(case: &Case) -> AdapterResult {
    run(case, false)
}

/// `conv_transpose2d` / `conv_transpose3d`: weight is IOHW (`C_in, C_out, k..`).
pub fn conv_transpose(case: &Case) -> AdapterResult {
    run(case, true)
}

fn run(case: &Case, transposed: bool) -> AdapterResult {
    let x = case.upload_act("x")?;
    let w = case.upload_f32("weight")?;
    let ws = &case.spec.inputs["weight"].shape;
    let win = window(case, transposed, ws.get(2..).unwrap_or(&[]))?;
    let has_bias = case.attr_bool("bias")?;
    let b = if has_bias {
        Some(case.upload_f32("bias")?)
    } else {
        None
    };
    let g = case.upload_grad_act("y")?;
    let (y, dx, dw, db) = case.ctx.run(|rec| {
        let (y, dx, dw) = if transposed {
            let y = conv::conv_transpose(rec, &x, &w, b.as_ref(), &win)?;
            let dx = conv::conv_transpose_grad_input(rec, &g, &w, &win, x.shape)?;
            let dw = conv::conv_transpose_grad_weight(rec, &x, &g, &win, w.shape)?;
            (y, dx, dw)
        } else {
            let y = conv::conv(rec, &x, &w, b.as_ref(), &win)?;
            let dx = conv::conv_grad_input(rec, &g, &w, &win, x.shape)?;
            let dw = conv::conv_grad_weight(rec, &x, &g, &win, w.shape)?;
            (y, dx, dw)
        };
        let db = if has_bias {
            Some(conv::bias_grad(rec, &g)?)
        } else {
            None
        };
        Ok((y, dx, dw, db))
    })?;
    let mut out = Produced::default();
    out.outputs.insert("y".into(), case.read_act(&y)?);
    out.grads.insert("x".into(), case.read_act(&dx)?);
    out.grads.insert("weight".into(), case.read_f32(&dw)?);
    if let Some(db) = db {
        out.grads.insert("bias".into(), case.read_f32(&db)?);
    }
    Ok(out)
}
