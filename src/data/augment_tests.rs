//! Tests of [`super`]: resampling, flips and rotations, deformation, zoom.

use super::*;
use crate::data::synthetic::rng_for;

fn ramp(dims: [usize; 3]) -> Volume {
    let n = dims[0] * dims[1] * dims[2];
    Array3::from_vec(dims, (0..n).map(|i| i as f32).collect()).unwrap()
}

#[test]
fn cubic_weights_interpolate_and_sum_to_one() {
    let w = cubic_weights(11, 3);
    for i in 0..11 {
        let s: f32 = w[i * 3..i * 3 + 3].iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
    }
    // control points at 0, 5, 10 are hit exactly
    assert_eq!(&w[0..3], &[1.0, 0.0, 0.0]);
    assert_eq!(&w[15..18], &[0.0, 1.0, 0.0]);
    assert_eq!(&w[30..33], &[0.0, 0.0, 1.0]);
}

#[test]
fn field_reproduces_control_points_and_constants() {
    let grid = [1, 3, 3];
    let coarse: Vec<[f32; 3]> = (0..9).map(|i| [0.0, i as f32, -(i as f32)]).collect();
    let f = DisplacementField::from_coarse([1, 9, 5], grid, coarse).unwrap();
    assert_eq!(f.at(0, 4, 2), [0.0, 4.0, -4.0]);
    assert_eq!(f.at(0, 8, 4), [0.0, 8.0, -8.0]);
    let c =
        DisplacementField::from_coarse([4, 7, 6], [3, 3, 3], vec![[1.5, -2.0, 0.25]; 27]).unwrap();
    assert!(DisplacementField::from_coarse([4, 7, 6], [3, 3, 3], vec![[0.0; 3]; 26]).is_err());
    let v = c.at(2, 3, 5);
    assert!((v[0] - 1.5).abs() < 1e-6 && (v[1] + 2.0).abs() < 1e-6 && (v[2] - 0.25).abs() < 1e-6);
}

#[test]
fn identity_crop_is_exact() {
    let src = ramp([3, 7, 9]);
    let t = SpatialTransform::crop([1.0, 3.0, 4.0], [3, 7, 9]);
    let mut out = vec![0.0; src.len()];
    t.warp_linear(&src, [3, 7, 9], [0; 3], &mut out).unwrap();
    assert_eq!(out, src.data);
    // offset window and mirrored border vs crop_reflect
    let t = SpatialTransform::crop([0.5, 1.5, 0.0], [2, 6, 5]);
    let mut out = vec![0.0; 2 * 6 * 5];
    t.warp_linear(&src, [2, 6, 5], [0; 3], &mut out).unwrap();
    let want = crop_reflect(&src, [0, -1, -2], [2, 6, 5]).unwrap();
    assert!(
        t.warp_linear(&src, [2, 6, 5], [0, 1, 0], &mut out).is_err(),
        "window past the patch"
    );
    assert!(
        t.warp_linear(&src, [2, 6, 4], [0; 3], &mut out).is_err(),
        "output length"
    );
    assert_eq!(out, want.data);
}

#[test]
fn rotation_and_flip_are_permutations() {
    let src = ramp([1, 6, 6]);
    let opts = AugmentOptions {
        flip: [true; 3],
        rot90: true,
        affine: None,
        elastic: None,
        intensity: None,
    };
    for seed in 0..8 {
        let mut rng = rng_for(seed, 0);
        let t = SpatialTransform::random(&mut rng, [0.0, 2.5, 2.5], [1, 6, 6], &opts);
        let mut out = vec![0.0; 36];
        t.warp_linear(&src, [1, 6, 6], [0; 3], &mut out).unwrap();
        let mut sorted = out.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        assert_eq!(sorted, src.data, "seed {seed}");
        let mut lab = vec![0; 36];
        t.warp_nearest(&src.map(|&v| v as i32), [1, 6, 6], [0; 3], &mut lab)
            .unwrap();
        assert_eq!(lab.iter().map(|&v| v as f32).collect::<Vec<_>>(), out);
    }
}

