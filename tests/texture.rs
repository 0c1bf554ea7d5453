//! Texture-level prediction (embedding): `TexturePredictor` on a host texture
//! against the CPU-side `Predictor` on the same image and weights, for masks
//! and probabilities, valid and same padding, both blends, flip TTA, batches
//! that do not divide the tiles, and every input format; wrong textures give
//! errors naming the texture and what was expected.

mod common;
use common::ctx;
use std::path::Path;
use wunet::data::dataset::{normalize, Normalize};
use wunet::data::tiling::Blend;
use wunet::data::Array3;
use wunet::exec::{ExecOptions, Executor};
use wunet::gpu::interop::read_texture;
use wunet::infer::texture::{TextureInput, TextureOutput, TexturePredictor};
use wunet::infer::{InferMeta, PredictOptions, Predictor};
use wunet::model_io::checkpoint::Checkpoint;
use wunet::model_io::meta::ModelMeta;
use wunet::models::{build_unet_with, Mode, Norm, Padding, UNetConfig};
use wunet::shape::Precision;
use wunet::Context;

const W: u32 = 70;
const H: u32 = 45;

fn config(padding: Padding) -> UNetConfig {
    let mut c = UNetConfig::ronneberger2015();
    c.base = 4;
    c.depth = 2;
    c.classes = 3;
    c.padding = padding;
    c.norm = Norm::Batch;
    c.dropout = 0.0;
    c
}

/// Seeded weights of `cfg` and the metadata `wunet train` would store.
fn model(c: &Context, cfg: &UNetConfig, tile: &str) -> (Checkpoint, InferMeta) {
    let net = build_unet_with(cfg, 1, &[44, 44], &Mode::Inference, Precision::F32).unwrap();
    let exec = Executor::new(
        c,
        net.graph,
        &ExecOptions {
            seed: 7,
            keep: vec![],
            ..Default::default()
        },
    )
    .unwrap();
    let meta = InferMeta::for_model(ModelMeta::from(cfg), tile);
    (exec.export(c).unwrap(), meta)
}

/// A textured 8-bit image: blobs on a ramp.
fn image_u8() -> Vec<u8> {
    (0..W * H)
        .map(|i| {
            let (y, x) = ((i / W) as f32, (i % W) as f32);
            let blob = ((x * 0.31).sin() * (y * 0.23).cos() * 90.0).max(0.0);
            (20.0 + x * 0.8 + blob).min(255.0) as u8
        })
        .collect()
}

fn texture(c: &Context, format: wgpu::TextureFormat, usage: wgpu::TextureUsages) -> wgpu::Texture {
    c.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("test"),
        size: wgpu::Extent3d {
            width: W,
            height: H,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage,
        view_formats: &[],
    })
}

fn upload(c: &Context, tex: &wgpu::Texture, bytes: &[u8], texel: u32) {
    c.queue.write_texture(
        tex.as_image_copy(),
        bytes,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(W * texel),
            rows_per_image: None,
        },
        tex.size(),
    );
}

/// Probabilities from the CPU-side predictor (as `wunet predict` computes them).
fn reference(c: &Context, ck: &Checkpoint, meta: &InferMeta, opts: &PredictOptions) -> Vec<f32> {
    let data = image_u8().iter().map(|&v| v as f32).collect();
    let mut img = Array3::from_vec([1, H as usize, W as usize], data).unwrap();
    normalize(&mut img, Normalize::ZScore);
    let dims = [1, H as usize, W as usize];
    let path = Path::new("model.safetensors");
    let mut p = Predictor::from_loaded(c, ck, meta, path, None, Some(dims), opts).unwrap();
    p.predict(c, &img).unwrap().data
}

