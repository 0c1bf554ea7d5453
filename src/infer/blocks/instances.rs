//! Instance ids of a volume predicted block by block: each chunk's own
//! watershed, then one join of the objects that cross chunk faces.
//!
//! # Per chunk
//! [`ChunkParts::new`] runs the seeded watershed of
//! [`crate::data::instances`] on the chunk's class probabilities alone
//! (no size filter yet: an object cut by a face is only a piece of itself).
//! The chunk is stored with its local ids marked *provisional*
//! (`local | PROVISIONAL`), and a small sidecar
//! `.wunet/instances/<z>.<y>.<x>.bin` keeps what the join needs: the size of
//! each local id, how many grew from a seed, and the six face layers (ids,
//! each flagged when the voxel is a seed voxel, `p(background) < 0.5` and
//! `p(interior) >` the seed threshold). The sidecar is written before the
//! chunk's done marker, so a done chunk always has one.
//!
//! # The join
//! Once every chunk of the region is done, [`join_streamed`] reads the
//! sidecars (memory: the faces of two chunks at a time and one number per
//! piece, never a chunk) and merges pieces with a union-find:
//! - two pieces whose **seed voxels touch across a face** are one object:
//!   in the whole volume their seeds are one connected seed component;
//! - a piece that **grew from no seed** in its chunk (the part of an object
//!   beyond the face its seed lies behind) joins the object of the piece it
//!   touches most across faces, in rounds outward from the seeded pieces
//!   (ties: the first piece in chunk order); touching unseeded pieces that
//!   no seeded piece reaches form one object, as an object component with
//!   no seed does in the whole-volume watershed.
//!
//! The size filter then applies to whole objects, and the objects are
//! numbered `1..N` in chunk order (C order of the chunk grid), then in
//! each chunk's scan order. Finally every chunk is rewritten with its final
//! ids. Provisional ids have the top bit set and final ids do not, so the
//! rewrite is idempotent: a worker killed mid-join, or two workers joining
//! at once, leave the same store as one uninterrupted join.
//!
//! # Against the whole-volume watershed
//! Objects whose seeds reach across a face are joined exactly as one
//! watershed would have them. What differs is local: near a face, voxels
//! are flooded from the seeds of their own chunk, so where two touching
//! objects meet at a face the dividing line can move by a few voxels; a
//! neck split (`neck_ratio`) sees a cut seed's depth within its chunk.
//! `tests/zarr_instances.rs` measures the agreement with the in-memory
//! `wunet predict --instances`.

use crate::data::instances::{
    is_seed_voxel, watershed_parts, WatershedOptions, BACKGROUND, INTERIOR,
};
use crate::data::zarr::ZarrSink;
use crate::data::ChannelVolume;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The top bit of a stored id: a chunk's local id, before the join.
pub const PROVISIONAL: u32 = 1 << 31;

/// The top bit of a face-layer value: a seed voxel.
const SEED: u32 = 1 << 31;

/// First word of a sidecar ("wuni"), then its format version.
const MAGIC: u32 = 0x696e_7577;
const VERSION: u32 = 1;

/// The watershed settings a store's instances were made with (a key of the
/// store's record: a rerun must use the same).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub seed_threshold: f32,
    pub neck_ratio: f32,
    pub min_seed: usize,
    pub min_size: usize,
}

impl InstanceRecord {
    pub fn of(o: &WatershedOptions) -> Self {
        InstanceRecord {
            seed_threshold: o.seed_threshold,
            neck_ratio: o.neck_ratio,
            min_seed: o.min_seed,
            min_size: o.min_size,
        }
    }

    /// The options of each chunk's watershed: no size filter (the join
    /// applies it to whole objects).
    pub fn chunk_options(&self) -> WatershedOptions {
        WatershedOptions {
            seed_threshold: self.seed_threshold,
            neck_ratio: self.neck_ratio,
            min_seed: self.min_seed,
            min_size: 1,
        }
    }
}

