// composite.wgsl: the example application's own render pass: the image, with the
// predicted mask composited over it (class 0 transparent, other classes tinted).
//
// One full-screen triangle; the fragment at pixel (x, y) of the target reads texel
// (x * W / target_w, y * H / target_h) of the image (R32Float, stored values shown as
// (v - lo) * scale) and of the mask (R8Uint class ids).

struct View { lo: f32, scale: f32, alpha: f32, _pad: f32, frame: vec2<f32>, _pad2: vec2<f32> }

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var image: texture_2d<f32>;
@group(0) @binding(2) var mask: texture_2d<u32>;

@vertex
fn vs(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    let p = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    return vec4<f32>(p * 2.0 - 1.0, 0.0, 1.0);
}

const TINTS = array<vec3<f32>, 4>(
    vec3<f32>(1.0, 0.2, 0.2), vec3<f32>(0.2, 1.0, 0.3),
    vec3<f32>(0.3, 0.5, 1.0), vec3<f32>(1.0, 0.9, 0.2),
);

@fragment
fn fs(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let size = vec2<f32>(textureDimensions(image));
    let t = vec2<u32>(min(pos.xy * size / view.frame, size - 1.0));
    let g = clamp((textureLoad(image, t, 0).r - view.lo) * view.scale, 0.0, 1.0);
    let c = textureLoad(mask, t, 0).r;
    var rgb = vec3<f32>(g);
    if (c > 0u) {
        rgb = mix(rgb, TINTS[(c - 1u) % 4u], view.alpha);
    }
    return vec4<f32>(rgb, 1.0);
}
