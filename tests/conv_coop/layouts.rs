//! The layout probe: the cooperative-matrix load/store semantics the kernels
//! rely on, pinned down on the device (`coop_matrix_layouts_on_device`).

use super::coop_ctx;
use wunet::{DType, Shape, Tensor};

/// A tiny GEMM through every load/store form the kernels use, on one subgroup:
///   out0 = coopStoreT(coopLoadT A * coopLoadT B)       expect A*B     (row-major all)
///   out1 = coopLoad A (column-major) * coopLoadT B      expect A^T*B
///   out2 = coopLoadT A * coopLoad B (column-major)      expect A*B^T
///   out3 = coopStore (column-major) of A*B              expect (A*B)^T
///   out4 = from workgroup memory, row stride 24, two multiply-adds, stored row-major to
///          workgroup memory with stride 20                expect 2*A*B
/// A and B are small integers, so every product and sum is exact.
const PROBE: &str = "
enable f16;
enable wgpu_cooperative_matrix;
@group(0) @binding(0) var<storage, read> a: array<f16>;
@group(0) @binding(1) var<storage, read> b: array<f16>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
var<workgroup> wa: array<f16, 384>;
var<workgroup> wb: array<f16, 384>;
var<workgroup> wc: array<f32, 320>;
alias MA = coop_mat16x16<f16, A>;
alias MB = coop_mat16x16<f16, B>;
alias MC = coop_mat16x16<f32, C>;
@compute @workgroup_size(32)
fn main(@builtin(local_invocation_index) lid: u32) {
    let z = MC();
    let at = coopLoadT<MA>(&a[0], 16u);
    let bt = coopLoadT<MB>(&b[0], 16u);
    coopStoreT(coopMultiplyAdd(at, bt, z), &out[0], 16u);
    let ac = coopLoad<MA>(&a[0], 16u);
    coopStoreT(coopMultiplyAdd(ac, bt, z), &out[256], 16u);
    let bc = coopLoad<MB>(&b[0], 16u);
    coopStoreT(coopMultiplyAdd(at, bc, z), &out[512], 16u);
    coopStore(coopMultiplyAdd(at, bt, z), &out[768], 16u);
    for (var i = lid; i < 256u; i += 32u) {
        wa[(i / 16u) * 24u + i % 16u] = a[i];
        wb[(i / 16u) * 24u + i % 16u] = b[i];
    }
    workgroupBarrier();
    let aw = coopLoadT<MA>(&wa[0], 24u);
    let bw = coopLoadT<MB>(&wb[0], 24u);
    var c = coopMultiplyAdd(aw, bw, z);
    c = coopMultiplyAdd(aw, bw, c);
    coopStoreT(c, &wc[0], 20u);
    workgroupBarrier();
    for (var i = lid; i < 256u; i += 32u) {
        out[1024u + i] = wc[(i / 16u) * 20u + i % 16u];
    }
}
";

type Mat = [[f32; 16]; 16];

fn matmul(a: &Mat, b: &Mat) -> Mat {
    let mut c = [[0f32; 16]; 16];
    for i in 0..16 {
        for j in 0..16 {
            c[i][j] = (0..16).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

fn transpose(a: &Mat) -> Mat {
    let mut t = [[0f32; 16]; 16];
    for i in 0..16 {
        for j in 0..16 {
            t[j][i] = a[i][j];
        }
    }
    t
}

fn flat(m: &Mat) -> Vec<f32> {
    m.iter().flatten().copied().collect()
}

#[test]
fn coop_matrix_layouts_on_device() {
    let Some(c) = coop_ctx() else { return };
    let mut a = [[0f32; 16]; 16];
    let mut b = [[0f32; 16]; 16];
    for i in 0..16 {
        for j in 0..16 {
            a[i][j] = ((3 * i + 5 * j) % 7) as f32 - 3.0;
            b[i][j] = ((7 * i + 11 * j) % 5) as f32 - 2.0;
        }
    }
    let ta = Tensor::from_f32_as_f16(c, &flat(&a), Shape::vector(256)).unwrap();
    let tb = Tensor::from_f32_as_f16(c, &flat(&b), Shape::vector(256)).unwrap();
    let out = Tensor::zeros(c, Shape::vector(5 * 256), DType::F32).unwrap();
    let module = c.device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("coop probe"),
        source: wgpu::ShaderSource::Wgsl(PROBE.into()),
    });
    let pipeline = c
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("coop probe"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
    let bg = c.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("coop probe"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: ta.binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: tb.binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: out.binding(),
            },
        ],
    });
    let mut enc = c.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    c.queue.submit([enc.finish()]);
    let got = out.to_f32_vec(c).unwrap();
    let ab = matmul(&a, &b);
    let cands: Vec<(&str, Vec<f32>)> = vec![
        ("A*B", flat(&ab)),
        ("A^T*B", flat(&matmul(&transpose(&a), &b))),
        ("A*B^T", flat(&matmul(&a, &transpose(&b)))),
        ("A^T*B^T", flat(&matmul(&transpose(&a), &transpose(&b)))),
        ("(A*B)^T", flat(&transpose(&ab))),
        ("B*A", flat(&matmul(&b, &a))),
        ("2*A*B", flat(&ab).iter().map(|v| 2.0 * v).collect()),
        (
            "2*(A*B)^T",
            flat(&transpose(&ab)).iter().map(|v| 2.0 * v).collect(),
        ),
    ];
    let probes = [
        ("coopLoadT A, coopLoadT B, coopStoreT", "A*B"),
        ("coopLoad A, coopLoadT B, coopStoreT", "A^T*B"),
        ("coopLoadT A, coopLoad B, coopStoreT", "A*B^T"),
        ("coopLoadT A, coopLoadT B, coopStore", "(A*B)^T"),
        (
            "workgroup memory, strides 24/20, two multiply-adds",
            "2*A*B",
        ),
    ];
    let mut report = Vec::new();
    let mut ok = true;
    for (i, (what, want)) in probes.iter().enumerate() {
        let g = &got[i * 256..(i + 1) * 256];
        let matches: Vec<&str> = cands
            .iter()
            .filter(|(_, v)| v.as_slice() == g)
            .map(|(n, _)| *n)
            .collect();
        let good = matches.contains(want);
        ok &= good;
        report.push(format!(
            "  {what}: expected {want}, device gives {}",
            if matches.is_empty() {
                format!("none of the candidates (first values {:?})", &g[..8])
            } else {
                matches.join(" = ")
            }
        ));
    }
    eprintln!(
        "coop layout probe on {}:\n{}",
        c.describe(),
        report.join("\n")
    );
    assert!(ok, "coop layout semantics differ:\n{}", report.join("\n"));
}