/// What the join needs of one chunk (its sidecar).
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkSummary {
    /// The chunk's valid region (inside the volume and the region), `(z, y, x)`.
    pub dims: [usize; 3],
    /// Voxels of local id `k + 1`.
    pub sizes: Vec<u32>,
    /// Local ids `1..=seeded` grew from a seed; the others from none.
    pub seeded: u32,
    /// `faces[2 * axis + side]`: the layer at the low (side 0) or high
    /// (side 1) end of `axis` (empty where no chunks meet along it), the
    /// other two axes in order; local ids,
    /// with the top bit set on seed voxels.
    pub faces: [Vec<u32>; 6],
}

/// One chunk's watershed: its local ids (`0` background, `1..=n`) and summary.
#[derive(Clone, Debug)]
pub struct ChunkParts {
    pub ids: Vec<u32>,
    pub summary: ChunkSummary,
}

impl ChunkParts {
    /// Run the chunk's watershed on its 3-class probabilities; `joined[a]`:
    /// whether chunks meet along axis `a` (else its faces are not kept: a
    /// 2D store's z faces would be the whole chunk twice).
    pub fn new(probs: &ChannelVolume, rec: &InstanceRecord, joined: [bool; 3]) -> Result<Self> {
        let (ids, seeded) = watershed_parts(probs, &rec.chunk_options())?;
        let dims = ids.dims;
        let n = ids.data.iter().copied().max().unwrap_or(0).max(0) as usize;
        if n as u64 >= PROVISIONAL as u64 {
            return Err(Error::Other(format!(
                "instances: {n} objects in one chunk {dims:?}; give a smaller --chunk"
            )));
        }
        let ids: Vec<u32> = ids.data.iter().map(|&v| v.max(0) as u32).collect();
        let mut sizes = vec![0u32; n];
        for &v in ids.iter().filter(|&&v| v > 0) {
            sizes[v as usize - 1] += 1;
        }
        let bg = probs.channel(BACKGROUND as usize)?;
        let interior = probs.channel(INTERIOR as usize)?;
        let flagged = |i: usize| {
            let seed = is_seed_voxel(bg.data[i], interior.data[i], rec.seed_threshold);
            ids[i] | if seed && ids[i] > 0 { SEED } else { 0 }
        };
        let faces = std::array::from_fn(|f| match joined[f / 2] {
            true => face_indices(dims, f / 2, f % 2).map(flagged).collect(),
            false => Vec::new(),
        });
        Ok(ChunkParts {
            ids,
            summary: ChunkSummary {
                dims,
                sizes,
                seeded: seeded as u32,
                faces,
            },
        })
    }

    /// The ids as stored before the join (`local | PROVISIONAL`, 0 kept).
    pub fn provisional(&self) -> Vec<u32> {
        self.ids
            .iter()
            .map(|&v| if v > 0 { v | PROVISIONAL } else { 0 })
            .collect()
    }
}

/// Linear indices of the layer at the low (`side` 0) or high (1) end of
/// `axis` in a `dims` box, the other two axes in order.
fn face_indices(dims: [usize; 3], axis: usize, side: usize) -> impl Iterator<Item = usize> {
    let fixed = if side == 0 { 0 } else { dims[axis] - 1 };
    let (a, b) = match axis {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    (0..dims[a]).flat_map(move |i| {
        (0..dims[b]).map(move |j| {
            let mut p = [0usize; 3];
            p[axis] = fixed;
            p[a] = i;
            p[b] = j;
            (p[0] * dims[1] + p[1]) * dims[2] + p[2]
        })
    })
}

/// The join's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Joined {
    /// Per chunk (in the order given), the final id of local id `k + 1`
    /// (0: dropped by the size filter).
    pub maps: Vec<Vec<u32>>,
    pub objects: usize,
    /// Pieces merged into another (across faces).
    pub merges: usize,
    /// Objects dropped by the size filter.
    pub dropped: usize,
}