/// Run the texture path on an R8Unorm texture of the image: mask and the
/// probability of every class.
fn on_textures(c: &Context, seg: &mut TexturePredictor, classes: usize) -> (Vec<u8>, Vec<f32>) {
    let usage = wgpu::TextureUsages::COPY_SRC | wgpu::TextureUsages::COPY_DST;
    let input = texture(c, wgpu::TextureFormat::R8Unorm, usage);
    upload(c, &input, &image_u8(), 1);
    let mask = texture(c, wgpu::TextureFormat::R8Uint, usage);
    let prob = texture(c, wgpu::TextureFormat::R32Float, usage);
    let mut enc = c.device.create_command_encoder(&Default::default());
    seg.encode(
        c,
        &mut enc,
        TextureInput::new(&input),
        TextureOutput::Mask(&mask),
    )
    .unwrap();
    c.queue.submit([enc.finish()]);
    let m = read_texture(c, &mask).unwrap();
    let mut probs = Vec::new();
    for class in 0..classes {
        let mut enc = c.device.create_command_encoder(&Default::default());
        let out = TextureOutput::Probability {
            texture: &prob,
            class,
        };
        seg.encode(c, &mut enc, TextureInput::new(&input), out)
            .unwrap();
        c.queue.submit([enc.finish()]);
        probs.extend(
            bytemuck::cast_slice::<u8, f32>(&read_texture(c, &prob).unwrap())
                .iter()
                .copied(),
        );
    }
    (m, probs)
}

fn argmax(p: &[f32], classes: usize) -> Vec<u8> {
    let n = p.len() / classes;
    (0..n)
        .map(|i| {
            let mut best = 0;
            for c in 1..classes {
                if p[c * n + i] > p[best * n + i] {
                    best = c;
                }
            }
            best as u8
        })
        .collect()
}

fn check_case(c: &Context, padding: Padding, tile: &str, opts: PredictOptions) {
    let cfg = config(padding);
    let (ck, meta) = model(c, &cfg, tile);
    let want = reference(c, &ck, &meta, &opts);
    let path = Path::new("model.safetensors");
    let mut seg = TexturePredictor::from_loaded(c, ck, meta, path, &opts).unwrap();
    let (mask, got) = on_textures(c, &mut seg, cfg.classes);
    let label = format!("{padding:?} tile {tile} {opts:?}");
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 2e-4, "{label}: probabilities differ by {worst}");
    let ref_mask = argmax(&want, cfg.classes);
    let agree = mask.iter().zip(&ref_mask).filter(|(a, b)| a == b).count();
    assert!(
        agree as f64 >= 0.999 * mask.len() as f64,
        "{label}: masks agree on {agree} of {} pixels",
        mask.len()
    );
    assert!(
        ref_mask.iter().any(|&v| v != ref_mask[0]),
        "{label}: the reference mask is one class; the test would not see swapped tiles"
    );
}

#[test]
fn texture_prediction_matches_the_cpu_predictor() {
    let Some(c) = ctx() else { return };
    let gauss = PredictOptions::default();
    // several tiles per axis, Gaussian blending
    check_case(c, Padding::Same, "32x32", gauss.clone());
    // valid convolutions, owned regions, flip TTA in batches of 3 (the last one partial)
    let none_tta = PredictOptions {
        blend: Blend::None,
        tta: true,
        batch: 3,
        ..gauss.clone()
    };
    check_case(c, Padding::Valid, "60x60", none_tta);
}

#[test]
fn every_input_format_reads_the_same_image() {
    let Some(c) = ctx() else { return };
    let cfg = config(Padding::Same);
    let (ck, meta) = model(c, &cfg, "32x32");
    let path = Path::new("model.safetensors");
    let opts = PredictOptions::default();
    let mut seg = TexturePredictor::from_loaded(c, ck, meta, path, &opts).unwrap();
    let usage = wgpu::TextureUsages::COPY_SRC | wgpu::TextureUsages::COPY_DST;
    let img = image_u8();
    let mask_of = |seg: &mut TexturePredictor, tex: &wgpu::Texture, channel: u32| {
        let mask = texture(c, wgpu::TextureFormat::R32Uint, usage);
        let mut enc = c.device.create_command_encoder(&Default::default());
        let input = TextureInput {
            texture: tex,
            channel,
        };
        seg.encode(c, &mut enc, input, TextureOutput::Mask(&mask))
            .unwrap();
        c.queue.submit([enc.finish()]);
        read_texture(c, &mask).unwrap()
    };
    let r8 = texture(c, wgpu::TextureFormat::R8Unorm, usage);
    upload(c, &r8, &img, 1);
    let want = mask_of(&mut seg, &r8, 0);
    // the same values as f32, as u16 scaled by 3 (z-scoring removes the scale), and in
    // the blue channel of an RGBA8 texture whose other channels hold noise
    let f32_tex = texture(c, wgpu::TextureFormat::R32Float, usage);
    let f: Vec<f32> = img.iter().map(|&v| v as f32).collect();
    upload(c, &f32_tex, bytemuck::cast_slice(&f), 4);
    assert_eq!(mask_of(&mut seg, &f32_tex, 0), want, "R32Float");
    let u16_tex = texture(c, wgpu::TextureFormat::R16Uint, usage);
    let u: Vec<u16> = img.iter().map(|&v| v as u16 * 3).collect();
    upload(c, &u16_tex, bytemuck::cast_slice(&u), 2);
    let got = mask_of(&mut seg, &u16_tex, 0);
    let agree = got.iter().zip(&want).filter(|(a, b)| a == b).count();
    assert!(agree as f64 >= 0.999 * got.len() as f64, "R16Uint: {agree}");
    let rgba = texture(c, wgpu::TextureFormat::Rgba8Unorm, usage);
    let bytes: Vec<u8> = img
        .iter()
        .enumerate()
        .flat_map(|(i, &v)| [(i * 37) as u8, (i * 11) as u8, v, 255])
        .collect();
    upload(c, &rgba, &bytes, 4);
    assert_eq!(mask_of(&mut seg, &rgba, 2), want, "Rgba8Unorm channel 2");
    assert_ne!(
        mask_of(&mut seg, &rgba, 0),
        want,
        "channel 0 holds other data"
    );
}

