//! GPU runtime: embedding (host device, buffers, textures), errors, pool reuse.

mod common;
use common::{assert_close, ctx, rand_vec};
use wunet::gpu::interop::{copy_tensor_to_texture, copy_texture_to_tensor};
use wunet::gpu::tensor::TENSOR_USAGE;
use wunet::gpu::{Context, ContextOptions};
use wunet::ops::conv;
use wunet::reference::conv as r;
use wunet::{DType, Error, Shape, Tensor, Window};

/// A host application's own device, handed to the engine.
fn host_device() -> Option<(wgpu::Device, wgpu::Queue, wgpu::AdapterInfo)> {
    let inst = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter =
        pollster::block_on(inst.request_adapter(&wgpu::RequestAdapterOptions::default())).ok()?;
    let info = adapter.get_info();
    let (d, q) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).ok()?;
    Some((d, q, info))
}

#[test]
fn embedding_with_host_device_buffers_and_textures() {
    let Some((device, queue, info)) = host_device() else {
        eprintln!("skip: no adapter");
        return;
    };
    let c = Context::from_device(device.clone(), queue.clone(), info);
    // The host owns the input buffer; the engine convolves it into a tensor.
    let xs = Shape::new4(1, 2, 5, 7);
    let xv = rand_vec(xs.numel(), 1);
    let host_buf = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host"),
        size: 512,
        usage: TENSOR_USAGE,
        mapped_at_creation: false,
    });
    queue.write_buffer(&host_buf, 0, bytemuck::cast_slice(&xv));
    let x = Tensor::from_buffer(&c, host_buf, 0, xs, DType::F32).unwrap();
    let win = Window::cube(2, 3, 1, 1);
    let ws = Shape::new4(3, 2, 3, 3);
    let wv = rand_vec(ws.numel(), 2);
    let w = Tensor::from_f32(&c, &wv, ws).unwrap();
    let y = c.run(|rec| conv::conv(rec, &x, &w, None, &win)).unwrap();
    let (yref, ys) = r::conv_fwd(&xv, &xs, &wv, &ws, None, &win);
    assert_eq!(y.shape, ys);
    assert_close(
        "embedded conv",
        &y.to_f32_vec(&c).unwrap(),
        &yref,
        1e-4,
        1e-4,
    );

    // Round trip through a host texture (R32Float), odd width so rows go one by one.
    let tex = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("host tex"),
        size: wgpu::Extent3d {
            width: 7,
            height: 5,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::R32Float,
        usage: wgpu::TextureUsages::COPY_DST
            | wgpu::TextureUsages::COPY_SRC
            | wgpu::TextureUsages::TEXTURE_BINDING,
        view_formats: &[],
    });
    let back = Tensor::zeros(&c, Shape::new4(1, 1, 5, 7), DType::F32).unwrap();
    c.with_encoder(|enc| {
        copy_tensor_to_texture(enc, &y, 0, 2, &tex)?;
        copy_texture_to_tensor(enc, &tex, &back, 0, 0)
    })
    .unwrap();
    let plane = &yref[2 * 35..3 * 35];
    assert_close(
        "texture round trip",
        &back.to_f32_vec(&c).unwrap(),
        plane,
        1e-6,
        0.0,
    );

    // The engine's program can be encoded into the host's encoder.
    let prog = c
        .record(|rec| conv::conv_into(rec, &x, &w, None, &win, &y, conv::ConvKernel::Auto))
        .unwrap();
    let mut enc = device.create_command_encoder(&Default::default());
    prog.encode(&mut enc);
    queue.submit([enc.finish()]);
    assert_close(
        "host-encoded program",
        &y.to_f32_vec(&c).unwrap(),
        &yref,
        1e-4,
        1e-4,
    );
}

#[test]
fn shape_errors_name_the_op_and_both_shapes() {
    let Some(c) = ctx() else { return };
    let x = Tensor::zeros(c, Shape::new4(1, 3, 8, 8), DType::F32).unwrap();
    let w = Tensor::zeros(c, Shape::new4(4, 5, 3, 3), DType::F32).unwrap();
    let e = c
        .run(|rec| conv::conv(rec, &x, &w, None, &Window::cube(2, 3, 1, 1)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("conv2d") && e.contains("1x3x8x8") && e.contains("4x5x3x3"),
        "{e}"
    );
    let w = Tensor::zeros(c, Shape::new4(4, 3, 9, 9), DType::F32).unwrap();
    let e = c
        .run(|rec| conv::conv(rec, &x, &w, None, &Window::cube(2, 9, 1, 0)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("conv2d") && e.contains("smaller than the window"),
        "{e}"
    );
    let e = Tensor::from_f32(c, &[1.0; 5], Shape::new4(1, 1, 2, 2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("upload") && e.contains("1x1x2x2"), "{e}");
}

#[test]
fn too_large_tensor_is_rejected_before_gpu_work() {
    let Some(c) = ctx() else { return };
    let lim = c
        .limits
        .max_storage_buffer_binding_size
        .min(c.limits.max_buffer_size);
    let n = (lim / 4 + 1024) as usize;
    match Tensor::empty(c, Shape::new4(1, 1, 1, n), DType::F32) {
        Err(Error::TooLarge { bytes, limit, .. }) => assert!(bytes > limit),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn unknown_backend_is_an_error_not_a_panic() {
    let e = Context::new(&ContextOptions {
        backend: Some("glide".into()),
        adapter: None,
    });
    assert!(matches!(e, Err(Error::Gpu(m)) if m.contains("glide")));
    let e = Context::new(&ContextOptions {
        backend: None,
        adapter: Some("no such adapter 123".into()),
    });
    assert!(matches!(e, Err(Error::Gpu(m)) if m.contains("no GPU adapter")));
}

#[test]
fn pool_reuses_freed_buffers() {
    let Some(c) = ctx() else { return };
    let s = Shape::new4(1, 3, 33, 17);
    let before = c.pool_stats();
    for _ in 0..5 {
        let _t = Tensor::empty(c, s, DType::F32).unwrap();
    }
    let after = c.pool_stats();
    assert!(
        after.allocations - before.allocations <= 1,
        "{before:?} -> {after:?}"
    );
    assert!(after.reuses - before.reuses >= 4, "{before:?} -> {after:?}");
}
