//! The chunked watershed and its join against the whole-volume watershed,
//! on synthetic balls that cross chunk faces; the sidecar format; the
//! idempotent relabelling.

use super::*;
use crate::data::instances::{instance_target, watershed_instances, BOUNDARY};
use crate::data::{numel, Array3, LabelVolume};
use std::collections::HashMap;

/// Balls `(centre z, y, x, radius)` as ids `1..`; a voxel within several
/// goes to the nearest centre (touching balls share a face).
fn balls(dims: [usize; 3], list: &[[f32; 4]]) -> LabelVolume {
    let mut ids = Array3::filled(dims, 0i32);
    for z in 0..dims[0] {
        for y in 0..dims[1] {
            for x in 0..dims[2] {
                let mut best = (f32::MAX, 0);
                for (k, b) in list.iter().enumerate() {
                    let d = (z as f32 - b[0]).powi(2)
                        + (y as f32 - b[1]).powi(2)
                        + (x as f32 - b[2]).powi(2);
                    if d <= b[3] * b[3] && d / (b[3] * b[3]) < best.0 {
                        best = (d / (b[3] * b[3]), k as i32 + 1);
                    }
                }
                let i = ids.idx(z, y, x);
                ids.data[i] = best.1;
            }
        }
    }
    ids
}

/// Confident class probabilities of the 3-class target of `ids`.
fn probs_of(ids: &LabelVolume) -> ChannelVolume {
    let t = instance_target(ids);
    let n = numel(ids.dims);
    let mut p = ChannelVolume::zeros(3, ids.dims);
    for (i, &c) in t.data.iter().enumerate() {
        let v = match c {
            BACKGROUND => [0.9, 0.05, 0.05],
            BOUNDARY => [0.05, 0.15, 0.8],
            _ => [0.05, 0.9, 0.05],
        };
        for (k, &pk) in v.iter().enumerate() {
            p.data[k * n + i] = pk;
        }
    }
    p
}

/// The box `[lo, lo + dims)` of `p`.
fn sub(p: &ChannelVolume, lo: [usize; 3], dims: [usize; 3]) -> ChannelVolume {
    let mut out = ChannelVolume::zeros(p.channels, dims);
    let (n, m) = (numel(p.dims), numel(dims));
    for k in 0..p.channels {
        for z in 0..dims[0] {
            for y in 0..dims[1] {
                for x in 0..dims[2] {
                    let s = ((z + lo[0]) * p.dims[1] + y + lo[1]) * p.dims[2] + x + lo[2];
                    out.data[k * m + (z * dims[1] + y) * dims[2] + x] = p.data[k * n + s];
                }
            }
        }
    }
    out
}

/// The chunked watershed: every chunk alone, the join, the relabelling.
fn chunked(p: &ChannelVolume, chunk: [usize; 3], rec: &InstanceRecord) -> (LabelVolume, Joined) {
    let grid: [usize; 3] = std::array::from_fn(|a| p.dims[a].div_ceil(chunk[a]));
    let mut parts = Vec::new();
    for z in 0..grid[0] {
        for y in 0..grid[1] {
            for x in 0..grid[2] {
                let c = [z, y, x];
                let lo: [usize; 3] = std::array::from_fn(|a| c[a] * chunk[a]);
                let dims: [usize; 3] = std::array::from_fn(|a| chunk[a].min(p.dims[a] - lo[a]));
                parts.push((
                    c,
                    lo,
                    ChunkParts::new(&sub(p, lo, dims), rec, [true; 3]).unwrap(),
                ));
            }
        }
    }
    let list: Vec<([usize; 3], &ChunkSummary)> =
        parts.iter().map(|(c, _, q)| (*c, &q.summary)).collect();
    let joined = join(&list, rec.min_size).unwrap();
    let mut out = Array3::filled(p.dims, 0i32);
    for ((_, lo, q), map) in parts.iter().zip(&joined.maps) {
        let mut v = q.provisional();
        assert!(relabel(&mut v, map).unwrap() || q.summary.sizes.is_empty());
        let d = q.summary.dims;
        for z in 0..d[0] {
            for y in 0..d[1] {
                for x in 0..d[2] {
                    let i = out.idx(z + lo[0], y + lo[1], x + lo[2]);
                    out.data[i] = v[(z * d[1] + y) * d[2] + x] as i32;
                }
            }
        }
    }
    (out, joined)
}

/// Whether `a` and `b` are the same partition (ids renamed; 0 is 0).
fn same_partition(a: &LabelVolume, b: &LabelVolume) -> bool {
    let (mut ab, mut ba) = (HashMap::new(), HashMap::new());
    a.data.iter().zip(&b.data).all(|(&x, &y)| {
        (x == 0) == (y == 0) && *ab.entry(x).or_insert(y) == y && *ba.entry(y).or_insert(x) == x
    })
}