#[test]
fn labels_follow_image_under_deformation() {
    // image = 10 * labels: nearest-sampled labels must agree with the
    // linearly sampled image wherever the image is not between classes.
    let mut lab = Array3::filled([1, 40, 40], 0i32);
    for y in 0..40 {
        for x in 0..40 {
            if (x / 8 + y / 8) % 2 == 0 {
                lab.data[y * 40 + x] = 1;
            }
        }
    }
    let img = lab.map(|&v| v as f32 * 10.0);
    let opts = AugmentOptions {
        elastic: Some(ElasticOptions::default()),
        ..AugmentOptions::none()
    };
    let mut rng = rng_for(5, 1);
    let t = SpatialTransform::random(&mut rng, [0.0, 19.5, 19.5], [1, 40, 40], &opts);
    assert!(t.field.is_some());
    let (mut oi, mut ol) = (vec![0.0; 30 * 30], vec![0; 30 * 30]);
    let mut full = vec![0.0; 1600];
    t.warp_linear(&img, [1, 40, 40], [0; 3], &mut full).unwrap();
    t.warp_nearest(&lab, [1, 30, 30], [0, 5, 5], &mut ol)
        .unwrap();
    t.warp_linear(&img, [1, 30, 30], [0, 5, 5], &mut oi)
        .unwrap();
    let mut moved = false;
    for y in 0..30 {
        for x in 0..30 {
            let i = y * 30 + x;
            assert_eq!(
                oi[i],
                full[(y + 5) * 40 + x + 5],
                "offset window must match the full patch"
            );
            if oi[i] < 0.1 || oi[i] > 9.9 {
                assert_eq!(ol[i], (oi[i] > 5.0) as i32);
            }
            moved |= ol[i] != lab.data[(y + 5) * 40 + x + 5];
        }
    }
    assert!(moved, "the deformation should move something");
}

#[test]
fn trilinear_is_exact_on_linear_functions_and_mirrors() {
    let f = |z: f32, y: f32, x: f32| 3.0 * z + 2.0 * y + x;
    let d = [4, 5, 6];
    let src = ramp(d).map(|&i| {
        let i = i as usize;
        f((i / 30) as f32, ((i / 6) % 5) as f32, (i % 6) as f32)
    });
    for p in [[0.5, 1.25, 2.75], [2.9, 3.99, 0.01], [1.0, 0.5, 4.5]] {
        assert!(
            (sample_linear(&src, p) - f(p[0], p[1], p[2])).abs() < 1e-4,
            "{p:?}"
        );
    }
    // mirrored: position -0.5 along z reads like +0.5
    let a = sample_linear(&src, [-0.5, 1.0, 2.0]);
    assert!((a - f(0.5, 1.0, 2.0)).abs() < 1e-4);
    // past the end (z = 3.5 of 0..=3) reads like 2.5
    let b = sample_linear(&src, [3.5, 1.0, 2.0]);
    assert!((b - f(2.5, 1.0, 2.0)).abs() < 1e-4);
}

#[test]
fn elastic_3d_moves_z_unless_in_plane() {
    let dims = [9, 11, 10];
    let mut rng = rng_for(3, 3);
    let full = DisplacementField::random(&mut rng, dims, &ElasticOptions::default());
    assert!(
        full.coarse.iter().any(|d| d[0].abs() > 0.5),
        "z displacements drawn"
    );
    assert_eq!(full.coarse.len(), 27);
    let plane = DisplacementField::random(
        &mut rng,
        dims,
        &ElasticOptions {
            in_plane: true,
            ..Default::default()
        },
    );
    assert!(plane.coarse.iter().all(|d| d[0] == 0.0) && plane.coarse.iter().any(|d| d[1] != 0.0));
    // a constant z shift of 1.5 applied to a z ramp: every voxel reads z + 1.5
    // (mirrored past the last section)
    let src = ramp(dims).map(|&i| (i as usize / 110) as f32);
    let shift = DisplacementField::from_coarse(dims, [3, 3, 3], vec![[1.5, 0.0, 0.0]; 27]).unwrap();
    let t = SpatialTransform {
        field: Some(shift),
        ..SpatialTransform::crop([4.0, 5.0, 4.5], dims)
    };
    let mut out = vec![0.0; 990];
    t.warp_linear(&src, dims, [0; 3], &mut out).unwrap();
    for z in 0..9 {
        let zs = z as f32 + 1.5;
        let want = if zs <= 8.0 { zs } else { 16.0 - zs };
        assert!(
            (out[z * 110 + 37] - want).abs() < 1e-4,
            "z {z}: {} vs {want}",
            out[z * 110 + 37]
        );
    }
}

/// `src` (1, n, n) resampled through `t` over the whole patch.
fn warp(t: &SpatialTransform, src: &Volume) -> Vec<f32> {
    let mut out = vec![0.0; src.len()];
    t.warp_linear(src, src.dims, [0; 3], &mut out).unwrap();
    out
}

