//! Shape and dtype inference for every op: one function, one match.
//!
//! Errors are plain strings naming the shapes involved; the graph prefixes
//! the node and the op (see `Graph::add_node`).

use super::ops::{Op, PadMode};
use crate::shape::{
    conv_weight_shape, crop_fits, pad_out, unpad_out, upsample_out, DType, Shape, Window,
};

/// A value's static type: shape and element type.
pub type TypeOf = (Shape, DType);

type R<T> = std::result::Result<T, String>;

fn f32_in(what: &str, t: &TypeOf) -> R<Shape> {
    if t.1 != DType::F32 {
        return Err(format!("{what} {} has dtype {:?}, expected F32", t.0, t.1));
    }
    Ok(t.0)
}

fn typed_in(what: &str, t: &TypeOf, dt: DType) -> R<Shape> {
    if t.1 != dt {
        return Err(format!(
            "{what} {} has dtype {:?}, expected {dt:?}",
            t.0, t.1
        ));
    }
    Ok(t.0)
}

/// An activation input (rank 4 or 5, f32).
fn act_in(what: &str, t: &TypeOf) -> R<Shape> {
    let s = f32_in(what, t)?;
    if s.rank < 4 {
        return Err(format!("{what} {s} must be NxCxHxW or NxCxDxHxW"));
    }
    Ok(s)
}

fn same(what_a: &str, a: &Shape, what_b: &str, b: &Shape) -> R<()> {
    if a.dims != b.dims {
        return Err(format!(
            "{what_a} {a} and {what_b} {b} must have the same shape"
        ));
    }
    Ok(())
}

fn vector_in(what: &str, t: &TypeOf, len: usize, x: &Shape) -> R<()> {
    let s = f32_in(what, t)?;
    if s.dims != Shape::vector(len).dims {
        return Err(format!(
            "{what} {s} does not fit input {x} (must be [{len}])"
        ));
    }
    Ok(())
}

fn matrix(rows: usize, cols: usize) -> Shape {
    Shape {
        dims: [1, 1, 1, rows, cols],
        rank: 2,
    }
}

fn stats_in(what: &str, t: &TypeOf, want: Shape, x: &Shape) -> R<()> {
    let s = f32_in(what, t)?;
    if s.dims != want.dims {
        return Err(format!(
            "{what} {s} does not fit input {x} (must be {want})"
        ));
    }
    Ok(())
}

/// 2D inputs need windows that do nothing along D; sizes must be positive.
fn check_window(x: &Shape, win: &Window) -> R<()> {
    if !x.is_3d()
        && (win.kernel[0] != 1 || win.stride[0] != 1 || win.pad[0] != 0 || win.dilation[0] != 1)
    {
        return Err(format!("a 2D input {x} needs a 2D window, got {win:?}"));
    }
    if win.stride.contains(&0) || win.dilation.contains(&0) || win.kernel.contains(&0) {
        return Err(format!(
            "kernel, stride and dilation must be positive: {win:?}"
        ));
    }
    Ok(())
}

fn check_axes_2d(x: &Shape, what: &str, v: [usize; 3], neutral: usize) -> R<()> {
    if !x.is_3d() && v[0] != neutral {
        return Err(format!(
            "a 2D input {x} cannot have {what} {} along D",
            v[0]
        ));
    }
    Ok(())
}

fn conv_out(x: &Shape, w: &Shape, win: &Window) -> R<Shape> {
    check_window(x, win)?;
    let want = conv_weight_shape(w.dims[0], x.c(), win, x.is_3d());
    if w.dims != want.dims {
        return Err(format!(
            "input {x} and weight {w} do not fit (weight must be {want})"
        ));
    }
    let sp = win
        .conv_out(x.spatial())
        .ok_or_else(|| format!("input {x} is smaller than the window of weight {w}"))?;
    Ok(x.with_c(w.dims[0]).with_spatial(sp))
}

fn conv_transpose_out(x: &Shape, w: &Shape, win: &Window) -> R<Shape> {
    check_window(x, win)?;
    let want = conv_weight_shape(x.c(), w.dims[1], win, x.is_3d());
    if w.dims != want.dims {
        return Err(format!(
            "input {x} and weight {w} do not fit (weight must be {want})"
        ));
    }
    let sp = win.conv_transpose_out(x.spatial()).ok_or_else(|| {
        format!("input {x}, weight {w}: no positive output size, or output_padding >= stride")
    })?;
    Ok(x.with_c(w.dims[1]).with_spatial(sp))
}

