// pool.wgsl: max pooling (with argmax indices), max-unpooling and average pooling,
// forward and backward, 2D and 3D (2D runs with D = kD = 1). Floor mode, dilation 1,
// pad <= kernel/2 per axis (checked on the host, so every window holds a real element).
//
// Planes: the N*C planes are independent; `nc` below is n*C + c, S_in / S_out the spatial sizes.
// Window of output (od, oh, ow) on axis a: start = o*s - p, taps start..start+k clipped to
// 0..in (taps in the padding are skipped: -inf for max, 0 for average).
//
//   max_fwd     y[nc, o] = max over the window of x[nc, i]; indices[nc, o] = (id*H + ih)*W + iw of
//               the FIRST maximum in row-major scan order (update only when v > max).
//               One invocation per output element.
//   max_bwd     dx[nc, i] = sum of dy[nc, o] over the windows o covering i with indices[nc, o] == i.
//               One invocation per INPUT element (a gather: deterministic, no atomics; handles
//               overlapping windows such as k3 s2).
//   unpool_fwd  y[nc, indices[nc, i]] = x[nc, i] (y zero-filled beforehand by the op). One
//               invocation per input element (a scatter). Indices outside the output are skipped;
//               duplicate indices (only possible with overlapping windows) leave an unspecified
//               winner, as in PyTorch. With non-overlapping windows every index is unique.
//   unpool_bwd  dx[nc, i] = dy[nc, indices[nc, i]] (0 for an index outside dy). One per input.
//   avg_fwd     y[nc, o] = sum of the window's real taps / divisor, divisor = kD*kH*kW when
//               flags & 1 (count_include_pad) else the number of real taps. One per output.
//   avg_bwd     dx[nc, i] = sum over windows o covering i of dy[nc, o] / divisor(o). One per input.
//
// Thread mapping: 256 invocations per workgroup, one element each, grid linearised
// (id = wid.x + wid.y * nwg.x). Index decoding uses no divide instruction: every division is by
// a per-dispatch constant and done as a multiply-high and shift (`fdiv` of
// precision/fastdiv.wgsl, src/ops/fastdiv.rs) with magics from the params (dec_*: the sizes
// of the decoded tensor, div_s*: the strides).
// The backwards visit, per axis, the cnt = ceil(k/s) outputs o = (i+p)/s - t, t < cnt
// (uniform trip counts), skipping those outside the output or whose window misses i.
// Bindings: 0 params (uniform), 1 src act (read: x or dy), 2 dst act (read_write: y or dx),
//           3 idx u32 (read_write: the argmax indices; written by max_fwd, read by the others;
//           avg_* bind a dummy).
//           src and dst are activations (`act`: f32, or f16 storage in mixed precision): loads
//           widen to f32, maxima and sums are taken in f32, stores narrow; copies (unpool) move
//           `act` values unchanged.

struct Params {
    nc: u32, total: u32, flags: u32, aux: u32,
    in_d: u32, in_h: u32, in_w: u32, in_sp: u32,
    out_d: u32, out_h: u32, out_w: u32, out_sp: u32,
    k_d: u32, k_h: u32, k_w: u32, kk: u32,
    s_d: u32, s_h: u32, s_w: u32, aux1: u32,
    p_d: u32, p_h: u32, p_w: u32, aux2: u32,
    // windows covering one input per axis, ceil(k/s); fast-division magics (see fdiv)
    cnt_d: u32, cnt_h: u32, cnt_w: u32, aux3: u32,
    dec_w: vec2<u32>, dec_h: vec2<u32>,
    dec_d: vec2<u32>, dec_sp: vec2<u32>,
    div_sd: vec2<u32>, div_sh: vec2<u32>,
    div_sw: vec2<u32>, aux4: vec2<u32>,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<act>;
@group(0) @binding(2) var<storage, read_write> dst: array<act>;
@group(0) @binding(3) var<storage, read_write> idx: array<u32>;

// (position in plane, plane index nc, d, h, w) of element e of an N*C*D*H*W tensor.
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

// Clipped window [lo, hi) of output o on one axis.
fn window(o: u32, k: u32, s: u32, p: u32, n: u32) -> vec2<u32> {
    let start = i32(o * s) - i32(p);
    let lo = max(start, 0);
    let hi = min(start + i32(k), i32(n));
    return vec2<u32>(u32(lo), u32(max(hi, lo)));
}

// First candidate output (i + p)/s on one axis; candidates are q - t for t < cnt.
fn first_window(i: u32, p: u32, mag: vec2<u32>) -> i32 {
    return i32(fdiv(i + p, mag));
}

// Does output o (a candidate) exist and cover input i on one axis?
fn covers(o: i32, i: u32, k: u32, s: u32, p: u32, n_out: u32) -> bool {
    return o >= 0 && o < i32(n_out) && u32(o) * s + k > i + p;
}

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@compute @workgroup_size(256)
fn max_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid);
    if (e >= P.total) {
        return;
    }
    let o = decode(e, P.out_d, P.out_h, P.out_w);
    let rd = window(o.d, P.k_d, P.s_d, P.p_d, P.in_d);
    let rh = window(o.h, P.k_h, P.s_h, P.p_h, P.in_h);
    let rw = window(o.w, P.k_w, P.s_w, P.p_w, P.in_w);
    let base = o.nc * P.in_sp;
    var m = bitcast<f32>(0xff800000u); // -inf: taps in the padding never win
    var mi = (rd.x * P.in_h + rh.x) * P.in_w + rw.x;
    for (var d = rd.x; d < rd.y; d++) {
        for (var h = rh.x; h < rh.y; h++) {
            let row = (d * P.in_h + h) * P.in_w;
            for (var w = rw.x; w < rw.y; w++) {
                let v = f32(src[base + row + w]);
                if (v > m) {
                    m = v;
                    mi = row + w;
                }
            }
        }
    }
    dst[e] = act(m);
    idx[e] = mi;
}