/// Join the pieces of `chunks` (`(chunk index, summary)`, in chunk order);
/// see the module docs.
pub fn join(chunks: &[([usize; 3], &ChunkSummary)], min_size: usize) -> Result<Joined> {
    let index: Vec<[usize; 3]> = chunks.iter().map(|c| c.0).collect();
    join_streamed(&index, |k| Ok(chunks[k].1.clone()), min_size)
}

/// As [`join`], reading the summary of `chunks[k]` with `read(k)` each time
/// it is needed: the faces of two chunks in memory at a time, and the
/// sizes of every piece (a volume's faces may not fit).
pub fn join_streamed(
    chunks: &[[usize; 3]],
    read: impl Fn(usize) -> Result<ChunkSummary>,
    min_size: usize,
) -> Result<Joined> {
    let pieces: Vec<ChunkSummary> = (0..chunks.len())
        .map(|k| {
            read(k).map(|s| ChunkSummary {
                faces: Default::default(),
                ..s
            })
        })
        .collect::<Result<_>>()?;
    let list: Vec<([usize; 3], &ChunkSummary)> = chunks.iter().copied().zip(&pieces).collect();
    let offsets: Vec<usize> = pieces
        .iter()
        .scan(0, |o, s| {
            let at = *o;
            *o += s.sizes.len();
            Some(at)
        })
        .collect();
    let total = pieces.iter().map(|s| s.sizes.len()).sum();
    let mut uf = UnionFind::new(total);
    let contacts = face_contacts(chunks, &read, &offsets, &mut uf)?;
    attach_unseeded(&list, &offsets, &contacts, &mut uf);
    Ok(number(&list, &offsets, &mut uf, min_size))
}

/// Union the pieces whose seed voxels touch across a face; returns the
/// contact counts of every pair of pieces that touch.
fn face_contacts(
    chunks: &[[usize; 3]],
    read: &impl Fn(usize) -> Result<ChunkSummary>,
    offsets: &[usize],
    uf: &mut UnionFind,
) -> Result<HashMap<(usize, usize), u32>> {
    let at: HashMap<[usize; 3], usize> = chunks.iter().enumerate().map(|(k, &c)| (c, k)).collect();
    let mut contacts = HashMap::new();
    for (p, ci) in chunks.iter().enumerate() {
        let s = read(p)?;
        for axis in 0..3 {
            let mut next = *ci;
            next[axis] += 1;
            let Some(&q) = at.get(&next) else { continue };
            let t = read(q)?;
            let (hi, lo) = (&s.faces[2 * axis + 1], &t.faces[2 * axis]);
            if hi.len() != lo.len() {
                return Err(Error::Other(format!(
                    "instances: the faces of chunks {ci:?} and {next:?} differ in size ({} and {} voxels); the store is damaged, predict it again",
                    hi.len(),
                    lo.len()
                )));
            }
            for (&u, &v) in hi.iter().zip(lo) {
                let (iu, iv) = ((u & !SEED) as usize, (v & !SEED) as usize);
                if iu == 0 || iv == 0 {
                    continue;
                }
                let (nu, nv) = (offsets[p] + iu - 1, offsets[q] + iv - 1);
                if u & SEED != 0 && v & SEED != 0 {
                    uf.union(nu, nv);
                }
                *contacts.entry((nu, nv)).or_insert(0) += 1;
            }
        }
    }
    Ok(contacts)
}

