//! Instance target and watershed on synthetic blobs, 2D and 3D.

use super::*;
use crate::data::Array3;

fn lv(dims: [usize; 3], v: Vec<i32>) -> LabelVolume {
    Array3::from_vec(dims, v).unwrap()
}

#[test]
fn target_marks_edges_between_ids_and_background() {
    // two touching 3x3 squares (ids 1, 2) in a 5x8 image
    let mut ids = lv([1, 5, 8], vec![0; 40]);
    for y in 1..4 {
        for x in 1..4 {
            ids.data[y * 8 + x] = 1;
            ids.data[y * 8 + x + 3] = 2;
        }
    }
    let t = instance_target(&ids);
    // centres interior, the shared column boundary on both sides, rims boundary
    assert_eq!(t.data[2 * 8 + 2], INTERIOR);
    assert_eq!(t.data[2 * 8 + 5], INTERIOR);
    assert_eq!((t.data[2 * 8 + 3], t.data[2 * 8 + 4]), (BOUNDARY, BOUNDARY));
    assert_eq!((t.data[8 + 1], t.data[0]), (BOUNDARY, BACKGROUND));
    assert_eq!(t.data.iter().filter(|&&c| c == INTERIOR).count(), 2);
    // the image edge is no boundary: a full-width object keeps its edge rows
    let full = lv([1, 3, 3], vec![1; 9]);
    assert!(instance_target(&full).data.iter().all(|&c| c == INTERIOR));
    // 3D: z neighbours count
    let cube = lv([3, 3, 3], vec![4; 27]);
    let mut holed = cube.clone();
    holed.data[0] = 0;
    let t = instance_target(&holed);
    assert_eq!(
        (t.data[1], t.data[9], t.data[13]),
        (BOUNDARY, BOUNDARY, INTERIOR)
    );
}

#[test]
fn ids_check_refuses_class_masks_and_negatives() {
    let two_blobs = lv([1, 1, 5], vec![1, 1, 0, 1, 1]);
    let e = check_instance_ids("m.png", &two_blobs)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m.png") && e.contains("class mask") && e.contains("2 separate"),
        "{e}"
    );
    assert!(check_instance_ids("a", &lv([1, 1, 5], vec![1, 1, 0, 2, 2])).is_ok());
    assert!(check_instance_ids("a", &lv([1, 1, 3], vec![255, 255, 0])).is_ok());
    assert!(check_instance_ids("a", &lv([1, 1, 3], vec![0; 3])).is_ok());
    let e = check_instance_ids("n.npy", &lv([1, 1, 2], vec![-1, 1]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("n.npy") && e.contains("-1"), "{e}");
}

/// One-hot-ish probabilities of a 3-class map (0.8 for the class).
fn probs_of(classes: &LabelVolume) -> ChannelVolume {
    let n = classes.data.len();
    let mut p = ChannelVolume::zeros(3, classes.dims);
    for (i, &c) in classes.data.iter().enumerate() {
        for k in 0..3 {
            p.data[k * n + i] = if k as i32 == c { 0.8 } else { 0.1 };
        }
    }
    p
}

/// Two touching discs (2D) or balls (3D) of radius r.
fn touching_blobs(dims: [usize; 3], r: f32) -> LabelVolume {
    let [d, h, w] = dims;
    let c = [d as f32 / 2.0 - 0.5, h as f32 / 2.0 - 0.5];
    let centres = [w as f32 / 2.0 - r, w as f32 / 2.0 + r - 1.0];
    let mut ids = lv(dims, vec![0; d * h * w]);
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                let dz = if d > 1 { z as f32 - c[0] } else { 0.0 };
                let dy = y as f32 - c[1];
                let (d1, d2) = (x as f32 - centres[0], x as f32 - centres[1]);
                let in1 = dz * dz + dy * dy + d1 * d1 <= r * r;
                let in2 = dz * dz + dy * dy + d2 * d2 <= r * r;
                let i = ids.idx(z, y, x);
                ids.data[i] = if in1 && (!in2 || d1.abs() <= d2.abs()) {
                    1
                } else if in2 {
                    2
                } else {
                    0
                };
            }
        }
    }
    ids
}

