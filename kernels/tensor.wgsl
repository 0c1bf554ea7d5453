// tensor.wgsl: tensor plumbing for skip connections and gradient accumulation.
//
//   add           y[i] = a[i] + b[i]
//   scale         y[i] = alpha * a[i]
//   axpy          y[i] += alpha * a[i]                        (in place on y)
//   fill          y[i] = alpha
//   copy          y[i] = a[i]
//   channel_block copy a block of c_blk channels between tensors of equal N and spatial size sp:
//                 y[(n*c_dst + off_dst + c)*sp + s] = a[(n*c_src + off_src + c)*sp + s]
//                 (channel concat: one dispatch per input; its backward, the split: one per output).
//                 len = N * c_blk * sp.
//   shift_copy    y[nc, d, h, w] = a[nc, d + off_d, h + off_h, w + off_w], 0 outside a
//                 (crop: off = offset; crop backward: off = -offset; zero pad: off = -lo;
//                 zero pad backward: off = lo). len = numel(y).
//   reflect_fwd   reflect pad (PyTorch 'reflect', edge not repeated, pad < size):
//                 y[nc, o] = a[nc, r(o + off)] per axis with off = -lo and
//                 r(i) = -i for i < 0, 2(n-1) - i for i >= n. len = numel(y).
//   reflect_bwd   its adjoint as a gather: y = dx (unpadded, n per axis), a = dy (padded), off = lo;
//                 dx[i] sums dy at the (up to 3 per axis) padded positions reading i:
//                 i + lo, lo - i (1 <= i <= lo), lo + 2(n-1) - i (i <= n-2, inside dy).
//
// Thread mapping: one element per invocation, 256 per workgroup, grid linearised
// (id = wid.x + wid.y * nwg.x). Integer divisions by per-dispatch constants use multiply-high
// magics from the params (`fdiv` of precision/fastdiv.wgsl, src/ops/fastdiv.rs): dec_* for
// the sizes of y (W, H, D), div_sp / div_blk for channel_block's sp and c_blk.
// Bindings: 0 params (uniform), 1 a (read), 2 b (read; only `add` uses it, others bind a again),
//           3 y (read_write). All three are activations or activation gradients (`act`: f32,
//           or f16 storage in mixed precision); arithmetic is in f32 (loads widen, stores
//           narrow), pure copies move `act` values unchanged. No entry point is given integer
//           data today (src/ops/tensor.rs accepts F32 or F16 activations); a dispatch whose tensors are all
//           4-byte types runs in the f32 module, where the copying entry points (copy,
//           channel_block, shift_copy, reflect_fwd) move 4-byte words unchanged, so U32/I32
//           tensors could use them there (the f16 module rejects them at dispatch).

struct Params {
    len: u32, alpha: f32, c_src: u32, c_dst: u32,
    c_blk: u32, off_src: u32, off_dst: u32, sp: u32,
    src_d: u32, src_h: u32, src_w: u32, src_sp: u32,
    dst_d: u32, dst_h: u32, dst_w: u32, dst_sp: u32,
    off_d: i32, off_h: i32, off_w: i32, aux: u32,
    dec_w: vec2<u32>, dec_h: vec2<u32>,
    dec_d: vec2<u32>, div_sp: vec2<u32>,
    div_blk: vec2<u32>, aux2: vec2<u32>,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<act>;
@group(0) @binding(2) var<storage, read> b: array<act>;
@group(0) @binding(3) var<storage, read_write> y: array<act>;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i < P.len) {
        y[i] = act(f32(a[i]) + f32(b[i]));
    }
}

@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i < P.len) {
        y[i] = act(P.alpha * f32(a[i]));
    }
}

@compute @workgroup_size(256)
fn axpy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i < P.len) {
        y[i] = act(fma(P.alpha, f32(a[i]), f32(y[i])));
    }
}

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i < P.len) {
        y[i] = act(P.alpha);
    }
}

@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i < P.len) {
        y[i] = a[i];
    }
}

