// texture_io.wgsl: overlap-tile prediction of a host texture, on the GPU (embedding).
//
// The host's texture is first copied, as stored, into `raw` (rows padded to a multiple of
// 256 bytes, wgpu's copy rule); these entry points then do what the CPU predictor does on
// the host (src/infer/predict.rs, src/data/tiling.rs), and the result rows in `out` are
// copied into the host's output texture. All in the host's encoder, no read-back.
//
//   decode       img[y*W + x] = texel (y, x) of raw, one channel: format 0 = u8, 1 = u16,
//                2 = f32 bits; byte = y*pitch + x*texel_bytes + channel. Stored values (a
//                unorm texel k reads as k, as the file loaders give it).
//   sum_partial  stats[2 + g] = sum over chunk g of img (mode 0) or (img - stats[0])^2 (mode 1)
//   sum_final    one workgroup: s = sum of the `parts` partials; mode 0: stats[0] = s / n
//                (mean), mode 1: stats[1] = 1 / max(sqrt(s / n), 1e-6) (z-score scale)
//   extract      tile[item, ty, tx] = (img[r(oy + fy), r(ox + fx)] - mean) * inv (mode 1;
//                mode 0: raw), f = t or flipped (tile - 1 - t) per flip bit, r = numpy
//                'reflect' (src/data/mod.rs reflect_index); oy, ox may be negative.
//   accumulate   for out-tile pixel (ty, tx) in [lo, hi): p = softmax over classes of
//                logits[item, c, crop + f(t)] (f: the flip undone), image pixel
//                i = (oy + ty)*W + ox + tx; blend 1 (Gaussian): acc[c*n + i] += w*s*p_c and
//                acc[C*n + i] += w*s with w = gw[ty*tw + tx], s = 1 / flips; blend 0
//                (owned region only): acc[c*n + i] = s*p_c on the first flip, += after.
//   finish       out word j of row y: texels x = (j % pitch_words)*k + e (k texels per word);
//                q_c = acc[c*n + i] / acc[C*n + i] (Gaussian, where the weight sum > 0);
//                format 0: u8 argmax, 1: u32 argmax, 2: f32 q_class, 3: unorm8 q_class
//                (argmax: first maximum, as ChannelVolume::argmax).
//
// Thread mapping: one element (pixel, tile element, output word) per invocation, 256 per
// workgroup, grid linearised (id = wid.x + wid.y * nwg.x); sum_partial: one workgroup per
// chunk of `chunk` pixels, tree-reduced in workgroup memory; sum_final: one workgroup.
// Bindings: 0 params (uniform), 1 raw (read, u32 words of texel rows), 2 img (f32, W*H),
//           3 stats (f32: mean, inv, partials), 4 gw (read, f32 Gaussian weights of the out
//           tile), 5 tile (act: the network input in extract, its output in accumulate),
//           6 acc (f32, (C + 1) planes of W*H), 7 out (u32 words of output rows).

struct Params {
    n: u32, width: u32, height: u32, pitch_words: u32,
    format: u32, channel: u32, texel_bytes: u32, classes: u32,
    tile_h: u32, tile_w: u32, org_y: i32, org_x: i32,
    item: u32, flip: u32, full_h: u32, full_w: u32,
    crop_y: u32, crop_x: u32, lo_y: u32, lo_x: u32,
    hi_y: u32, hi_x: u32, blend: u32, first: u32,
    scale: f32, mode: u32, chunk: u32, parts: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> raw: array<u32>;
@group(0) @binding(2) var<storage, read_write> img: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<storage, read> gw: array<f32>;
@group(0) @binding(5) var<storage, read_write> tile: array<act>;
@group(0) @binding(6) var<storage, read_write> acc: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<u32>;

var<workgroup> part: array<f32, 256>;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid;
}

// numpy 'reflect' (edge not repeated), any distance outside [0, n).
fn reflect(i: i32, n: i32) -> i32 {
    if (n <= 1) {
        return 0;
    }
    if (i >= 0 && i < n) {
        return i;
    }
    // i mod period with unsigned operands only (GLSL leaves % of negative ints undefined)
    let period = u32(2 * (n - 1));
    var m: u32;
    if (i >= 0) {
        m = u32(i) % period;
    } else {
        m = (period - u32(-i) % period) % period;
    }
    if (m < u32(n)) {
        return i32(m);
    }
    return i32(period - m);
}

// (ty, tx) of a tile of P.tile_h x P.tile_w mirrored per flip bit (bit 1: y, bit 0: x).
fn flipped(ty: u32, tx: u32) -> vec2<u32> {
    var f = vec2<u32>(ty, tx);
    if ((P.flip & 2u) != 0u) {
        f.x = P.tile_h - 1u - ty;
    }
    if ((P.flip & 1u) != 0u) {
        f.y = P.tile_w - 1u - tx;
    }
    return f;
}

