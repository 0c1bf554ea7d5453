//! Instance segmentation, 2D and 3D: a boundary-aware 3-class target made
//! from instance ids, and a seeded watershed that turns the network's class
//! probabilities back into instance ids.
//!
//! # Why three classes (not distance or flow maps)
//! Background / interior / boundary, with boundary = the object voxels that
//! touch (face neighbour) another id or the background, as in the DSB 2018
//! "3-class U-Net" entries and Caicedo et al. 2019 (*Cytometry A* 95:952,
//! "Evaluation of deep learning strategies for nucleus segmentation in
//! fluorescence images"). It reuses this crate's softmax losses, metrics and
//! tiling unchanged, and works the same in 2D and 3D. StarDist's star-convex
//! distances need a non-maximum suppression over polyhedra in 3D, and
//! Cellpose's flows need their own regression loss and gradient tracking;
//! both would add a second output head and loss.
//!
//! # Post-processing
//! The *object* voxels are those with `p(background) < 0.5` (a two-class
//! decision, object against background, so a voxel the network splits
//! between interior and boundary still counts). Seeds are the face-connected
//! components of the confident interior, `p(interior) >` [`WatershedOptions::seed_threshold`]
//! (above 0.5, so that a thin bridge of doubtful interior between two
//! nuclei does not join their seeds). They grow by priority flood
//! (watershed) over the object voxels, highest `p(interior)` first, so the
//! voxels between touching objects are shared out to their nearer seed.
//! Object components that hold no seed (all boundary, e.g. a tiny object)
//! become objects of their own. Ids are `1..N` in scan order of the seeds,
//! 0 = background.

use super::weightmap::{connected_components, edt_sq};
use super::{numel, ChannelVolume, LabelVolume, Volume};
use crate::checks::{check_f64, Range};
use crate::error::{Error, Result};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Classes of the instance target.
pub const BACKGROUND: i32 = 0;
/// Object voxels whose face neighbours all carry the same id.
pub const INTERIOR: i32 = 1;
/// Object voxels next to another id or the background.
pub const BOUNDARY: i32 = 2;
/// Number of classes of the instance target.
pub const INSTANCE_CLASSES: usize = 3;

/// Face-neighbour offsets within `dims` (z only when the volume has depth).
fn face_offsets(dims: [usize; 3]) -> Vec<[isize; 3]> {
    let mut v = Vec::new();
    for axis in 0..3 {
        if dims[axis] > 1 {
            for s in [-1isize, 1] {
                let mut o = [0isize; 3];
                o[axis] = s;
                v.push(o);
            }
        }
    }
    v
}

/// Index of `(z, y, x) + o`, or `None` outside the volume.
fn neighbour(dims: [usize; 3], z: usize, y: usize, x: usize, o: [isize; 3]) -> Option<usize> {
    let p = [z as isize + o[0], y as isize + o[1], x as isize + o[2]];
    if (0..3).any(|a| p[a] < 0 || p[a] >= dims[a] as isize) {
        return None;
    }
    Some((p[0] as usize * dims[1] + p[1] as usize) * dims[2] + p[2] as usize)
}

/// The 3-class target of instance ids (0 = background): [`BOUNDARY`] where
/// an object voxel has a face neighbour with another id (the volume's edge
/// does not count), else [`INTERIOR`]; background stays [`BACKGROUND`].
pub fn instance_target(ids: &LabelVolume) -> LabelVolume {
    let dims = ids.dims;
    let offs = face_offsets(dims);
    let mut out = ids.map(|_| BACKGROUND);
    for z in 0..dims[0] {
        for y in 0..dims[1] {
            for x in 0..dims[2] {
                let i = ids.idx(z, y, x);
                let id = ids.data[i];
                if id == 0 {
                    continue;
                }
                let edge = offs
                    .iter()
                    .any(|&o| neighbour(dims, z, y, x, o).is_some_and(|j| ids.data[j] != id));
                out.data[i] = if edge { BOUNDARY } else { INTERIOR };
            }
        }
    }
    out
}

/// Refuse labels that are not instance ids: negative values, or a single
/// nonzero value that forms several separate objects (a class mask; give
/// the instance-id file instead). `what` names the file in the error.
pub fn check_instance_ids(what: &str, ids: &LabelVolume) -> Result<()> {
    if let Some(&v) = ids.data.iter().find(|&&v| v < 0) {
        return Err(Error::Other(format!(
            "{what}: --instances needs instance ids (0 = background, 1..N objects) but the labels hold the negative value {v}"
        )));
    }
    let mut nonzero = ids.data.iter().copied().filter(|&v| v != 0);
    let Some(first) = nonzero.next() else {
        return Ok(());
    };
    if nonzero.all(|v| v == first) {
        let mask: Vec<bool> = ids.data.iter().map(|&v| v != 0).collect();
        let (_, n) = connected_components(&mask, ids.dims, true)?;
        if n > 1 {
            return Err(Error::Other(format!(
                "{what}: --instances needs instance ids (one id per object, 0 = background), but every object holds the value {first} ({n} separate objects): this is a class mask; give the instance-id labels (e.g. *_instances.npy) or train without --instances"
            )));
        }
    }
    Ok(())
}

