// optim.wgsl: fused optimiser updates over one parameter tensor (PyTorch semantics).
//
// Values that change every step come from the `hyper` storage tensor, which the host rewrites
// before each submission (a recorded step is replayed unchanged):
//   hyper = [lr, 1 - beta1^t, 1 - beta2^t, t]   (t = 1 for the first update)
// Static hyperparameters are in the uniform params (1 - beta computed on the host in f64).
// sgd:  d = g + wd*p;  with momentum (flags & 2): buf = momentum*buf + d,
//       upd = (flags & 1, Nesterov) ? d + momentum*buf : buf;  without: upd = d;  p -= lr*upd.
//       (buf starts at 0, which makes the first step buf = d as in PyTorch.)
// adam: AdamW (flags & 4): p *= 1 - lr*wd; Adam: g += wd*p;
//       m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g^2;
//       p -= (lr/(1-beta1^t)) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
// amp (flags & 8, mixed precision): the gradient is multiplied by 1/scale = scaler[1] first,
//       and nothing is written when flag[0] != 0 (a gradient held an Inf or NaN this step; see
//       amp.wgsl). Without it flag and scaler are not read.
// Thread mapping: 256 invocations per workgroup, 4 elements each (i = id*1024 + lid + 256*j),
// consecutive invocations on consecutive elements; grid ceil(n/1024) linearised over x and y.
// Bindings: 0 params, 1 param (read_write), 2 grad (read), 3 s1 (read_write: SGD momentum
//           buffer / Adam m), 4 s2 (read_write: Adam v; unused by sgd), 5 hyper (read, 4 f32),
//           6 flag (read, u32 [1]), 7 scaler (read, f32 [4]).

struct Params {
    n: u32, flags: u32, beta1: f32, beta2: f32,
    one_minus_beta1: f32, one_minus_beta2: f32, eps: f32, weight_decay: f32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> s1: array<f32>;
@group(0) @binding(4) var<storage, read_write> s2: array<f32>;
@group(0) @binding(5) var<storage, read> hyper: array<f32>;
@group(0) @binding(6) var<storage, read> flag: array<u32>;
@group(0) @binding(7) var<storage, read> scaler: array<f32>;

const AMP: u32 = 8u;

// 1/scale under amp, else 1; false when this step is skipped (amp and an overflow).
fn grad_scale() -> vec2<f32> {
    if ((P.flags & AMP) == 0u) {
        return vec2<f32>(1.0, 1.0);
    }
    return vec2<f32>(scaler[1], select(1.0, 0.0, flag[0] != 0u));
}

fn load_grad(i: u32, gs: f32) -> f32 {
    if ((P.flags & AMP) == 0u) {
        return grad[i];
    }
    return grad[i] * gs;
}

@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let base = (wid.x + wid.y * nwg.x) * 1024u + lid;
    let gsk = grad_scale();
    if (gsk.y == 0.0) {
        return;
    }
    let lr = hyper[0];
    let mo = P.beta1;
    for (var j = 0u; j < 4u; j++) {
        let i = base + 256u * j;
        if (i >= P.n) {
            return;
        }
        let p = param[i];
        let d = fma(P.weight_decay, p, load_grad(i, gsk.x));
        var upd = d;
        if ((P.flags & 2u) != 0u) {
            let b = fma(mo, s1[i], d);
            s1[i] = b;
            upd = b;
            if ((P.flags & 1u) != 0u) {
                upd = fma(mo, b, d);
            }
        }
        param[i] = p - lr * upd;
    }
}

@compute @workgroup_size(256)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let base = (wid.x + wid.y * nwg.x) * 1024u + lid;
    let gsk = grad_scale();
    if (gsk.y == 0.0) {
        return;
    }
    let lr = hyper[0];
    let step_size = lr / hyper[1];
    let bc2_sqrt = sqrt(hyper[2]);
    let adamw = (P.flags & 4u) != 0u;
    for (var j = 0u; j < 4u; j++) {
        let i = base + 256u * j;
        if (i >= P.n) {
            return;
        }
        var p = param[i];
        var g = load_grad(i, gsk.x);
        if (adamw) {
            p *= 1.0 - lr * P.weight_decay;
        } else {
            g = fma(P.weight_decay, p, g);
        }
        let m = fma(P.beta1, s1[i], P.one_minus_beta1 * g);
        let v = fma(P.beta2, s2[i], P.one_minus_beta2 * g * g);
        s1[i] = m;
        s2[i] = v;
        param[i] = p - step_size * m / (sqrt(v) / bc2_sqrt + P.eps);
    }
}
