// upsample.wgsl: integer-factor upsampling, 2D and 3D (2D runs with D = f_d = 1).
// Output size out = in * f per axis; nc = n*C + c indexes the independent planes.
//
//   nearest_fwd  y[nc, o] = x[nc, o / f]  (per axis; PyTorch legacy 'nearest': floor(o*in/out))
//   nearest_bwd  dx[nc, i] = sum of dy[nc, o] over o in [i*f, (i+1)*f) per axis
//   linear_fwd   bilinear (2D) / trilinear (3D), align_corners = false, per axis
//                (PyTorch area_pixel_compute_source_index):
//                  src = max((o + 0.5)/f - 0.5, 0), i0 = floor(src), i1 = min(i0+1, in-1),
//                  l = src - i0; weights (1-l) at i0 and l at i1, product over the axes.
//   linear_bwd   dx[nc, i] = sum over the outputs o reading i of dy[nc, o] * weight(o, i),
//                with the weights recomputed exactly as in linear_fwd. Per axis the outputs
//                reading i lie in [f*i - floor(f/2), f*i + floor((3f-2)/2)] (clipped to the
//                output), which also covers the clamped borders.
// Thread mapping: one element per invocation (outputs for *_fwd, inputs for *_bwd), 256 per
// workgroup, grid linearised (id = wid.x + wid.y * nwg.x); no atomics (backwards gather).
// Integer divisions by per-dispatch constants use multiply-high magics from the params
// (`fdiv` of precision/fastdiv.wgsl, src/ops/fastdiv.rs): dec_* for the sizes of the decoded
// tensor, div_f* for the factors.
// Bindings: 0 params (uniform), 1 src (read: x or dy), 2 dst (read_write: y or dx); both are
//           activations (`act`: f32, or f16 storage in mixed precision). Interpolation and the
//           backward sums are in f32 (loads widen, stores narrow); nearest_fwd copies `act`.

struct Params {
    nc: u32, total: u32, aux0: u32, aux1: u32,
    in_d: u32, in_h: u32, in_w: u32, in_sp: u32,
    out_d: u32, out_h: u32, out_w: u32, out_sp: u32,
    f_d: u32, f_h: u32, f_w: u32, aux2: u32,
    dec_w: vec2<u32>, dec_h: vec2<u32>,
    dec_d: vec2<u32>, div_fd: vec2<u32>,
    div_fh: vec2<u32>, div_fw: vec2<u32>,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<act>;
@group(0) @binding(2) var<storage, read_write> dst: array<act>;

struct Pos {
    nc: u32,
    d: u32,
    h: u32,
    w: u32,
}

// Element e of a tensor of spatial size (dd, hh, ww), whose magics are P.dec_*.
fn decode(e: u32, dd: u32, hh: u32, ww: u32) -> Pos {
    var p: Pos;
    let t = fdiv(e, P.dec_w);
    p.w = e - t * ww;
    let t2 = fdiv(t, P.dec_h);
    p.h = t - t2 * hh;
    p.nc = fdiv(t2, P.dec_d);
    p.d = t2 - p.nc * dd;
    return p;
}

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@compute @workgroup_size(256)
fn nearest_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid);
    if (e >= P.total) {
        return;
    }
    let o = decode(e, P.out_d, P.out_h, P.out_w);
    let d = fdiv(o.d, P.div_fd);
    let h = fdiv(o.h, P.div_fh);
    let w = fdiv(o.w, P.div_fw);
    dst[e] = src[o.nc * P.in_sp + (d * P.in_h + h) * P.in_w + w];
}

@compute @workgroup_size(256)
fn nearest_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid);
    if (e >= P.total) {
        return;
    }
    let i = decode(e, P.in_d, P.in_h, P.in_w);
    let base = i.nc * P.out_sp;
    var acc = 0.0;
    for (var d = i.d * P.f_d; d < (i.d + 1u) * P.f_d; d++) {
        for (var h = i.h * P.f_h; h < (i.h + 1u) * P.f_h; h++) {
            let row = base + (d * P.out_h + h) * P.out_w;
            for (var w = i.w * P.f_w; w < (i.w + 1u) * P.f_w; w++) {
                acc += f32(src[row + w]);
            }
        }
    }
    dst[e] = act(acc);
}