#[test]
fn rotation_by_90_degrees_equals_rot90() {
    let n = 7;
    let src = ramp([1, n, n]);
    let c = (n as f32 - 1.0) / 2.0;
    let mut t = SpatialTransform::crop([0.0, c, c], [1, n, n]);
    t.rotate_zoom(std::f32::consts::FRAC_PI_2, 1.0);
    let out = warp(&t, &src);
    let mut lab = vec![0; n * n];
    t.warp_nearest(&src.map(|&v| v as i32), [1, n, n], [0; 3], &mut lab)
        .unwrap();
    // patch (y, x) reads source (c + (x - c)·(-1)... ): source y = c - (x - c), x = y
    for y in 0..n {
        for x in 0..n {
            let want = src.data[(n - 1 - x) * n + y];
            assert!((out[y * n + x] - want).abs() < 1e-3, "({y}, {x})");
            assert_eq!(lab[y * n + x] as f32, want, "nearest ({y}, {x})");
        }
    }
    // and it is one of the rot90 matrices' results
    let mut r = SpatialTransform::crop([0.0, c, c], [1, n, n]);
    r.matrix = [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]];
    let exact = warp(&r, &src);
    assert!(out.iter().zip(&exact).all(|(a, b)| (a - b).abs() < 1e-3));
}

#[test]
fn zoom_one_and_angle_zero_are_identity_and_zoom_magnifies() {
    let src = ramp([1, 9, 9]);
    let mut t = SpatialTransform::crop([0.0, 4.0, 4.0], [1, 9, 9]);
    t.rotate_zoom(0.0, 1.0);
    assert_eq!(warp(&t, &src), src.data);
    let opts = AugmentOptions {
        affine: Some(AffineOptions {
            rotate_prob: 0.0,
            zoom_prob: 1.0,
            zoom: (1.0, 1.0),
            ..Default::default()
        }),
        ..AugmentOptions::none()
    };
    let mut rng = rng_for(4, 4);
    let t = SpatialTransform::random(&mut rng, [0.0, 4.0, 4.0], [1, 9, 9], &opts);
    assert_eq!(warp(&t, &src), src.data, "zoom drawn from 1..1");
    // zoom 2: the x ramp (slope 1) reads with slope 1/2 around the centre
    let mut z = SpatialTransform::crop([0.0, 4.0, 4.0], [1, 9, 9]);
    z.rotate_zoom(0.0, 2.0);
    let out = warp(&z, &src);
    assert!((out[4 * 9 + 5] - out[4 * 9 + 4] - 0.5).abs() < 1e-5);
    assert!(
        (out[4 * 9 + 4] - src.data[4 * 9 + 4]).abs() < 1e-5,
        "centre fixed"
    );
    // zoom 0.5: slope 2
    let mut h = SpatialTransform::crop([0.0, 4.0, 4.0], [1, 9, 9]);
    h.rotate_zoom(0.0, 0.5);
    let out = warp(&h, &src);
    assert!((out[4 * 9 + 5] - out[4 * 9 + 4] - 2.0).abs() < 1e-5);
}

#[test]
fn labels_stay_aligned_and_in_the_class_set_under_rotation_and_zoom() {
    // three classes in blocks; image = 10 * class
    let mut lab = Array3::filled([1, 48, 48], 0i32);
    for y in 0..48 {
        for x in 0..48 {
            lab.data[y * 48 + x] = ((x / 12 + 2 * (y / 12)) % 3) as i32;
        }
    }
    // one indicator image per class: where the warped indicator is exactly 1,
    // every source voxel read was of that class, so the label must be it
    let ind: Vec<Volume> = (0..3)
        .map(|c| lab.map(|&v| f32::from(u8::from(v == c))))
        .collect();
    let opts = AugmentOptions {
        affine: Some(AffineOptions {
            rotate_prob: 1.0,
            zoom_prob: 1.0,
            ..Default::default()
        }),
        elastic: Some(ElasticOptions::default()),
        ..AugmentOptions::default()
    };
    let mut checked = 0;
    for seed in 0..10 {
        let mut rng = rng_for(seed, 9);
        let t = SpatialTransform::random(&mut rng, [0.0, 23.5, 23.5], [1, 40, 40], &opts);
        let mut ol = vec![0; 1600];
        t.warp_nearest(&lab, [1, 40, 40], [0; 3], &mut ol).unwrap();
        assert!(ol.iter().all(|v| (0..3).contains(v)), "labels stay classes");
        for (c, img) in ind.iter().enumerate() {
            let mut oi = vec![0.0; 1600];
            t.warp_linear(img, [1, 40, 40], [0; 3], &mut oi).unwrap();
            for i in 0..1600 {
                if oi[i] == 1.0 {
                    assert_eq!(ol[i], c as i32, "seed {seed} voxel {i}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 5000, "{checked}");
}

#[test]
fn in_plane_for_3d_patches() {
    // a 3D rotation and zoom leave z alone
    let mut t = SpatialTransform::crop([2.0, 4.0, 4.0], [5, 9, 9]);
    t.rotate_zoom(0.7, 1.3);
    assert_eq!(t.matrix[0], [1.0, 0.0, 0.0]);
    assert_eq!([t.matrix[1][0], t.matrix[2][0]], [0.0, 0.0]);
}