#[test]
fn wrong_textures_are_named_errors() {
    let Some(c) = ctx() else { return };
    let cfg = config(Padding::Same);
    let (ck, meta) = model(c, &cfg, "32x32");
    let path = Path::new("model.safetensors");
    // a resize is not done on textures: refused, not ignored
    let scaled = PredictOptions {
        scale: 2.0,
        ..Default::default()
    };
    let e = TexturePredictor::from_loaded(c, ck.clone(), meta.clone(), path, &scaled)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("scale = 2") && e.contains("texture"), "{e}");
    let mut seg =
        TexturePredictor::from_loaded(c, ck, meta, path, &PredictOptions::default()).unwrap();
    let usage = wgpu::TextureUsages::COPY_SRC | wgpu::TextureUsages::COPY_DST;
    let good_in = texture(c, wgpu::TextureFormat::R8Unorm, usage);
    let good_mask = texture(c, wgpu::TextureFormat::R8Uint, usage);
    let mut run = |input: TextureInput, out: TextureOutput| {
        let mut enc = c.device.create_command_encoder(&Default::default());
        seg.encode(c, &mut enc, input, out).unwrap_err().to_string()
    };
    let bad_format = texture(c, wgpu::TextureFormat::Rg8Unorm, usage);
    let e = run(
        TextureInput::new(&bad_format),
        TextureOutput::Mask(&good_mask),
    );
    assert!(
        e.contains("input texture") && e.contains("Rg8Unorm") && e.contains("R8Unorm"),
        "{e}"
    );
    let no_copy = texture(
        c,
        wgpu::TextureFormat::R8Unorm,
        wgpu::TextureUsages::COPY_DST,
    );
    let e = run(TextureInput::new(&no_copy), TextureOutput::Mask(&good_mask));
    assert!(e.contains("input texture") && e.contains("COPY_SRC"), "{e}");
    let e = run(
        TextureInput {
            texture: &good_in,
            channel: 1,
        },
        TextureOutput::Mask(&good_mask),
    );
    assert!(e.contains("1 channel") && e.contains("channel 1"), "{e}");
    let float_mask = texture(c, wgpu::TextureFormat::R32Float, usage);
    let e = run(
        TextureInput::new(&good_in),
        TextureOutput::Mask(&float_mask),
    );
    assert!(
        e.contains("output texture") && e.contains("R8Uint or R32Uint"),
        "{e}"
    );
    let small = c.device.create_texture(&wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d {
            width: W - 1,
            height: H,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::R8Uint,
        usage,
        view_formats: &[],
    });
    let e = run(TextureInput::new(&good_in), TextureOutput::Mask(&small));
    assert!(e.contains("69x45") && e.contains("70x45"), "{e}");
    let e = run(
        TextureInput::new(&good_in),
        TextureOutput::Probability {
            texture: &float_mask,
            class: 3,
        },
    );
    assert!(e.contains("class 3") && e.contains("3 classes"), "{e}");
}