// Source taps of output o on one axis: (i0, i1, lambda).
struct Taps {
    i0: u32,
    i1: u32,
    l: f32,
}

fn taps(o: u32, f: u32, n: u32) -> Taps {
    var t: Taps;
    let s = max((f32(o) + 0.5) / f32(f) - 0.5, 0.0);
    t.i0 = min(u32(s), n - 1u);
    t.i1 = min(t.i0 + 1u, n - 1u);
    t.l = s - f32(t.i0);
    return t;
}

// Bilinear value of plane `base` (an offset of a D slice) at taps th, tw.
fn bilinear(base: u32, th: Taps, tw: Taps) -> f32 {
    let r0 = base + th.i0 * P.in_w;
    let r1 = base + th.i1 * P.in_w;
    let top = (1.0 - tw.l) * f32(src[r0 + tw.i0]) + tw.l * f32(src[r0 + tw.i1]);
    let bot = (1.0 - tw.l) * f32(src[r1 + tw.i0]) + tw.l * f32(src[r1 + tw.i1]);
    return (1.0 - th.l) * top + th.l * bot;
}

@compute @workgroup_size(256)
fn linear_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid);
    if (e >= P.total) {
        return;
    }
    let o = decode(e, P.out_d, P.out_h, P.out_w);
    let th = taps(o.h, P.f_h, P.in_h);
    let tw = taps(o.w, P.f_w, P.in_w);
    let plane = P.in_h * P.in_w;
    let base = o.nc * P.in_sp;
    if (P.in_d == 1u) {
        dst[e] = act(bilinear(base, th, tw));
        return;
    }
    let td = taps(o.d, P.f_d, P.in_d);
    let v0 = bilinear(base + td.i0 * plane, th, tw);
    let v1 = bilinear(base + td.i1 * plane, th, tw);
    dst[e] = act((1.0 - td.l) * v0 + td.l * v1);
}

// Weight of input i in output o on one axis.
fn weight(o: u32, i: u32, f: u32, n: u32) -> f32 {
    let t = taps(o, f, n);
    var w = 0.0;
    if (t.i0 == i) {
        w += 1.0 - t.l;
    }
    if (t.i1 == i) {
        w += t.l;
    }
    return w;
}

// Outputs [lo, hi) that can read input i on one axis.
fn readers(i: u32, f: u32, n_out: u32) -> vec2<u32> {
    let c = f * i;
    let hf = f / 2u;
    var lo = 0u;
    if (c > hf) {
        lo = c - hf;
    }
    let hi = min(c + (3u * f - 2u) / 2u + 1u, n_out);
    return vec2<u32>(lo, hi);
}

@compute @workgroup_size(256)
fn linear_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid);
    if (e >= P.total) {
        return;
    }
    let i = decode(e, P.in_d, P.in_h, P.in_w);
    let rd = readers(i.d, P.f_d, P.out_d);
    let rh = readers(i.h, P.f_h, P.out_h);
    let rw = readers(i.w, P.f_w, P.out_w);
    let base = i.nc * P.out_sp;
    var acc = 0.0;
    for (var d = rd.x; d < rd.y; d++) {
        let wd = weight(d, i.d, P.f_d, P.in_d);
        if (wd == 0.0) {
            continue;
        }
        for (var h = rh.x; h < rh.y; h++) {
            let wh = weight(h, i.h, P.f_h, P.in_h);
            if (wh == 0.0) {
                continue;
            }
            let row = base + (d * P.out_h + h) * P.out_w;
            var racc = 0.0;
            for (var w = rw.x; w < rw.y; w++) {
                racc += weight(w, i.w, P.f_w, P.in_w) * f32(src[row + w]);
            }
            acc += wd * wh * racc;
        }
    }
    dst[e] = act(acc);
}