fn rec(min_size: usize) -> InstanceRecord {
    InstanceRecord {
        seed_threshold: 0.7,
        neck_ratio: 0.0,
        min_seed: 1,
        min_size,
    }
}

#[test]
fn separate_objects_across_faces_equal_the_whole_volume_watershed() {
    let dims = [14, 23, 19];
    let mut ids = balls(
        dims,
        &[
            [5.0, 7.0, 6.5, 4.2],  // across z, y and x faces of 5x8x7 chunks
            [9.5, 16.0, 6.0, 3.6], // across a z face
            [6.0, 15.0, 15.0, 3.1],
            [11.0, 5.0, 14.0, 2.4],
        ],
    );
    let speck = ids.idx(0, 22, 0);
    ids.data[speck] = 9; // one voxel: dropped by min_size in both
    let p = probs_of(&ids);
    let opts = WatershedOptions {
        min_size: 3,
        ..rec(3).chunk_options()
    };
    let whole = watershed_instances(&p, &opts).unwrap();
    assert_eq!(whole.data.iter().copied().max(), Some(4));
    for chunk in [[5, 8, 7], [3, 23, 4], [14, 5, 19], [1, 1, 19]] {
        let (got, j) = chunked(&p, chunk, &rec(3));
        assert!(same_partition(&got, &whole), "chunk {chunk:?}");
        assert_eq!((j.objects, j.dropped), (4, 1), "chunk {chunk:?}");
        assert!(j.merges > 0, "chunk {chunk:?}: objects cross faces");
        // ids 1..N
        assert_eq!(got.data.iter().copied().max(), Some(4));
    }
}

#[test]
fn touching_objects_at_faces_agree_with_the_whole_volume_watershed() {
    let dims = [12, 30, 26];
    let list = [
        [6.0, 8.0, 8.0, 5.5],
        [6.0, 8.0, 17.0, 5.5], // touches the first; their contact crosses x faces
        [6.0, 19.0, 12.0, 6.0],
        [5.0, 22.0, 21.0, 4.5],
    ];
    let p = probs_of(&balls(dims, &list));
    let whole = watershed_instances(&p, &rec(1).chunk_options()).unwrap();
    assert_eq!(whole.data.iter().copied().max(), Some(4));
    for chunk in [[4, 10, 9], [12, 7, 13], [5, 30, 5]] {
        let (got, j) = chunked(&p, chunk, &rec(1));
        assert_eq!(j.objects, 4, "chunk {chunk:?}");
        // each chunked object's voxels: the share in its best whole-volume object
        let mut pairs: HashMap<(i32, i32), usize> = HashMap::new();
        for (&a, &b) in got.data.iter().zip(&whole.data) {
            if a > 0 {
                *pairs.entry((a, b)).or_default() += 1;
            }
        }
        let mut best: HashMap<i32, usize> = HashMap::new();
        for (&(a, _), &n) in &pairs {
            let e = best.entry(a).or_default();
            *e = (*e).max(n);
        }
        let objects = got.data.iter().filter(|&&v| v > 0).count();
        let agree = best.values().sum::<usize>() as f64 / objects as f64;
        assert!(agree >= 0.97, "chunk {chunk:?}: {agree:.4}");
    }
}