/// The default [`WatershedOptions::seed_threshold`].
pub const DEFAULT_SEED_THRESHOLD: f32 = 0.7;

/// The default [`WatershedOptions::neck_ratio`].
pub const DEFAULT_NECK_RATIO: f32 = 0.0;

/// The range of [`WatershedOptions::neck_ratio`] (0: no splitting).
pub const NECK_RATIO_RANGE: Range = Range::HalfOpen(0.0, 1.0);

/// Refuse a seed threshold outside [0.5, 1); the message starts with the value.
pub fn check_seed_threshold(t: f32) -> std::result::Result<(), String> {
    if (0.5..1.0).contains(&t) {
        Ok(())
    } else {
        Err(format!(
            "{t}: must be in [0.5, 1) (a probability of the interior class above one half)"
        ))
    }
}

/// The default smallest object of a model trained on `ids`: 1/20 of the
/// median object (in pixels / voxels), at least 1; 0 with no object.
/// Smaller predictions are specks, not objects (Cellpose's default drops
/// masks under 15 pixels, about 1/50 of its 30-pixel nuclei).
pub fn default_min_size<'a>(ids: impl IntoIterator<Item = &'a LabelVolume>) -> u64 {
    let mut sizes = Vec::new();
    for v in ids {
        let mut per = std::collections::HashMap::<i32, u64>::new();
        for &id in v.data.iter().filter(|&&id| id > 0) {
            *per.entry(id).or_default() += 1;
        }
        sizes.extend(per.into_values());
    }
    if sizes.is_empty() {
        return 0;
    }
    sizes.sort_unstable();
    (sizes[sizes.len() / 2] / 20).max(1)
}

/// Options of [`watershed_instances`].
#[derive(Clone, Copy, Debug)]
pub struct WatershedOptions {
    /// Seeds are the components of voxels with `p(interior)` above this,
    /// in [0.5, 1) (default [`DEFAULT_SEED_THRESHOLD`]).
    pub seed_threshold: f32,
    /// Seeds (interior components) smaller than this many voxels are not
    /// seeds (their voxels are flooded from a neighbouring seed, or form an
    /// unseeded object).
    pub min_seed: usize,
    /// Objects smaller than this many voxels are dropped (set to 0).
    pub min_size: usize,
    /// Neck splitting, in [0, 1) (0: off; default [`DEFAULT_NECK_RATIO`]):
    /// each seed component keeps as seeds only its voxels deeper than this
    /// share of its deepest voxel's distance to the component's edge, so
    /// that two nuclei joined by a neck thinner than that share of their
    /// radius become two seeds (the distance-transform split of a classic
    /// watershed, scaled per component).
    pub neck_ratio: f32,
}

impl Default for WatershedOptions {
    fn default() -> Self {
        WatershedOptions {
            seed_threshold: DEFAULT_SEED_THRESHOLD,
            min_seed: 1,
            min_size: 1,
            neck_ratio: DEFAULT_NECK_RATIO,
        }
    }
}

/// Instance ids (0 = background, `1..N`) from 3-class probabilities
/// (background, interior, boundary); see the module docs.
pub fn watershed_instances(probs: &ChannelVolume, opts: &WatershedOptions) -> Result<LabelVolume> {
    let (ids, _) = watershed_parts(probs, opts)?;
    Ok(drop_small(ids, opts.min_size))
}

/// Is a voxel of these class probabilities a seed voxel: an object voxel
/// (`p(background) < 0.5`) with `p(interior) > seed_threshold`?
pub fn is_seed_voxel(p_background: f32, p_interior: f32, seed_threshold: f32) -> bool {
    p_background < 0.5 && p_interior > seed_threshold
}

/// The watershed before the size filter: ids `1..=K` grew from the `K`
/// seeds, ids above `K` are object components that held no seed; returns
/// the ids and `K`. Block-wise prediction runs this per chunk and joins
/// the chunks' objects afterwards ([`crate::infer::blocks::instances`]).
pub fn watershed_parts(
    probs: &ChannelVolume,
    opts: &WatershedOptions,
) -> Result<(LabelVolume, usize)> {
    if probs.channels != INSTANCE_CLASSES
        || probs.data.len() != INSTANCE_CLASSES * numel(probs.dims)
    {
        return Err(Error::shape(
            "watershed_instances",
            format!(
                "{} channels of {:?}: expected {INSTANCE_CLASSES} (background, interior, boundary)",
                probs.channels, probs.dims
            ),
        ));
    }
    check_seed_threshold(opts.seed_threshold)
        .map_err(|m| Error::Other(format!("instances: seed threshold {m}")))?;
    check_f64(
        "instances: neck ratio",
        opts.neck_ratio as f64,
        NECK_RATIO_RANGE,
    )?;
    let background = probs.channel(BACKGROUND as usize)?;
    let interior = probs.channel(INTERIOR as usize)?;
    let object: Vec<bool> = background.data.iter().map(|&p| p < 0.5).collect();
    let seeds = seed_labels(&interior, &background, opts)?;
    let seeded = seeds.data.iter().copied().max().unwrap_or(0).max(0) as usize;
    let mut ids = flood(&seeds, &object, &interior.data);
    label_unseeded(&mut ids, &object)?;
    Ok((ids, seeded))
}