/// The pieces that grew from no seed join, round by round, the object of
/// the already placed piece they touch most (a flood over the pieces from
/// the seeded ones, as the watershed floods voxels from the seeds); pieces
/// that no seeded piece reaches through other pieces form objects of their
/// own, one per group of touching pieces.
fn attach_unseeded(
    chunks: &[([usize; 3], &ChunkSummary)],
    offsets: &[usize],
    contacts: &HashMap<(usize, usize), u32>,
    uf: &mut UnionFind,
) {
    let total = uf.parent.len();
    let mut placed = vec![false; total];
    for (k, (_, s)) in chunks.iter().enumerate() {
        placed[offsets[k]..offsets[k] + s.seeded as usize].fill(true);
    }
    let mut touching: Vec<Vec<(usize, u32)>> = vec![Vec::new(); total];
    for (&(a, b), &n) in contacts {
        touching[a].push((b, n));
        touching[b].push((a, n));
    }
    loop {
        // this round: every unplaced piece next to a placed one
        let round: Vec<(usize, usize)> = (0..total)
            .filter(|&x| !placed[x])
            .filter_map(|x| {
                touching[x]
                    .iter()
                    .filter(|&&(o, _)| placed[o])
                    .max_by_key(|&&(o, n)| (n, std::cmp::Reverse(o)))
                    .map(|&(o, _)| (x, o))
            })
            .collect();
        if round.is_empty() {
            break;
        }
        for (x, o) in round {
            uf.union(x, o);
            placed[x] = true;
        }
    }
    for x in (0..total).filter(|&x| !placed[x]) {
        for &(o, _) in &touching[x] {
            uf.union(x, o);
        }
    }
}

/// Final ids: whole objects below `min_size` dropped, the others `1..N` in
/// piece order.
fn number(
    chunks: &[([usize; 3], &ChunkSummary)],
    offsets: &[usize],
    uf: &mut UnionFind,
    min_size: usize,
) -> Joined {
    let total = uf.parent.len();
    let mut size = vec![0u64; total];
    for (k, (_, s)) in chunks.iter().enumerate() {
        for (i, &v) in s.sizes.iter().enumerate() {
            size[uf.find(offsets[k] + i)] += v as u64;
        }
    }
    // per root: its final id (0: dropped), set on its first piece
    let mut id: Vec<Option<u32>> = vec![None; total];
    let (mut next, mut dropped, mut roots) = (0u32, 0usize, 0usize);
    let mut maps = Vec::with_capacity(chunks.len());
    for (k, (_, s)) in chunks.iter().enumerate() {
        let mut map = Vec::with_capacity(s.sizes.len());
        for i in 0..s.sizes.len() {
            let r = uf.find(offsets[k] + i);
            roots += usize::from(r == offsets[k] + i);
            let v = match id[r] {
                Some(v) => v,
                None if size[r] >= min_size.max(1) as u64 => {
                    next += 1;
                    next
                }
                None => {
                    dropped += 1;
                    0
                }
            };
            id[r] = Some(v);
            map.push(v);
        }
        maps.push(map);
    }
    Joined {
        maps,
        objects: next as usize,
        merges: total - roots,
        dropped,
    }
}

/// Union-find over pieces, the smaller index as the root.
struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n).collect(),
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// A stored chunk's values with the provisional ids mapped to final ones.
pub fn relabel(values: &mut [u32], map: &[u32]) -> Result<bool> {
    let mut changed = false;
    for v in values.iter_mut().filter(|v| **v & PROVISIONAL != 0) {
        let local = (*v & !PROVISIONAL) as usize;
        *v = *map.get(local.wrapping_sub(1)).ok_or_else(|| {
            Error::Other(format!(
                "instances: a stored id {local} beyond the chunk's {} pieces; the store is damaged, predict it again",
                map.len()
            ))
        })?;
        changed = true;
    }
    Ok(changed)
}

/// What [`finish`] did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JoinReport {
    pub objects: usize,
    pub merges: usize,
    pub dropped: usize,
    /// Chunks rewritten with final ids by this run (0: joined before).
    #[serde(skip)]
    pub rewritten: usize,
}

/// The marker of a finished join (its report, as JSON).
fn joined_marker(root: &Path) -> PathBuf {
    root.join(".wunet/instances/joined.json")
}

/// The report of a finished join of the store at `root`, if any.
pub fn joined(root: &Path) -> Result<Option<JoinReport>> {
    let path = joined_marker(root);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::file(&path, format!("damaged join record: {e}")))
}