fn roundtrip(dims: [usize; 3], r: f32) {
    let ids = touching_blobs(dims, r);
    assert_eq!(ids.data.iter().copied().max(), Some(2));
    let target = instance_target(&ids);
    let got = watershed_instances(&probs_of(&target), &WatershedOptions::default()).unwrap();
    // the two objects come back, covering every object voxel, ids 1 and 2
    assert_eq!(got.data.iter().copied().max(), Some(2), "{dims:?}");
    let s = crate::data::instance_metrics::instance_scores(&got, &ids).unwrap();
    assert_eq!(
        (s.tp50, s.pred_objects, s.splits, s.merges),
        (2, 2, 0, 0),
        "{dims:?}"
    );
    assert!(s.ap50 == 1.0 && s.mean_ap > 0.9, "{s:?}");
    // touching objects are not merged by a plain threshold: the interior
    // components are separate, the boundary alone would join them
    let fg: Vec<bool> = ids.data.iter().map(|&v| v > 0).collect();
    let (_, n) = connected_components(&fg, dims, false).unwrap();
    assert_eq!(n, 1, "the blobs touch");
}

#[test]
fn watershed_separates_touching_blobs_2d() {
    roundtrip([1, 24, 40], 8.0);
}

#[test]
fn watershed_separates_touching_blobs_3d() {
    roundtrip([16, 16, 28], 6.0);
}