@compute @workgroup_size(256)
fn decode(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= P.n) {
        return;
    }
    let y = i / P.width;
    let x = i - y * P.width;
    let byte = y * P.pitch_words * 4u + x * P.texel_bytes + P.channel;
    let word = raw[byte / 4u];
    let shift = (byte % 4u) * 8u;
    var v: f32;
    if (P.format == 0u) {
        v = f32((word >> shift) & 0xffu);
    } else if (P.format == 1u) {
        v = f32((word >> shift) & 0xffffu);
    } else {
        v = bitcast<f32>(word);
    }
    img[i] = v;
}

fn reduce_part(lid: u32) {
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            part[lid] += part[lid + s];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn sum_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    let start = g * P.chunk;
    let end = min(start + P.chunk, P.n);
    let mean = stats[0];
    var s = 0.0;
    for (var i = start + lid; i < end; i += 256u) {
        let v = img[i];
        if (P.mode == 0u) {
            s += v;
        } else {
            s += (v - mean) * (v - mean);
        }
    }
    part[lid] = s;
    reduce_part(lid);
    if (lid == 0u && g < P.parts) {
        stats[2u + g] = part[0];
    }
}

@compute @workgroup_size(256)
fn sum_final(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var g = lid; g < P.parts; g += 256u) {
        s += stats[2u + g];
    }
    part[lid] = s;
    reduce_part(lid);
    if (lid == 0u) {
        let m = part[0] / f32(max(P.n, 1u));
        if (P.mode == 0u) {
            stats[0] = m;
        } else {
            stats[1] = 1.0 / max(sqrt(m), 1e-6);
        }
    }
}

@compute @workgroup_size(256)
fn extract(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= P.tile_h * P.tile_w) {
        return;
    }
    let ty = i / P.tile_w;
    let tx = i - ty * P.tile_w;
    let f = flipped(ty, tx);
    let fy = f.x;
    let fx = f.y;
    let sy = reflect(P.org_y + i32(fy), i32(P.height));
    let sx = reflect(P.org_x + i32(fx), i32(P.width));
    var v = img[u32(sy) * P.width + u32(sx)];
    if (P.mode == 1u) {
        v = (v - stats[0]) * stats[1];
    }
    tile[P.item * P.tile_h * P.tile_w + i] = act(v);
}

@compute @workgroup_size(256)
fn accumulate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let rw = P.hi_x - P.lo_x;
    let i = linear_id(wid, nwg, lid);
    if (i >= (P.hi_y - P.lo_y) * rw) {
        return;
    }
    let ty = P.lo_y + i / rw;
    let tx = P.lo_x + i % rw;
    let f = flipped(ty, tx);
    let fy = f.x;
    let fx = f.y;
    let plane = P.full_h * P.full_w;
    let src = P.item * P.classes * plane + (P.crop_y + fy) * P.full_w + P.crop_x + fx;
    var m = -3.0e38;
    for (var c = 0u; c < P.classes; c++) {
        m = max(m, f32(tile[src + c * plane]));
    }
    var z = 0.0;
    for (var c = 0u; c < P.classes; c++) {
        z += exp(f32(tile[src + c * plane]) - m);
    }
    let n = P.width * P.height;
    let px = (u32(P.org_y) + ty) * P.width + u32(P.org_x) + tx;
    var w = P.scale;
    if (P.blend == 1u) {
        w = gw[ty * P.tile_w + tx] * P.scale;
        acc[P.classes * n + px] += w;
    }
    for (var c = 0u; c < P.classes; c++) {
        let p = exp(f32(tile[src + c * plane]) - m) / z;
        if (P.blend == 0u && P.first == 1u) {
            acc[c * n + px] = w * p;
        } else {
            acc[c * n + px] += w * p;
        }
    }
}

// The value of pixel px for the output format (see the header).
fn output_value(px: u32) -> u32 {
    let n = P.width * P.height;
    var wsum = 1.0;
    if (P.blend == 1u && acc[P.classes * n + px] > 0.0) {
        wsum = acc[P.classes * n + px];
    }
    if (P.format >= 2u) {
        let q = acc[P.channel * n + px] / wsum;
        if (P.format == 2u) {
            return bitcast<u32>(q);
        }
        return u32(round(clamp(q, 0.0, 1.0) * 255.0));
    }
    var best = 0u;
    var val = acc[px] / wsum;
    for (var c = 1u; c < P.classes; c++) {
        let q = acc[c * n + px] / wsum;
        if (q > val) {
            val = q;
            best = c;
        }
    }
    if (P.format == 0u) {
        return min(best, 255u);
    }
    return best;
}

@compute @workgroup_size(256)
fn finish(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let j = linear_id(wid, nwg, lid);
    if (j >= P.pitch_words * P.height) {
        return;
    }
    let y = j / P.pitch_words;
    let k = 4u / P.texel_bytes;
    let x0 = (j - y * P.pitch_words) * k;
    var word = 0u;
    for (var e = 0u; e < k; e++) {
        let x = x0 + e;
        if (x < P.width) {
            let v = output_value(y * P.width + x);
            if (k == 1u) {
                word = v;
            } else {
                word = word | ((v & 0xffu) << (8u * e));
            }
        }
    }
    out[j] = word;
}
