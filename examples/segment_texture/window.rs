//! Window mode: a winit window whose surface shows the composited frame;
//! R re-segments, Escape closes; `--frames N [--screenshot FILE]` closes after
//! N frames, saving the last one as read back from the surface.

use super::{instance, own_device, read_texture, save_rgba, Args, Scene};
use std::sync::Arc;
use winit::application::ApplicationHandler;
use winit::event::{ElementState, KeyEvent, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::keyboard::{Key, NamedKey};
use winit::window::{Window, WindowId};

struct Shown {
    window: Arc<Window>,
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    scene: Scene,
    /// Segment on the next frame (first frame, and after R).
    segment: bool,
    frames: u64,
    /// The surface's frames can be copied from (`COPY_SRC`).
    readable: bool,
}

struct App {
    args: Args,
    shown: Option<Shown>,
    error: Option<wunet::Error>,
}

impl App {
    fn open(&mut self, el: &ActiveEventLoop) -> wunet::Result<Shown> {
        let img = wunet::data::io::read_image(&self.args.image)?;
        let attrs = Window::default_attributes()
            .with_title("wunet: segment_texture (R: segment again, Esc: quit)")
            .with_inner_size(winit::dpi::PhysicalSize::new(
                img.dims[2] as u32,
                img.dims[1] as u32,
            ));
        let window = Arc::new(
            el.create_window(attrs)
                .map_err(|e| wunet::Error::Other(format!("window: {e}")))?,
        );
        let inst = instance(Some(Box::new(el.owned_display_handle())))?;
        let surface = inst
            .create_surface(window.clone())
            .map_err(|e| wunet::Error::Gpu(format!("surface: {e}")))?;
        let (ctx, adapter) = own_device(&inst, Some(&surface))?;
        let size = window.inner_size();
        let mut config = surface
            .get_default_config(&adapter, size.width.max(1), size.height.max(1))
            .ok_or_else(|| wunet::Error::Gpu("surface unsupported by the adapter".into()))?;
        config.format = config.format.remove_srgb_suffix();
        let caps = surface.get_capabilities(&adapter);
        // read the frame back from the surface where it allows (Vulkan); else (GL)
        // the screenshot renders the same frame offscreen at the window's size
        let readable = caps.usages.contains(wgpu::TextureUsages::COPY_SRC);
        if readable {
            config.usage |= wgpu::TextureUsages::COPY_SRC;
        }
        surface.configure(&ctx.device, &config);
        let scene = Scene::new(ctx, &self.args, config.format)?;
        Ok(Shown {
            window,
            surface,
            config,
            scene,
            segment: true,
            frames: 0,
            readable,
        })
    }
}

impl Shown {
    /// Save the frame just rendered into `shown`: copied from the surface
    /// texture, or rendered again offscreen where the surface cannot be read.
    fn screenshot(&mut self, path: &std::path::Path, shown: &wgpu::Texture) -> wunet::Result<()> {
        let (w, h) = (shown.width(), shown.height());
        let pixels = if self.readable {
            read_texture(&self.scene.ctx, shown)?
        } else {
            let d = &self.scene.ctx.device;
            let t = d.create_texture(&wgpu::TextureDescriptor {
                label: Some("screenshot"),
                size: shown.size(),
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: self.config.format,
                usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
                view_formats: &[],
            });
            let mut enc = d.create_command_encoder(&Default::default());
            self.scene.frame(&mut enc, &t, false)?;
            self.scene.ctx.queue.submit([enc.finish()]);
            read_texture(&self.scene.ctx, &t)?
        };
        save_rgba(path, w, h, &pixels)?;
        let how = if self.readable {
            "from the window's surface"
        } else {
            "rendered offscreen: this surface cannot be read"
        };
        println!("screenshot: {} ({how})", path.display());
        Ok(())
    }

    /// Render one frame into the surface; true when the run should end.
    fn redraw(&mut self, args: &Args) -> wunet::Result<bool> {
        let frame = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(f)
            | wgpu::CurrentSurfaceTexture::Suboptimal(f) => f,
            other => {
                self.surface.configure(&self.scene.ctx.device, &self.config);
                eprintln!("surface: {other:?}; reconfigured");
                return Ok(false);
            }
        };
        let mut enc = self
            .scene
            .ctx
            .device
            .create_command_encoder(&Default::default());
        self.scene.frame(&mut enc, &frame.texture, self.segment)?;
        self.segment = false;
        self.scene.ctx.queue.submit([enc.finish()]);
        self.frames += 1;
        let last = args.frames.is_some_and(|n| self.frames >= n);
        if last {
            if let Some(path) = &args.screenshot {
                self.screenshot(path, &frame.texture)?;
            }
        }
        self.scene.ctx.queue.present(frame);
        Ok(last)
    }
}

impl ApplicationHandler for App {
    fn resumed(&mut self, el: &ActiveEventLoop) {
        if self.shown.is_some() {
            return;
        }
        match self.open(el) {
            Ok(s) => {
                s.window.request_redraw();
                self.shown = Some(s);
            }
            Err(e) => {
                self.error = Some(e);
                el.exit();
            }
        }
    }

    fn window_event(&mut self, el: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        let Some(s) = self.shown.as_mut() else { return };
        match event {
            WindowEvent::CloseRequested => el.exit(),
            WindowEvent::Resized(size) => {
                s.config.width = size.width.max(1);
                s.config.height = size.height.max(1);
                s.surface.configure(&s.scene.ctx.device, &s.config);
                s.window.request_redraw();
            }
            WindowEvent::KeyboardInput {
                event:
                    KeyEvent {
                        logical_key,
                        state: ElementState::Pressed,
                        ..
                    },
                ..
            } => match logical_key {
                Key::Named(NamedKey::Escape) => el.exit(),
                Key::Character(c) if c.eq_ignore_ascii_case("r") => {
                    s.segment = true;
                    s.window.request_redraw();
                }
                _ => {}
            },
            WindowEvent::RedrawRequested => match s.redraw(&self.args) {
                Ok(true) => el.exit(),
                Ok(false) => {
                    if self.args.frames.is_some() {
                        s.window.request_redraw();
                    }
                }
                Err(e) => {
                    self.error = Some(e);
                    el.exit();
                }
            },
            _ => {}
        }
    }
}

/// Open the window and run until closed (or `--frames` are shown).
pub fn run(args: Args) -> wunet::Result<()> {
    let el = EventLoop::new().map_err(|e| wunet::Error::Other(format!("event loop: {e}")))?;
    let mut app = App {
        args,
        shown: None,
        error: None,
    };
    el.run_app(&mut app)
        .map_err(|e| wunet::Error::Other(format!("event loop: {e}")))?;
    match app.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