/// Join the pieces of every chunk of the label store `labels` (at `root`;
/// `chunks`: all of the region's, every one done; `index`: a chunk's index
/// in the array) and rewrite the chunks with final ids; a join already
/// finished is reported, not redone.
pub fn finish(
    root: &Path,
    labels: &ZarrSink,
    chunks: &[[usize; 3]],
    min_size: usize,
    index: impl Fn([usize; 3]) -> Vec<u64>,
) -> Result<JoinReport> {
    if let Some(r) = joined(root)? {
        return Ok(r);
    }
    let j = join_streamed(chunks, |k| read_summary(root, chunks[k]), min_size)?;
    let mut rewritten = 0;
    for (&c, map) in chunks.iter().zip(&j.maps) {
        let mut values: Vec<u32> = labels.read_chunk(&index(c))?;
        if relabel(&mut values, map)? {
            labels.store_chunk(&index(c), &values)?;
            rewritten += 1;
            super::fault_point("WUNET_FAULT_ABORT_IN_JOIN", rewritten);
        }
    }
    let report = JoinReport {
        objects: j.objects,
        merges: j.merges,
        dropped: j.dropped,
        rewritten,
    };
    let json = serde_json::to_string(&report).map_err(|e| Error::Other(e.to_string()))?;
    crate::fsutil::write_atomic(&joined_marker(root), json.as_bytes())?;
    Ok(report)
}

/// The sidecar of chunk `c` in the label store at `root`.
pub fn sidecar(root: &Path, c: [usize; 3]) -> PathBuf {
    root.join(".wunet/instances")
        .join(format!("{}.{}.{}.bin", c[0], c[1], c[2]))
}

/// Write a chunk's summary (atomically).
pub fn write_summary(root: &Path, c: [usize; 3], s: &ChunkSummary) -> Result<()> {
    let mut w = vec![MAGIC, VERSION, s.sizes.len() as u32, s.seeded];
    w.extend(s.dims.iter().map(|&d| d as u32));
    w.extend(&s.sizes);
    w.extend(s.faces.iter().map(|f| f.len() as u32));
    for f in &s.faces {
        w.extend(f);
    }
    let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    crate::fsutil::write_atomic(&sidecar(root, c), &bytes)
}

/// Read a chunk's summary back; errors name the file.
pub fn read_summary(root: &Path, c: [usize; 3]) -> Result<ChunkSummary> {
    let path = sidecar(root, c);
    let bytes = std::fs::read(&path).map_err(|e| Error::file(&path, e))?;
    let damaged = |what: &str| {
        Error::file(
            &path,
            format!("damaged instance sidecar ({what}); predict the store again"),
        )
    };
    if bytes.len() % 4 != 0 {
        return Err(damaged("not whole 32-bit words"));
    }
    let w: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if w.len() < 13 || w[0] != MAGIC || w[1] != VERSION {
        return Err(damaged("no wunet header"));
    }
    let (n, seeded) = (w[2] as usize, w[3]);
    let dims = [w[4] as usize, w[5] as usize, w[6] as usize];
    let lens_at = 7 + n;
    let lens: Vec<usize> = w
        .get(lens_at..lens_at + 6)
        .ok_or_else(|| damaged("short"))?
        .iter()
        .map(|&l| l as usize)
        .collect();
    // each face: whole, or not kept (an axis along which no chunks meet)
    let fits = (0..6).all(|f| lens[f] == 0 || lens[f] == face_indices(dims, f / 2, f % 2).count());
    if !fits || w.len() != lens_at + 6 + lens.iter().sum::<usize>() || seeded as usize > n {
        return Err(damaged("sizes do not fit"));
    }
    let mut at = lens_at + 6;
    let faces = std::array::from_fn(|f| {
        let face = w[at..at + lens[f]].to_vec();
        at += lens[f];
        face
    });
    Ok(ChunkSummary {
        dims,
        sizes: w[7..7 + n].to_vec(),
        seeded,
        faces,
    })
}

#[cfg(test)]
#[path = "instances_tests.rs"]
mod tests;
