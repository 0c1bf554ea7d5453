//! A wgpu application that owns its device, uploads an image into a texture,
//! lets wunet segment it on that same device inside its frame, and composites
//! the mask over the image in its own render pass.
//!
//! ```text
//! cargo run --release --example segment_texture -- --checkpoint CK --image IMG --headless --out frame.png
//! cargo run --release --example segment_texture -- --checkpoint CK --image IMG      # window; R re-segments
//! ```
//!
//! `--mask-out FILE` also writes the mask as `wunet predict` would (class values
//! from the checkpoint; test-time flips where the checkpoint asks for them,
//! `--tta false` for one pass a frame); `--frames N --screenshot FILE` closes the window after N
//! frames, saving the last one (for scripted runs under Xvfb).

use clap::Parser;
use std::path::PathBuf;
use wunet::data::io::{read_image, write_png_rgb};
use wunet::infer::output::write_labels;
use wunet::infer::predict::{load_checkpoint, PredictOptions};
use wunet::infer::texture::{TextureInput, TextureOutput, TexturePredictor};
use wunet::Context;

#[derive(Parser)]
pub struct Args {
    /// Checkpoint written by `wunet train` (a 2D, one-channel model).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Gray image (PNG or TIFF).
    #[arg(long)]
    pub image: PathBuf,
    /// Render offscreen instead of opening a window.
    #[arg(long)]
    pub headless: bool,
    /// The composited frame (PNG); headless runs need it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the mask, as `wunet predict --output` writes it.
    #[arg(long)]
    pub mask_out: Option<PathBuf>,
    /// Test-time flips (four passes a frame instead of one); by default
    /// the checkpoint's training key `tta`, as `wunet predict` does.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub tta: Option<bool>,
    /// Window mode: close after this many frames.
    #[arg(long)]
    pub frames: Option<u64>,
    /// Window mode: save the last frame read back from the window's surface.
    #[arg(long)]
    pub screenshot: Option<PathBuf>,
}

/// The uniform of `segment_texture.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct View {
    lo: f32,
    scale: f32,
    alpha: f32,
    _pad: f32,
    target: [f32; 2],
    _pad2: [f32; 2],
}

/// Everything the application keeps: its textures, its pipeline, and wunet.
pub struct Scene {
    ctx: Context,
    seg: TexturePredictor,
    image: wgpu::Texture,
    mask: wgpu::Texture,
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    view: View,
}

fn texture(
    d: &wgpu::Device,
    size: [u32; 2],
    format: wgpu::TextureFormat,
    usage: wgpu::TextureUsages,
) -> wgpu::Texture {
    d.create_texture(&wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d {
            width: size[0],
            height: size[1],
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

fn pipeline(
    d: &wgpu::Device,
    target: wgpu::TextureFormat,
) -> (wgpu::RenderPipeline, wgpu::BindGroupLayout) {
    let shader = d.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("segment_texture"),
        source: wgpu::ShaderSource::Wgsl(include_str!("composite.wgsl").into()),
    });
    let tex = |binding, sample_type| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Texture {
            sample_type,
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        count: None,
    };
    let layout = d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: None,
        entries: &[
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
            tex(1, wgpu::TextureSampleType::Float { filterable: false }),
            tex(2, wgpu::TextureSampleType::Uint),
        ],
    });
    let pl = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: None,
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let p = d.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("composite"),
        layout: Some(&pl),
        vertex: wgpu::VertexState {
            module: &shader,
            entry_point: Some("vs"),
            compilation_options: Default::default(),
            buffers: &[],
        },
        fragment: Some(wgpu::FragmentState {
            module: &shader,
            entry_point: Some("fs"),
            compilation_options: Default::default(),
            targets: &[Some(target.into())],
        }),
        primitive: Default::default(),
        depth_stencil: None,
        multisample: Default::default(),
        multiview_mask: None,
        cache: None,
    });
    (p, layout)
}

