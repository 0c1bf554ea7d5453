//! Golden adapters: `concat` (2 or 3 inputs along channels; grads via split),
//! `center_crop` (at `attrs.offset`), `pad2d` / `pad3d` (zero, reflect), via
//! `wunet::ops::tensor`. Every tensor is an activation (F16 in the mixed run).

use super::harness::{spatial3, AdapterResult, Case, Outcome, Produced};
use wunet::graph::ops::PadMode;
use wunet::ops::tensor as t;

/// `concat` along axis 1 of `x0`, `x1`, ... (`attrs.num_inputs`).
pub fn concat(case: &Case) -> AdapterResult {
    let axis = case.attr_usize("axis")?;
    if axis != 1 {
        return Err(Outcome::Skip(format!(
            "concat along axis {axis} (only channels, axis 1)"
        )));
    }
    let k = case.attr_usize("num_inputs")?;
    let names: Vec<String> = (0..k).map(|i| format!("x{i}")).collect();
    let xs = names
        .iter()
        .map(|n| case.upload_act(n))
        .collect::<Result<Vec<_>, _>>()?;
    let sizes: Vec<usize> = xs.iter().map(|x| x.shape.c()).collect();
    let g = case.upload_grad_act("y")?;
    let (y, dxs) = case.ctx.run(|rec| {
        let refs: Vec<&wunet::Tensor> = xs.iter().collect();
        let y = t::concat_channels(rec, &refs)?;
        let dxs = t::split_channels(rec, &g, &sizes)?;
        Ok((y, dxs))
    })?;
    let mut out = Produced::default();
    out.outputs.insert("y".into(), case.read_act(&y)?);
    for (n, dx) in names.iter().zip(&dxs) {
        out.grads.insert(n.clone(), case.read_act(dx)?);
    }
    Ok(out)
}

/// `center_crop` to `attrs.size` at `attrs.offset` (the stored floor offset).
pub fn center_crop(case: &Case) -> AdapterResult {
    let size = case.attr_usizes("size")?;
    let off = case.attr_usizes("offset")?;
    let x = case.upload_act("x")?;
    let nd = x.shape.logical().len().saturating_sub(2);
    if size.len() != nd || off.len() != nd {
        return Err(Outcome::Error(format!(
            "attrs size/offset must have {nd} entries"
        )));
    }
    let (size, off) = (spatial3(&size, 1), spatial3(&off, 0));
    let g = case.upload_grad_act("y")?;
    let (y, dx) = case.ctx.run(|rec| {
        let y = t::crop(rec, &x, off, size)?;
        let dx = t::crop_grad(rec, &g, off, x.shape)?;
        Ok((y, dx))
    })?;
    let mut out = Produced::default();
    out.outputs.insert("y".into(), case.read_act(&y)?);
    out.grads.insert("x".into(), case.read_act(&dx)?);
    Ok(out)
}

/// `pad2d` / `pad3d`: `attrs.pad` is one `[before, after]` pair per spatial axis.
pub fn pad(case: &Case) -> AdapterResult {
    let mode = match case.attr_str("mode")?.as_str() {
        "zero" | "constant" => PadMode::Zero,
        "reflect" => PadMode::Reflect,
        m => return Err(Outcome::Skip(format!("pad mode {m:?} is not supported"))),
    };
    if mode == PadMode::Zero && case.spec.attrs.get("value").is_some() {
        let v = case.attr_f64("value")?;
        if v != 0.0 {
            return Err(Outcome::Skip(format!("constant padding with {v} (only 0)")));
        }
    }
    let pairs = case
        .spec
        .attrs
        .get("pad")
        .and_then(|v| v.as_array())
        .ok_or_else(|| Outcome::Error("attrs.pad is not a list".into()))?;
    let mut lo = Vec::new();
    let mut hi = Vec::new();
    for p in pairs {
        let pair: Option<Vec<usize>> = p
            .as_array()
            .and_then(|a| a.iter().map(|v| v.as_u64().map(|u| u as usize)).collect());
        match pair.as_deref() {
            Some([a, b]) => {
                lo.push(*a);
                hi.push(*b);
            }
            _ => return Err(Outcome::Error(format!("attrs.pad entry {p} is not a pair"))),
        }
    }
    let x = case.upload_act("x")?;
    let nd = x.shape.logical().len().saturating_sub(2);
    if lo.len() != nd {
        return Err(Outcome::Error(format!("attrs.pad must have {nd} pairs")));
    }
    let (lo, hi) = (spatial3(&lo, 0), spatial3(&hi, 0));
    let g = case.upload_grad_act("y")?;
    let (y, dx) = case.ctx.run(|rec| {
        let y = t::pad(rec, &x, lo, hi, mode)?;
        let dx = t::pad_grad(rec, &g, lo, hi, mode, x.shape)?;
        Ok((y, dx))
    })?;
    let mut out = Produced::default();
    out.outputs.insert("y".into(), case.read_act(&y)?);
    out.grads.insert("x".into(), case.read_act(&dx)?);
    Ok(out)
}