@compute @workgroup_size(256)
fn channel_block(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= P.len) {
        return;
    }
    let nc = fdiv(i, P.div_sp);
    let s = i - nc * P.sp;
    let n = fdiv(nc, P.div_blk);
    let c = nc - n * P.c_blk;
    y[(n * P.c_dst + P.off_dst + c) * P.sp + s] = a[(n * P.c_src + P.off_src + c) * P.sp + s];
}

struct Pos {
    nc: u32,
    d: i32,
    h: i32,
    w: i32,
}

// Position of element e of a tensor with spatial size (dd, hh, ww), whose magics are P.dec_*.
fn decode(e: u32, dd: u32, hh: u32, ww: u32) -> Pos {
    var p: Pos;
    let t = fdiv(e, P.dec_w);
    p.w = i32(e - t * ww);
    let t2 = fdiv(t, P.dec_h);
    p.h = i32(t - t2 * hh);
    p.nc = fdiv(t2, P.dec_d);
    p.d = i32(t2 - p.nc * dd);
    return p;
}

@compute @workgroup_size(256)
fn shift_copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid);
    if (e >= P.len) {
        return;
    }
    let o = decode(e, P.dst_d, P.dst_h, P.dst_w);
    let d = o.d + P.off_d;
    let h = o.h + P.off_h;
    let w = o.w + P.off_w;
    var v = act(0.0);
    if (d >= 0 && h >= 0 && w >= 0 && d < i32(P.src_d) && h < i32(P.src_h) && w < i32(P.src_w)) {
        v = a[o.nc * P.src_sp + (u32(d) * P.src_h + u32(h)) * P.src_w + u32(w)];
    }
    y[e] = v;
}

// Reflect i into 0..n (single reflection; pad < n is checked on the host).
fn mirror(i: i32, n: u32) -> u32 {
    var r = abs(i);
    let last = i32(n) - 1;
    if (r > last) {
        r = 2 * last - r;
    }
    return u32(clamp(r, 0, last));
}

@compute @workgroup_size(256)
fn reflect_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid);
    if (e >= P.len) {
        return;
    }
    let o = decode(e, P.dst_d, P.dst_h, P.dst_w);
    let d = mirror(o.d + P.off_d, P.src_d);
    let h = mirror(o.h + P.off_h, P.src_h);
    let w = mirror(o.w + P.off_w, P.src_w);
    y[e] = a[o.nc * P.src_sp + (d * P.src_h + h) * P.src_w + w];
}

// Padded positions (in a padded axis of length np) that read unpadded position i of an
// axis of length n padded by lo in front; -1 marks an unused slot.
fn readers(i: i32, n: u32, lo: i32, np: u32) -> vec3<i32> {
    var r = vec3<i32>(i + lo, -1, -1);
    if (i >= 1 && i <= lo) {
        r.y = lo - i;
    }
    let hi_pos = lo + 2 * (i32(n) - 1) - i;
    if (i <= i32(n) - 2 && hi_pos < i32(np)) {
        r.z = hi_pos;
    }
    return r;
}

@compute @workgroup_size(256)
fn reflect_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid);
    if (e >= P.len) {
        return;
    }
    let o = decode(e, P.dst_d, P.dst_h, P.dst_w);
    let rd = readers(o.d, P.dst_d, P.off_d, P.src_d);
    let rh = readers(o.h, P.dst_h, P.off_h, P.src_h);
    let rw = readers(o.w, P.dst_w, P.off_w, P.src_w);
    let base = o.nc * P.src_sp;
    var acc = 0.0;
    for (var i = 0u; i < 3u; i++) {
        let d = rd[i];
        if (d < 0) {
            continue;
        }
        for (var j = 0u; j < 3u; j++) {
            let h = rh[j];
            if (h < 0) {
                continue;
            }
            let row = base + (u32(d) * P.src_h + u32(h)) * P.src_w;
            for (var k = 0u; k < 3u; k++) {
                let w = rw[k];
                if (w >= 0) {
                    acc += f32(a[row + u32(w)]);
                }
            }
        }
    }
    y[e] = act(acc);
}
