//! Golden adapters: `max_pool2d/3d` (y, indices, grad x), `max_unpool2d/3d`
//! (y, grad x; the unpooled size from `attrs.output_size`), `avg_pool2d/3d`
//! (y, grad x, `count_include_pad`), via `wunet::ops::pool`. `x`, `grad_y`,
//! `y`, `grad x` are activations (F16 in the mixed run); indices U32.

use super::harness::{spatial3, AdapterResult, Case, Outcome, Produced};
use wunet::ops::pool;
use wunet::Window;

/// The pooling window of a case (`kernel`, `stride`, `padding`; dilation 1,
/// floor mode; anything else is reported as unsupported).
fn window(case: &Case, nd: usize) -> Result<Window, Outcome> {
    let k = case.attr_usizes("kernel")?;
    let s = case.attr_usizes("stride")?;
    let p = case.attr_usizes("padding")?;
    if k.len() != nd || s.len() != nd || p.len() != nd {
        return Err(Outcome::Error(format!(
            "attrs kernel/stride/padding must have {nd} entries"
        )));
    }
    if case.spec.attrs.get("dilation").is_some() {
        let d = case.attr_usizes("dilation")?;
        if d.iter().any(|&v| v != 1) {
            return Err(Outcome::Skip(format!("dilation {d:?} (only 1)")));
        }
    }
    if case.spec.attrs.get("ceil_mode").is_some() && case.attr_bool("ceil_mode")? {
        return Err(Outcome::Skip("ceil_mode = true (only floor mode)".into()));
    }
    Ok(Window::new(&k, &s, &p, &vec![1; nd]))
}

/// Spatial dims of the case's input `x` (2 or 3).
fn spatial_dims(case: &Case) -> Result<usize, Outcome> {
    let xs = &case
        .spec
        .inputs
        .get("x")
        .ok_or_else(|| Outcome::Error("case has no input 'x'".into()))?
        .shape;
    match xs.len() {
        4 | 5 => Ok(xs.len() - 2),
        r => Err(Outcome::Error(format!(
            "input x has rank {r} (want 4 or 5)"
        ))),
    }
}

/// `max_pool2d` / `max_pool3d`: y, indices (u32 -> int64), grad x.
pub fn max_pool(case: &Case) -> AdapterResult {
    let win = window(case, spatial_dims(case)?)?;
    let x = case.upload_act("x")?;
    let g = case.upload_grad_act("y")?;
    let (y, idx, dx) = case.ctx.run(|rec| {
        let (y, idx) = pool::max_pool(rec, &x, &win)?;
        let dx = pool::max_pool_grad(rec, &g, &idx, &win, x.shape)?;
        Ok((y, idx, dx))
    })?;
    let mut out = Produced::default();
    out.outputs.insert("y".into(), case.read_act(&y)?);
    out.outputs.insert("indices".into(), case.read_int(&idx)?);
    out.grads.insert("x".into(), case.read_act(&dx)?);
    Ok(out)
}

/// `max_unpool2d` / `max_unpool3d`: inputs x (pooled values) and indices (int64
/// -> u32); the output plane is `attrs.output_size` (always given in these cases).
pub fn max_unpool(case: &Case) -> AdapterResult {
    let nd = spatial_dims(case)?;
    let win = window(case, nd)?;
    let x = case.upload_act("x")?;
    let idx = case.upload_indices("indices")?;
    let size = if case
        .spec
        .attrs
        .get("output_size")
        .is_some_and(|v| !v.is_null())
    {
        let s = case.attr_usizes("output_size")?;
        if s.len() != nd {
            return Err(Outcome::Error(format!(
                "attrs.output_size must have {nd} entries"
            )));
        }
        spatial3(&s, 1)
    } else {
        win.unpool_out(x.shape.spatial())
            .ok_or_else(|| Outcome::Error("no default unpooled size".into()))?
    };
    let g = case.upload_grad_act("y")?;
    let (y, dx) = case.ctx.run(|rec| {
        let y = pool::max_unpool(rec, &x, &idx, size)?;
        let dx = pool::max_unpool_grad(rec, &g, &idx)?;
        Ok((y, dx))
    })?;
    let mut out = Produced::default();
    out.outputs.insert("y".into(), case.read_act(&y)?);
    out.grads.insert("x".into(), case.read_act(&dx)?);
    Ok(out)
}

/// `avg_pool2d` / `avg_pool3d`: y, grad x (`count_include_pad`; no divisor override).
pub fn avg_pool(case: &Case) -> AdapterResult {
    let win = window(case, spatial_dims(case)?)?;
    if case
        .spec
        .attrs
        .get("divisor_override")
        .is_some_and(|v| !v.is_null())
    {
        return Err(Outcome::Skip("divisor_override is not supported".into()));
    }
    let include = case.attr_bool("count_include_pad")?;
    let x = case.upload_act("x")?;
    let g = case.upload_grad_act("y")?;
    let (y, dx) = case.ctx.run(|rec| {
        let y = pool::avg_pool(rec, &x, &win, include)?;
        let dx = pool::avg_pool_grad(rec, &g, &win, include, x.shape)?;
        Ok((y, dx))
    })?;
    let mut out = Produced::default();
    out.outputs.insert("y".into(), case.read_act(&y)?);
    out.grads.insert("x".into(), case.read_act(&dx)?);
    Ok(out)
}