/// Components of the object voxels with `p(interior) > seed_threshold` that
/// hold at least `min_seed` voxels, `1..K`.
fn seed_labels(
    interior: &Volume,
    background: &Volume,
    opts: &WatershedOptions,
) -> Result<LabelVolume> {
    let mask: Vec<bool> = interior
        .data
        .iter()
        .zip(&background.data)
        .map(|(&p, &b)| is_seed_voxel(b, p, opts.seed_threshold))
        .collect();
    let (mut cc, mut n) = connected_components(&mask, interior.dims, false)?;
    if opts.neck_ratio > 0.0 {
        (cc, n) = split_necks(&cc, n, opts.neck_ratio)?;
    }
    let mut size = vec![0usize; n + 1];
    for &v in &cc.data {
        size[v as usize] += 1;
    }
    let mut remap = vec![0i32; n + 1];
    let mut next = 0;
    for (id, &s) in size.iter().enumerate().skip(1) {
        if s >= opts.min_seed.max(1) {
            next += 1;
            remap[id] = next;
        }
    }
    Ok(cc.map(|&v| remap[v as usize]))
}

/// The components of the voxels of `cc` (components `1..=n`) whose
/// distance to their component's edge exceeds `ratio` times the deepest
/// distance in that component, and their count. Every component keeps its
/// deepest voxel, so none is lost; a component with two thick parts joined
/// by a thin neck becomes two. The volume's own border is not an edge.
fn split_necks(cc: &LabelVolume, n: usize, ratio: f32) -> Result<(LabelVolume, usize)> {
    let edge: Vec<bool> = cc.data.iter().map(|&v| v == 0).collect();
    let depth = edt_sq(&edge, cc.dims, [1.0; 3])?;
    let mut deepest = vec![0.0f32; n + 1];
    for (&c, &d) in cc.data.iter().zip(&depth) {
        let c = c as usize;
        deepest[c] = deepest[c].max(d);
    }
    let r2 = ratio * ratio;
    let core: Vec<bool> = cc
        .data
        .iter()
        .zip(&depth)
        .map(|(&c, &d)| c > 0 && d >= r2 * deepest[c as usize])
        .collect();
    connected_components(&core, cc.dims, false)
}

/// Priority flood from `seeds` into the `object` voxels, cheapest
/// `1 - interior` first (ties: first queued).
fn flood(seeds: &LabelVolume, object: &[bool], interior: &[f32]) -> LabelVolume {
    let dims = seeds.dims;
    let offs = face_offsets(dims);
    let mut ids = seeds.clone();
    let mut heap = BinaryHeap::new();
    let cost = |i: usize| ((1.0 - interior[i].clamp(0.0, 1.0)) * 1e6) as u32;
    let mut order = 0u64;
    for (i, &v) in seeds.data.iter().enumerate() {
        if v > 0 {
            heap.push(Reverse((0u32, order, i)));
            order += 1;
        }
    }
    while let Some(Reverse((_, _, i))) = heap.pop() {
        let (z, y, x) = (i / (dims[1] * dims[2]), i / dims[2] % dims[1], i % dims[2]);
        for &o in &offs {
            if let Some(j) = neighbour(dims, z, y, x, o) {
                if object[j] && ids.data[j] == 0 {
                    ids.data[j] = ids.data[i];
                    heap.push(Reverse((cost(j), order, j)));
                    order += 1;
                }
            }
        }
    }
    ids
}

/// Object components the flood did not reach become objects of their own.
fn label_unseeded(ids: &mut LabelVolume, object: &[bool]) -> Result<()> {
    let left: Vec<bool> = object
        .iter()
        .zip(&ids.data)
        .map(|(&o, &v)| o && v == 0)
        .collect();
    let (cc, _) = connected_components(&left, ids.dims, false)?;
    let base = ids.data.iter().copied().max().unwrap_or(0);
    for (v, &c) in ids.data.iter_mut().zip(&cc.data) {
        if c > 0 {
            *v = base + c;
        }
    }
    Ok(())
}

/// Remove objects below `min_size` voxels and renumber `1..N` in scan order.
fn drop_small(ids: LabelVolume, min_size: usize) -> LabelVolume {
    let max = ids.data.iter().copied().max().unwrap_or(0).max(0) as usize;
    let mut size = vec![0usize; max + 1];
    for &v in &ids.data {
        size[v as usize] += 1;
    }
    let mut remap = vec![0i32; max + 1];
    let mut next = 0;
    let mut out = ids;
    for v in out.data.iter_mut() {
        let old = *v as usize;
        if old == 0 || size[old] < min_size {
            *v = 0;
            continue;
        }
        if remap[old] == 0 {
            next += 1;
            remap[old] = next;
        }
        *v = remap[old];
    }
    out
}

#[cfg(test)]
#[path = "instances_tests.rs"]
mod tests;