#[test]
fn watershed_unseeded_objects_small_objects_and_bad_channels() {
    // a 1x2 object predicted all boundary has no seed: it is its own object
    let classes = lv(
        [1, 3, 6],
        vec![0, 0, 0, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    );
    let got = watershed_instances(&probs_of(&classes), &WatershedOptions::default()).unwrap();
    assert_eq!(got.data.iter().copied().max(), Some(2));
    assert_eq!(
        (got.data[7], got.data[8], got.data[17]),
        (got.data[7], got.data[7], got.data[17])
    );
    assert_ne!(got.data[7], got.data[17]);
    let opts = WatershedOptions {
        min_size: 2,
        ..WatershedOptions::default()
    };
    let got = watershed_instances(&probs_of(&classes), &opts).unwrap();
    assert_eq!(got.data.iter().copied().max(), Some(1));
    assert_eq!(got.data[17], 0);
    let two = ChannelVolume::zeros(2, [1, 2, 2]);
    assert!(watershed_instances(&two, &opts).is_err());
}

/// Probabilities (background, interior, boundary) along a 1 x 1 x n line.
fn line_probs(p: &[[f32; 3]]) -> ChannelVolume {
    let n = p.len();
    let mut v = ChannelVolume::zeros(3, [1, 1, n]);
    for (i, q) in p.iter().enumerate() {
        for (k, &pk) in q.iter().enumerate() {
            v.data[k * n + i] = pk;
        }
    }
    v
}

#[test]
fn doubtful_interior_bridges_do_not_join_seeds() {
    let sure = [0.05, 0.9, 0.05];
    let doubt = [0.3, 0.6, 0.1]; // argmax interior, but not confident
    let split = [0.4, 0.3, 0.3]; // argmax background, p(background) < 0.5
    let bg = [0.9, 0.05, 0.05];
    let p = line_probs(&[bg, sure, sure, doubt, sure, sure, split, bg]);
    let got = watershed_instances(&p, &WatershedOptions::default()).unwrap();
    // two seeds (the confident runs), the bridge flooded from one of them,
    // and the undecided voxel is object, not background
    assert_eq!(got.data, vec![0, 1, 1, got.data[3], 2, 2, 2, 0]);
    assert!(got.data[3] == 1 || got.data[3] == 2);
    // a threshold at the bridge's level joins them into one object
    let low = WatershedOptions {
        seed_threshold: 0.55,
        ..WatershedOptions::default()
    };
    let got = watershed_instances(&p, &low).unwrap();
    assert_eq!(got.data, vec![0, 1, 1, 1, 1, 1, 1, 0]);
    for t in [0.4, 1.0, f32::NAN] {
        let bad = WatershedOptions {
            seed_threshold: t,
            ..WatershedOptions::default()
        };
        let e = watershed_instances(&p, &bad).unwrap_err().to_string();
        assert!(e.contains("seed threshold"), "{e}");
    }
}

#[test]
fn default_min_size_is_a_twentieth_of_the_median_object() {
    // objects of 1, 40 and 100 voxels over two volumes: median 40 -> 2
    let mut a = lv([1, 1, 141], vec![0; 141]);
    a.data[0] = 3;
    for v in &mut a.data[1..41] {
        *v = 1;
    }
    let mut b = lv([1, 1, 100], vec![2; 100]);
    assert_eq!(default_min_size([&a, &b]), 2);
    // small objects only: at least 1; no object: 0
    b.data.iter_mut().for_each(|v| *v = 0);
    b.data[5] = 1;
    assert_eq!(default_min_size([&b]), 1);
    assert_eq!(default_min_size([&lv([1, 1, 4], vec![0; 4])]), 0);
}

/// Confident interior (0.9) inside `inside(z, y, x)`, background elsewhere.
fn shape_probs(dims: [usize; 3], inside: impl Fn(f32, f32, f32) -> bool) -> ChannelVolume {
    let n = numel(dims);
    let mut v = ChannelVolume::zeros(3, dims);
    for i in 0..n {
        let (z, y, x) = (i / (dims[1] * dims[2]), i / dims[2] % dims[1], i % dims[2]);
        let p = if inside(z as f32, y as f32, x as f32) {
            [0.05, 0.9, 0.05]
        } else {
            [0.9, 0.05, 0.05]
        };
        for (k, &pk) in p.iter().enumerate() {
            v.data[k * n + i] = pk;
        }
    }
    v
}

#[test]
fn neck_splitting_cuts_thin_bridges_and_keeps_whole_ellipsoids() {
    let count = |p: &ChannelVolume, r: f32| {
        let opts = WatershedOptions {
            neck_ratio: r,
            ..WatershedOptions::default()
        };
        let ids = watershed_instances(p, &opts).unwrap();
        (ids.data.iter().copied().max().unwrap(), ids)
    };
    // two balls of radius 6 (centres x = 8, 24) joined by a rod of radius 1.5
    let ball = |z: f32, y: f32, x: f32, cx: f32| {
        (z - 8.0).powi(2) + (y - 8.0).powi(2) + (x - cx).powi(2) <= 36.0
    };
    let rod = |z: f32, y: f32| (z - 8.0).powi(2) + (y - 8.0).powi(2) <= 2.25;
    let dumbbell = shape_probs([17, 17, 33], |z, y, x| {
        ball(z, y, x, 8.0) || ball(z, y, x, 24.0) || (rod(z, y) && (8.0..=24.0).contains(&x))
    });
    assert_eq!(count(&dumbbell, 0.0).0, 1, "no splitting: one object");
    let (n, ids) = count(&dumbbell, 0.5);
    assert_eq!(n, 2, "split at the neck");
    let at = |z: usize, y: usize, x: usize| ids.data[(z * 17 + y) * 33 + x];
    assert_ne!(at(8, 8, 8), at(8, 8, 24));
    // every object voxel is kept: the neck goes to one side or the other
    let object = dumbbell.data[..numel([17, 17, 33])]
        .iter()
        .filter(|&&p| p < 0.5)
        .count();
    assert_eq!(ids.data.iter().filter(|&&v| v > 0).count(), object);
    // an elongated ellipsoid (semi-axes 4, 4, 12) stays whole
    let cigar = shape_probs([11, 11, 31], |z, y, x| {
        ((z - 5.0) / 4.0).powi(2) + ((y - 5.0) / 4.0).powi(2) + ((x - 15.0) / 12.0).powi(2) <= 1.0
    });
    assert_eq!(count(&cigar, 0.5).0, 1);
    for r in [-0.1, 1.0, f32::NAN] {
        let opts = WatershedOptions {
            neck_ratio: r,
            ..WatershedOptions::default()
        };
        let e = watershed_instances(&cigar, &opts).unwrap_err().to_string();
        assert!(e.contains("neck ratio"), "{e}");
    }
}