@compute @workgroup_size(256)
fn max_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid);
    if (e >= P.total) {
        return;
    }
    let i = decode(e, P.in_d, P.in_h, P.in_w);
    let flat = e - i.nc * P.in_sp;
    let qd = first_window(i.d, P.p_d, P.div_sd);
    let qh = first_window(i.h, P.p_h, P.div_sh);
    let qw = first_window(i.w, P.p_w, P.div_sw);
    let base = i.nc * P.out_sp;
    var acc = 0.0;
    // A window that misses i cannot have its argmax at i: the index test suffices.
    for (var td = 0u; td < P.cnt_d; td++) {
        let od = qd - i32(td);
        if (od < 0 || od >= i32(P.out_d)) {
            continue;
        }
        for (var th = 0u; th < P.cnt_h; th++) {
            let oh = qh - i32(th);
            if (oh < 0 || oh >= i32(P.out_h)) {
                continue;
            }
            let row = base + (u32(od) * P.out_h + u32(oh)) * P.out_w;
            for (var tw = 0u; tw < P.cnt_w; tw++) {
                let ow = qw - i32(tw);
                if (ow >= 0 && ow < i32(P.out_w)) {
                    let o = row + u32(ow);
                    if (idx[o] == flat) {
                        acc += f32(src[o]);
                    }
                }
            }
        }
    }
    dst[e] = act(acc);
}

@compute @workgroup_size(256)
fn unpool_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid);
    if (e >= P.total) {
        return;
    }
    let nc = fdiv(e, P.dec_sp);
    let j = idx[e];
    if (j < P.out_sp) {
        dst[nc * P.out_sp + j] = src[e];
    }
}

@compute @workgroup_size(256)
fn unpool_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid);
    if (e >= P.total) {
        return;
    }
    let nc = fdiv(e, P.dec_sp);
    let j = idx[e];
    var v = act(0.0);
    if (j < P.out_sp) {
        v = src[nc * P.out_sp + j];
    }
    dst[e] = v;
}

@compute @workgroup_size(256)
fn avg_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid);
    if (e >= P.total) {
        return;
    }
    let o = decode(e, P.out_d, P.out_h, P.out_w);
    let rd = window(o.d, P.k_d, P.s_d, P.p_d, P.in_d);
    let rh = window(o.h, P.k_h, P.s_h, P.p_h, P.in_h);
    let rw = window(o.w, P.k_w, P.s_w, P.p_w, P.in_w);
    let base = o.nc * P.in_sp;
    var acc = 0.0;
    for (var d = rd.x; d < rd.y; d++) {
        for (var h = rh.x; h < rh.y; h++) {
            let row = base + (d * P.in_h + h) * P.in_w;
            for (var w = rw.x; w < rw.y; w++) {
                acc += f32(src[row + w]);
            }
        }
    }
    var div = P.kk;
    if ((P.flags & 1u) == 0u) {
        div = (rd.y - rd.x) * (rh.y - rh.x) * (rw.y - rw.x);
    }
    dst[e] = act(acc / f32(max(div, 1u)));
}

@compute @workgroup_size(256)
fn avg_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid);
    if (e >= P.total) {
        return;
    }
    let i = decode(e, P.in_d, P.in_h, P.in_w);
    let qd = first_window(i.d, P.p_d, P.div_sd);
    let qh = first_window(i.h, P.p_h, P.div_sh);
    let qw = first_window(i.w, P.p_w, P.div_sw);
    let base = i.nc * P.out_sp;
    let include_pad = (P.flags & 1u) != 0u;
    var acc = 0.0;
    for (var td = 0u; td < P.cnt_d; td++) {
        let od = qd - i32(td);
        if (!covers(od, i.d, P.k_d, P.s_d, P.p_d, P.out_d)) {
            continue;
        }
        let wd = window(u32(od), P.k_d, P.s_d, P.p_d, P.in_d);
        for (var th = 0u; th < P.cnt_h; th++) {
            let oh = qh - i32(th);
            if (!covers(oh, i.h, P.k_h, P.s_h, P.p_h, P.out_h)) {
                continue;
            }
            let wh = window(u32(oh), P.k_h, P.s_h, P.p_h, P.in_h);
            let row = base + (u32(od) * P.out_h + u32(oh)) * P.out_w;
            for (var tw = 0u; tw < P.cnt_w; tw++) {
                let ow = qw - i32(tw);
                if (!covers(ow, i.w, P.k_w, P.s_w, P.p_w, P.out_w)) {
                    continue;
                }
                var div = P.kk;
                if (!include_pad) {
                    let ww = window(u32(ow), P.k_w, P.s_w, P.p_w, P.in_w);
                    div = (wd.y - wd.x) * (wh.y - wh.x) * (ww.y - ww.x);
                }
                acc += f32(src[row + u32(ow)]) / f32(max(div, 1u));
            }
        }
    }
    dst[e] = act(acc);
}
