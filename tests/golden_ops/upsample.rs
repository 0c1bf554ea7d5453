//! Golden adapters: `upsample_nearest2d/3d`, `upsample_bilinear2d`,
//! `upsample_trilinear3d` (y; grad x; integer `scale_factor`,
//! `align_corners = false`), via `wunet::ops::upsample`. Every tensor is an
//! activation (F16 in the mixed run).

use super::harness::{spatial3, AdapterResult, Case, Outcome, Produced};
use wunet::graph::ops::UpsampleMode;
use wunet::ops::upsample as up;

pub fn upsample(case: &Case) -> AdapterResult {
    let mode = match case.attr_str("mode")?.as_str() {
        "nearest" => UpsampleMode::Nearest,
        "bilinear" | "trilinear" | "linear" => UpsampleMode::Linear,
        m => {
            return Err(Outcome::Skip(format!(
                "upsample mode {m:?} is not supported"
            )))
        }
    };
    if mode == UpsampleMode::Linear
        && case.spec.attrs.get("align_corners").is_some()
        && case.attr_bool("align_corners")?
    {
        return Err(Outcome::Skip(
            "align_corners = true is not supported".into(),
        ));
    }
    let f = case.attr_usizes("scale_factor")?;
    let x = case.upload_act("x")?;
    let nd = x.shape.logical().len().saturating_sub(2);
    if f.len() != nd {
        return Err(Outcome::Error(format!(
            "attrs.scale_factor must have {nd} entries"
        )));
    }
    let factor = spatial3(&f, 1);
    let g = case.upload_grad_act("y")?;
    let (y, dx) = case.ctx.run(|rec| {
        let y = up::upsample(rec, &x, factor, mode)?;
        let dx = up::upsample_grad(rec, &g, factor, mode, x.shape)?;
        Ok((y, dx))
    })?;
    let mut out = Produced::default();
    out.outputs.insert("y".into(), case.read_act(&y)?);
    out.grads.insert("x".into(), case.read_act(&dx)?);
    Ok(out)
}