impl Scene {
    /// Upload the image (R32Float, the values `wunet predict` reads) and load wunet.
    pub fn new(ctx: Context, args: &Args, target: wgpu::TextureFormat) -> wunet::Result<Scene> {
        let img = read_image(&args.image)?;
        let (h, w) = (img.dims[1] as u32, img.dims[2] as u32);
        let d = &ctx.device;
        let usage = wgpu::TextureUsages::COPY_SRC
            | wgpu::TextureUsages::COPY_DST
            | wgpu::TextureUsages::TEXTURE_BINDING;
        let image = texture(d, [w, h], wgpu::TextureFormat::R32Float, usage);
        let plane = &img.data[..(w * h) as usize];
        ctx.queue.write_texture(
            image.as_image_copy(),
            bytemuck::cast_slice(plane),
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(4 * w),
                rows_per_image: None,
            },
            image.size(),
        );
        let mask = texture(d, [w, h], wgpu::TextureFormat::R8Uint, usage);
        let (lo, hi) = plane
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let (pipeline, layout) = pipeline(d, target);
        let (ck, meta) = load_checkpoint(&args.checkpoint)?;
        let mut opts = PredictOptions::from_meta(&meta)?;
        opts.tta = args.tta.unwrap_or(opts.tta);
        let seg = TexturePredictor::from_loaded(&ctx, ck, meta, &args.checkpoint, &opts)?;
        let view = View {
            lo,
            scale: 1.0 / (hi - lo).max(1e-6),
            alpha: 0.45,
            _pad: 0.0,
            target: [w as f32, h as f32],
            _pad2: [0.0; 2],
        };
        Ok(Scene {
            ctx,
            seg,
            image,
            mask,
            pipeline,
            layout,
            view,
        })
    }

    /// One frame: segment (when asked) and composite into `target`.
    pub fn frame(
        &mut self,
        enc: &mut wgpu::CommandEncoder,
        target: &wgpu::Texture,
        segment: bool,
    ) -> wunet::Result<()> {
        if segment {
            let input = TextureInput::new(&self.image);
            self.seg
                .encode(&self.ctx, enc, input, TextureOutput::Mask(&self.mask))?;
        }
        self.view.target = [target.width() as f32, target.height() as f32];
        let d = &self.ctx.device;
        let uniform = wgpu::util::DeviceExt::create_buffer_init(
            d,
            &wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::bytes_of(&self.view),
                usage: wgpu::BufferUsages::UNIFORM,
            },
        );
        let iv = self.image.create_view(&Default::default());
        let mv = self.mask.create_view(&Default::default());
        let bg = d.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniform.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&iv),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&mv),
                },
            ],
        });
        let tv = target.create_view(&Default::default());
        let mut pass = enc.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("composite"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &tv,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                    store: wgpu::StoreOp::Store,
                },
            })],
            ..Default::default()
        });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.draw(0..3, 0..1);
        Ok(())
    }

    /// Write the mask as `wunet predict --output` does.
    pub fn save_mask(&self, path: &std::path::Path) -> wunet::Result<()> {
        let bytes = read_texture(&self.ctx, &self.mask)?;
        let (w, h) = (self.mask.width() as usize, self.mask.height() as usize);
        let ids: Vec<i32> = bytes.iter().map(|&b| b as i32).collect();
        let labels = wunet::data::Array3::from_vec([1, h, w], ids)?;
        write_labels(path, &labels, self.seg.class_values())
    }
}

/// The texels of `tex`, rows unpadded; BGRA swapped to RGBA.
pub fn read_texture(ctx: &Context, tex: &wgpu::Texture) -> wunet::Result<Vec<u8>> {
    let mut texels = wunet::gpu::interop::read_texture(ctx, tex)?;
    if matches!(
        tex.format(),
        wgpu::TextureFormat::Bgra8Unorm | wgpu::TextureFormat::Bgra8UnormSrgb
    ) {
        texels.chunks_mut(4).for_each(|p| p.swap(0, 2));
    }
    Ok(texels)
}

/// RGBA8 rows to an RGB PNG.
pub fn save_rgba(path: &std::path::Path, w: u32, h: u32, rgba: &[u8]) -> wunet::Result<()> {
    let rgb: Vec<u8> = rgba.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    write_png_rgb(path, w as usize, h as usize, &rgb)
}

/// The application's own device (any adapter; `WUNET_BACKEND` picks the API)
/// and the adapter it came from.
pub fn own_device(
    instance: &wgpu::Instance,
    surface: Option<&wgpu::Surface>,
) -> wunet::Result<(Context, wgpu::Adapter)> {
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        compatible_surface: surface,
        ..Default::default()
    }))
    .map_err(|e| wunet::Error::Gpu(format!("no adapter: {e}")))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&Default::default()))
        .map_err(|e| wunet::Error::Gpu(format!("request_device: {e}")))?;
    Ok((
        Context::from_adapter_device(&adapter, device, queue),
        adapter,
    ))
}

/// The application's wgpu instance (with the window system's display in window mode).
pub fn instance(
    display: Option<Box<dyn wgpu::wgt::WgpuHasDisplayHandle>>,
) -> wunet::Result<wgpu::Instance> {
    let backends = match std::env::var("WUNET_BACKEND") {
        Ok(b) => wunet::gpu::context::parse_backends(&b)?,
        Err(_) => wgpu::Backends::all(),
    };
    let mut desc = match display {
        Some(d) => wgpu::InstanceDescriptor::new_with_display_handle(d),
        None => wgpu::InstanceDescriptor::new_without_display_handle(),
    };
    desc.backends = backends;
    Ok(wgpu::Instance::new(desc))
}

fn headless(args: &Args) -> wunet::Result<()> {
    let out = args
        .out
        .as_ref()
        .ok_or_else(|| wunet::Error::Other("--headless needs --out FRAME.png".into()))?;
    let (ctx, _) = own_device(&instance(None)?, None)?;
    let format = wgpu::TextureFormat::Rgba8Unorm;
    let mut scene = Scene::new(ctx, args, format)?;
    let usage = wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC;
    let size = [scene.image.width(), scene.image.height()];
    let target = texture(&scene.ctx.device, size, format, usage);
    let mut enc = scene.ctx.device.create_command_encoder(&Default::default());
    scene.frame(&mut enc, &target, true)?;
    scene.ctx.queue.submit([enc.finish()]);
    save_rgba(out, size[0], size[1], &read_texture(&scene.ctx, &target)?)?;
    if let Some(m) = &args.mask_out {
        scene.save_mask(m)?;
    }
    println!("frame: {}", out.display());
    Ok(())
}

mod window;

fn main() {
    let args = Args::parse();
    let r = if args.headless {
        headless(&args)
    } else {
        window::run(args)
    };
    if let Err(e) = r {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