fn pool_out(x: &Shape, win: &Window) -> R<Shape> {
    check_window(x, win)?;
    let sp = win
        .conv_out(x.spatial())
        .ok_or_else(|| format!("input {x} is smaller than the pooling window {win:?}"))?;
    Ok(x.with_spatial(sp))
}

/// The forward input `input` must map to `dy` under the window.
fn check_grad_of(input: &Shape, dy: &Shape, out_c: usize, win: &Window) -> R<()> {
    check_window(input, win)?;
    let sp = win.conv_out(input.spatial());
    if sp != Some(dy.spatial()) || input.n() != dy.n() || out_c != dy.c() {
        return Err(format!(
            "gradient {dy} does not match forward input {input} under window {win:?}"
        ));
    }
    Ok(())
}

impl Op {
    /// Output shapes and dtypes for the given input types (after checking the
    /// count, the dtypes and every shape relation).
    pub fn infer(&self, ins: &[TypeOf]) -> R<Vec<TypeOf>> {
        if !self.num_inputs().accepts(ins.len()) {
            return Err(format!(
                "takes {} inputs, got {}",
                self.num_inputs(),
                ins.len()
            ));
        }
        let f = |s: Shape| (s, DType::F32);
        use Op::*;
        let out = match self {
            Conv(a) => {
                let x = act_in("input", &ins[0])?;
                let w = f32_in("weight", &ins[1])?;
                let y = conv_out(&x, &w, &a.window)?;
                if a.bias {
                    vector_in("bias", &ins[2], y.c(), &x)?;
                }
                vec![f(y)]
            }
            ConvTranspose(a) => {
                let x = act_in("input", &ins[0])?;
                let w = f32_in("weight", &ins[1])?;
                let y = conv_transpose_out(&x, &w, &a.window)?;
                if a.bias {
                    vector_in("bias", &ins[2], y.c(), &x)?;
                }
                vec![f(y)]
            }
            MaxPool(a) => {
                let y = pool_out(&act_in("input", &ins[0])?, &a.window)?;
                vec![f(y), (y, DType::U32)]
            }
            AvgPool(a) => vec![f(pool_out(&act_in("input", &ins[0])?, &a.window)?)],
            MaxUnpool(a) => {
                let x = act_in("input", &ins[0])?;
                let idx = typed_in("indices", &ins[1], DType::U32)?;
                same("input", &x, "indices", &idx)?;
                check_axes_2d(&x, "output size", a.size, 1)?;
                if a.size.contains(&0) {
                    return Err(format!("output size {:?} must be positive", a.size));
                }
                vec![f(x.with_spatial(a.size))]
            }
            BatchNorm(_) => {
                let x = act_in("input", &ins[0])?;
                for (i, what) in ["gamma", "beta", "running_mean", "running_var"]
                    .iter()
                    .enumerate()
                {
                    vector_in(what, &ins[i + 1], x.c(), &x)?;
                }
                vec![f(x), f(Shape::vector(x.c())), f(Shape::vector(x.c()))]
            }
            InstanceNorm(_) | GroupNorm(_) => {
                let x = act_in("input", &ins[0])?;
                vector_in("gamma", &ins[1], x.c(), &x)?;
                vector_in("beta", &ins[2], x.c(), &x)?;
                let g = self.norm_groups(&x)?;
                vec![f(x), f(matrix(x.n(), g)), f(matrix(x.n(), g))]
            }
            Relu | LeakyRelu(_) | Sigmoid | Scale(_) => vec![f(f32_in("input", &ins[0])?)],
            Dropout(a) | DropoutGrad(a) => {
                if !(0.0..1.0).contains(&a.p) {
                    return Err(format!("dropout probability {} must be in [0, 1)", a.p));
                }
                vec![f(f32_in("input", &ins[0])?)]
            }
            Concat => {
                let x0 = act_in("input 0", &ins[0])?;
                let mut c = 0;
                for (i, t) in ins.iter().enumerate() {
                    let s = act_in("input", t)?;
                    if s.with_c(1) != x0.with_c(1) {
                        return Err(format!(
                            "input 0 {x0} and input {i} {s} differ outside the channel axis"
                        ));
                    }
                    c += s.c();
                }
                vec![f(x0.with_c(c))]
            }
            Split(a) => {
                let x = act_in("input", &ins[0])?;
                if a.sizes.iter().sum::<usize>() != x.c()
                    || a.sizes.contains(&0)
                    || a.sizes.is_empty()
                {
                    return Err(format!(
                        "sizes {:?} do not split the {} channels of input {x}",
                        a.sizes,
                        x.c()
                    ));
                }
                a.sizes.iter().map(|&c| f(x.with_c(c))).collect()
            }
            CenterCrop(a) => {
                let x = act_in("input", &ins[0])?;
                let y = x.with_spatial(a.size);
                if !crop_fits(x.spatial(), a.offset, a.size) {
                    return Err(format!(
                        "crop to {y} at offset {:?} does not fit input {x}",
                        a.offset
                    ));
                }
                vec![f(y)]
            }
            Pad(a) => {
                let x = act_in("input", &ins[0])?;
                check_axes_2d(&x, "padding", a.low, 0)?;
                check_axes_2d(&x, "padding", a.high, 0)?;
                let sp = x.spatial();
                if a.mode == PadMode::Reflect
                    && (0..3).any(|i| a.low[i] >= sp[i] || a.high[i] >= sp[i])
                {
                    return Err(format!(
                        "reflect padding {:?}/{:?} must be smaller than input {x}",
                        a.low, a.high
                    ));
                }
                vec![f(x.with_spatial(pad_out(sp, a.low, a.high)))]
            }
            Add => {
                let a = f32_in("a", &ins[0])?;
                let b = f32_in("b", &ins[1])?;
                same("a", &a, "b", &b)?;
                vec![f(a)]
            }
            Upsample(a) => {
                let x = act_in("input", &ins[0])?;
                check_axes_2d(&x, "factor", a.factor, 1)?;
                let sp = upsample_out(x.spatial(), a.factor)
                    .ok_or_else(|| format!("factor {:?} must be positive", a.factor))?;
                vec![f(x.with_spatial(sp))]
            }
            SoftmaxCrossEntropy(_) | DiceLoss(_) => {
                let x = act_in("logits", &ins[0])?;
                let l = typed_in("labels", &ins[1], DType::I32)?;
                if l.dims != x.with_c(1).dims {
                    return Err(format!(
                        "logits {x} and labels {l} do not fit (labels must be {})",
                        x.with_c(1)
                    ));
                }
                if let SoftmaxCrossEntropy(a) = self {
                    if a.weight_map {
                        same("labels", &l, "weight map", &f32_in("weight map", &ins[2])?)?;
                    }
                    if let Some(cw) = &a.class_weights {
                        if cw.len() != x.c() {
                            return Err(format!(
                                "{} class weights for logits {x} with {} classes",
                                cw.len(),
                                x.c()
                            ));
                        }
                    }
                }
                vec![f(Shape::scalar()), f(x)]
            }
            Zeros(s) => vec![f(*s)],
            ConvGradInput(a) => {
                let dy = act_in("gradient", &ins[0])?;
                let w = f32_in("weight", &ins[1])?;
                let y = conv_out(&a.input, &w, &a.window)?;
                same("gradient", &dy, "forward output", &y)?;
                vec![f(a.input)]
            }
            ConvGradWeight(a) => {
                let x = act_in("input", &ins[0])?;
                let dy = act_in("gradient", &ins[1])?;
                check_grad_of(&x, &dy, dy.c(), &a.window)?;
                vec![f(conv_weight_shape(dy.c(), x.c(), &a.window, x.is_3d()))]
            }
            BiasGrad => vec![f(Shape::vector(act_in("gradient", &ins[0])?.c()))],
            ConvTransposeGradInput(a) => {
                let dy = act_in("gradient", &ins[0])?;
                let w = f32_in("weight", &ins[1])?;
                let wc = conv_weight_shape(w.dims[0], dy.c(), &a.window, dy.is_3d());
                vec![f(conv_out(&dy, &wc, &a.window).map_err(|_| {
                    format!("gradient {dy} and weight {w} do not fit")
                })?)]
            }
            ConvTransposeGradWeight(a) => {
                let x = act_in("input", &ins[0])?;
                let dy = act_in("gradient", &ins[1])?;
                check_window(&x, &a.window)?;
                if a.window.conv_transpose_out(x.spatial()) != Some(dy.spatial()) || x.n() != dy.n()
                {
                    return Err(format!(
                        "gradient {dy} does not match input {x} under window {:?}",
                        a.window
                    ));
                }
                vec![f(conv_weight_shape(x.c(), dy.c(), &a.window, x.is_3d()))]
            }
            MaxPoolGrad(a) => {
                let dy = act_in("gradient", &ins[0])?;
                same(
                    "gradient",
                    &dy,
                    "indices",
                    &typed_in("indices", &ins[1], DType::U32)?,
                )?;
                check_grad_of(&a.input, &dy, a.input.c(), &a.window)?;
                vec![f(a.input)]
            }
            AvgPoolGrad(a) => {
                let dy = act_in("gradient", &ins[0])?;
                check_grad_of(&a.input, &dy, a.input.c(), &a.pool.window)?;
                vec![f(a.input)]
            }
            MaxUnpoolGrad => {
                let dy = act_in("gradient", &ins[0])?;
                let idx = typed_in("indices", &ins[1], DType::U32)?;
                if idx.n() != dy.n() || idx.c() != dy.c() || idx.rank != dy.rank {
                    return Err(format!("gradient {dy} and indices {idx} differ in N or C"));
                }
                vec![f(idx)]
            }
            BatchNormGrad(_) | InstanceNormGrad(_) | GroupNormGrad(_) => {
                let dy = act_in("gradient", &ins[0])?;
                let x = act_in("input", &ins[1])?;
                same("gradient", &dy, "input", &x)?;
                vector_in("gamma", &ins[2], x.c(), &x)?;
                let st = match self {
                    BatchNormGrad(_) => Shape::vector(x.c()),
                    _ => matrix(x.n(), self.norm_groups(&x)?),
                };
                stats_in("saved mean", &ins[3], st, &x)?;
                stats_in("saved invstd", &ins[4], st, &x)?;
                vec![f(x), f(Shape::vector(x.c())), f(Shape::vector(x.c()))]
            }
            ReluGrad | LeakyReluGrad(_) | SigmoidGrad => {
                let dy = f32_in("gradient", &ins[0])?;
                same(
                    "gradient",
                    &dy,
                    "forward value",
                    &f32_in("forward value", &ins[1])?,
                )?;
                vec![f(dy)]
            }
            CenterCropGrad(a) => {
                let dy = act_in("gradient", &ins[0])?;
                let x = dy.with_spatial(a.input);
                if !crop_fits(a.input, a.offset, dy.spatial()) {
                    return Err(format!(
                        "gradient {dy} at offset {:?} does not fit forward input {x}",
                        a.offset
                    ));
                }
                vec![f(x)]
            }
            PadGrad(a) => {
                let dy = act_in("gradient", &ins[0])?;
                let sp = unpad_out(dy.spatial(), a.low, a.high).ok_or_else(|| {
                    format!(
                        "gradient {dy} is smaller than the padding {:?}/{:?}",
                        a.low, a.high
                    )
                })?;
                vec![f(dy.with_spatial(sp))]
            }
            UpsampleGrad(a) => {
                let dy = act_in("gradient", &ins[0])?;
                let sp = dy.spatial();
                if a.factor.contains(&0) || (0..3).any(|i| !sp[i].is_multiple_of(a.factor[i])) {
                    return Err(format!(
                        "gradient {dy} is not a multiple of the factor {:?}",
                        a.factor
                    ));
                }
                vec![f(dy.with_spatial([
                    sp[0] / a.factor[0],
                    sp[1] / a.factor[1],
                    sp[2] / a.factor[2],
                ]))]
            }
            SgdUpdate(_) | AdamUpdate(_) => {
                let p = f32_in("parameter", &ins[0])?;
                for (i, t) in ins.iter().enumerate().skip(1) {
                    let what = if i == 1 {
                        "gradient"
                    } else {
                        "optimizer state"
                    };
                    same("parameter", &p, what, &f32_in(what, t)?)?;
                }
                vec![]
            }
        };
        debug_assert_eq!(out.len(), self.num_outputs());
        Ok(out)
    }

    /// Statistics groups per sample: C for instance norm, `groups` for group norm.
    fn norm_groups(&self, x: &Shape) -> R<usize> {
        match self {
            Op::GroupNorm(a) | Op::GroupNormGrad(a) => {
                if a.groups == 0 || !x.c().is_multiple_of(a.groups) {
                    return Err(format!(
                        "{} groups do not divide the {} channels of input {x}",
                        a.groups,
                        x.c()
                    ));
                }
                Ok(a.groups)
            }
            _ => Ok(x.c()),
        }
    }
}