#[test]
fn join_rules_on_hand_made_faces() {
    // chunks along x with 3-voxel faces (dims 1x3x1); only x faces meet
    let summary = |sizes: Vec<u32>, seeded, lo: [u32; 3], hi: [u32; 3]| ChunkSummary {
        dims: [1, 3, 1],
        sizes,
        seeded,
        faces: [
            vec![0; 3],
            vec![0; 3],
            vec![0],
            vec![0],
            lo.to_vec(),
            hi.to_vec(),
        ],
    };
    let (x0, x1) = ([0, 0, 0], [0, 0, 1]);
    // seeds touching: one object
    let a = summary(vec![5], 1, [0; 3], [1 | SEED, 0, 0]);
    let b = summary(vec![4], 1, [1 | SEED, 0, 0], [0; 3]);
    let j = join(&[(x0, &a), (x1, &b)], 1).unwrap();
    assert_eq!(
        (j.maps.clone(), j.objects, j.merges),
        (vec![vec![1], vec![1]], 1, 1)
    );
    // touching, but not seed to seed: two objects (two nuclei meeting at a boundary)
    let b2 = summary(vec![4], 1, [1, 0, 0], [0; 3]);
    let j = join(&[(x0, &a), (x1, &b2)], 1).unwrap();
    assert_eq!(j.maps, vec![vec![1], vec![2]]);
    // an unseeded piece joins the piece it touches most (2 contacts against 1)
    let a3 = summary(vec![5, 6], 2, [0; 3], [1, 2, 2]);
    let b3 = summary(vec![3], 0, [1, 1, 1], [0; 3]);
    let j = join(&[(x0, &a3), (x1, &b3)], 1).unwrap();
    assert_eq!(j.maps, vec![vec![1, 2], vec![2]]);
    // unseeded pieces reached through another unseeded piece (round 2) join
    // the seeded object; unseeded pieces no seed reaches form one object
    let x2 = [0, 0, 2];
    let b5 = summary(vec![3], 0, [1, 0, 0], [1, 1, 1]);
    let c5 = summary(vec![4], 0, [1, 1, 1], [0; 3]);
    let a5 = summary(vec![5], 1, [0; 3], [1, 0, 0]);
    let j = join(&[(x0, &a5), (x1, &b5), (x2, &c5)], 1).unwrap();
    assert_eq!(
        (j.maps.clone(), j.objects),
        (vec![vec![1], vec![1], vec![1]], 1)
    );
    let j = join(&[(x1, &b5), (x2, &c5)], 1).unwrap();
    assert_eq!((j.maps.clone(), j.objects), (vec![vec![1], vec![1]], 1));
    // the size filter counts whole objects: 5 + 4 >= 9 kept; 4 alone dropped
    let j = join(&[(x0, &a), (x1, &b)], 9).unwrap();
    assert_eq!((j.objects, j.dropped), (1, 0));
    let j = join(&[(x0, &a), (x1, &b2)], 5).unwrap();
    assert_eq!((j.maps.clone(), j.dropped), (vec![vec![1], vec![0]], 1));
}

#[test]
fn relabelling_twice_is_relabelling_once() {
    let map = vec![3, 0, 1];
    let mut v = vec![0, 1 | PROVISIONAL, 2 | PROVISIONAL, 3 | PROVISIONAL];
    assert!(relabel(&mut v, &map).unwrap());
    assert_eq!(v, vec![0, 3, 0, 1]);
    let once = v.clone();
    assert!(!relabel(&mut v, &map).unwrap());
    assert_eq!(v, once);
    let mut bad = vec![9 | PROVISIONAL];
    assert!(relabel(&mut bad, &map)
        .unwrap_err()
        .to_string()
        .contains("damaged"));
}

#[test]
fn sidecars_round_trip_and_refuse_damage() {
    let dir = std::env::temp_dir().join(format!("wunet-inst-sidecar-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ids = balls([4, 9, 7], &[[2.0, 4.0, 3.0, 2.5]]);
    let parts = ChunkParts::new(&probs_of(&ids), &rec(1), [true, false, true]).unwrap();
    assert!(parts.summary.faces[2].is_empty() && !parts.summary.faces[0].is_empty());
    write_summary(&dir, [1, 0, 2], &parts.summary).unwrap();
    assert_eq!(read_summary(&dir, [1, 0, 2]).unwrap(), parts.summary);
    let path = sidecar(&dir, [1, 0, 2]);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 4);
    std::fs::write(&path, &bytes).unwrap();
    let e = read_summary(&dir, [1, 0, 2]).unwrap_err().to_string();
    assert!(e.contains("1.0.2.bin") && e.contains("damaged"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The real nuclei of ../shared (stage 8, 51x120x122, 8 nuclei) as a
/// perfect network's probabilities, cut into chunks of several shapes:
/// the join gives back the whole-volume watershed's objects.
#[test]
fn the_real_nuclei_cut_into_chunks_equal_the_whole_volume() {
    let f = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/mouse_embryo_nuclei3d/stage08_instances.npy");
    if !f.exists() {
        eprintln!("skip: {} is absent (../shared data)", f.display());
        return;
    }
    let ids = crate::data::io::read_labels(&f).unwrap();
    let p = probs_of(&ids);
    for neck_ratio in [0.0, 0.5] {
        let r = InstanceRecord {
            neck_ratio,
            ..rec(100)
        };
        let opts = WatershedOptions {
            min_size: 100,
            ..r.chunk_options()
        };
        let whole = watershed_instances(&p, &opts).unwrap();
        assert_eq!(whole.data.iter().copied().max(), Some(8));
        for chunk in [[16, 32, 32], [51, 40, 17], [7, 120, 30], [10, 10, 10]] {
            let (got, j) = chunked(&p, chunk, &r);
            assert_eq!(j.objects, 8, "neck {neck_ratio}, chunk {chunk:?}");
            assert!(
                same_partition(&got, &whole),
                "neck {neck_ratio}, chunk {chunk:?}"
            );
        }
    }
}
