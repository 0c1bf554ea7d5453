//! Random training patches with foreground oversampling, and a background
//! thread that prepares batches ahead of the GPU.
//!
//! Patch `i` of batch `b` is a pure function of `(seed, b · batch_size + i)`
//! (its own ChaCha8 stream), so a run is reproducible whatever the prefetch
//! depth or timing.
//!
//! Sampling: a sample is drawn uniformly; with probability `fg_prob` (nnU-Net:
//! 0.33) the patch is centred on a random voxel of a random foreground class
//! (a class > 0 present in that sample), otherwise its position is uniform.
//! The label patch is kept inside the image when it fits (it is clamped after
//! centring); the input patch extends `margin` beyond it on every side and is
//! mirrored where it leaves the image. Then [`super::augment`] draws flips,
//! rotations, zoom, deformation and the intensity transforms (each image's
//! min..max and subsample for the gamma's `image` / `image-zscore` ranges are
//! computed once here).

use super::augment::{augment_intensity, AugmentOptions, SpatialTransform};
use super::augment_intensity::ImageIntensity;
use super::dataset::Dataset;
use super::numel;
use super::synthetic::rng_for;
use crate::error::{Error, Result};
use rand::Rng;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// At most this many voxel positions are kept per class and sample for
/// foreground-centred sampling (an even subsample beyond that).
const MAX_FG_LIST: usize = 100_000;

/// Patch and batch parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerOptions {
    /// Label (network output) patch `(z, y, x)`; 2D: z = 1.
    pub patch: [usize; 3],
    /// Extra input context per side: input patch = `patch + 2·margin`
    /// (valid-convolution nets; 0 for same padding).
    pub margin: [usize; 3],
    pub batch_size: usize,
    /// Probability that a patch is centred on a foreground voxel.
    pub fg_prob: f32,
    pub augment: AugmentOptions,
    pub seed: u64,
    /// `> 0`: only patches `0..repeat` are drawn, cyclically (overfitting
    /// check); 0: a new patch every time.
    pub repeat: usize,
}

impl SamplerOptions {
    /// Options for `patch` with no margin, batch 1, fg_prob 0.33, default augmentation.
    pub fn new(patch: [usize; 3]) -> Self {
        SamplerOptions {
            patch,
            margin: [0; 3],
            batch_size: 1,
            fg_prob: 0.33,
            augment: AugmentOptions::default(),
            seed: 0,
            repeat: 0,
        }
    }
    /// Input patch dims: `patch + 2·margin`.
    pub fn input_dims(&self) -> [usize; 3] {
        std::array::from_fn(|a| self.patch[a] + 2 * self.margin[a])
    }
}

/// One batch, laid out for the engine: images `N x 1 x D x H x W` at the
/// input dims, labels (and weights) `N x D x H x W` at the label dims.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Batch number (the `index` given to [`Sampler::batch`]).
    pub index: u64,
    pub n: usize,
    pub input_dims: [usize; 3],
    pub label_dims: [usize; 3],
    pub images: Vec<f32>,
    pub labels: Vec<i32>,
    /// Present when every sample of the dataset has a weight map.
    pub weights: Option<Vec<f32>>,
    /// Dataset sample of each patch.
    pub sources: Vec<usize>,
}

/// Draws batches from a dataset.
#[derive(Clone, Debug)]
pub struct Sampler {
    data: Arc<Dataset>,
    opts: SamplerOptions,
    /// `fg[sample][class - 1]`: voxel indices of that class.
    fg: Vec<Vec<Vec<u32>>>,
    /// Range and subsample of each sample's (normalised) image, for the gamma.
    ranges: Vec<ImageIntensity>,
    with_weights: bool,
}

impl Sampler {
    /// Check the options against the dataset and index its foreground voxels.
    pub fn new(data: Arc<Dataset>, opts: SamplerOptions) -> Result<Sampler> {
        let op = "Sampler::new";
        if data.samples.is_empty() {
            return Err(Error::shape(op, "empty dataset"));
        }
        if opts.patch.contains(&0) || opts.batch_size == 0 {
            return Err(Error::shape(
                op,
                format!(
                    "patch {:?}, batch {}: must be nonzero",
                    opts.patch, opts.batch_size
                ),
            ));
        }
        if !(0.0..=1.0).contains(&opts.fg_prob) {
            return Err(Error::shape(
                op,
                format!("fg_prob {} outside [0, 1]", opts.fg_prob),
            ));
        }
        let mut fg = Vec::with_capacity(data.samples.len());
        for s in &data.samples {
            let d = s.image.dims;
            if numel(d) > u32::MAX as usize {
                return Err(Error::shape(
                    op,
                    format!("{}: {:?} has more than 2^32 voxels", s.name, d),
                ));
            }
            if s.labels.dims != d
                || s.image.data.len() != numel(d)
                || s.labels.data.len() != numel(d)
            {
                return Err(Error::shape(
                    op,
                    format!("{}: image {:?} vs labels {:?}", s.name, d, s.labels.dims),
                ));
            }
            if d[0] == 1 && opts.patch[0] > 1 {
                return Err(Error::shape(
                    op,
                    format!(
                        "{} is 2D ({:?}) but the patch {:?} is 3D",
                        s.name, d, opts.patch
                    ),
                ));
            }
            if let Some(w) = &s.weights {
                if w.dims != d {
                    return Err(Error::shape(
                        op,
                        format!("{}: weights {:?} vs image {:?}", s.name, w.dims, d),
                    ));
                }
            }
            let mut lists = vec![Vec::new(); data.n_classes.saturating_sub(1)];
            for (i, &l) in s.labels.data.iter().enumerate() {
                if l < 0 || l as usize >= data.n_classes {
                    return Err(Error::shape(
                        op,
                        format!("{}: label {l} outside 0..{}", s.name, data.n_classes),
                    ));
                }
                if l > 0 {
                    lists[l as usize - 1].push(i as u32);
                }
            }
            for l in &mut lists {
                if l.len() > MAX_FG_LIST {
                    let step = l.len() as f64 / MAX_FG_LIST as f64;
                    *l = (0..MAX_FG_LIST)
                        .map(|k| l[(k as f64 * step) as usize])
                        .collect();
                }
            }
            fg.push(lists);
        }
        let ranges = data
            .samples
            .iter()
            .map(|s| ImageIntensity {
                levels: s.raw_levels.clone(),
                ..ImageIntensity::of(&s.image.data)
            })
            .collect();
        let with_weights = data.samples.iter().all(|s| s.weights.is_some());
        Ok(Sampler {
            data,
            opts,
            fg,
            ranges,
            with_weights,
        })
    }

    pub fn options(&self) -> &SamplerOptions {
        &self.opts
    }
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.data
    }

    /// Batch number `index` (deterministic for the seed).
    pub fn batch(&self, index: u64) -> Batch {
        let n = self.opts.batch_size;
        let id = self.opts.input_dims();
        let ld = self.opts.patch;
        let (ni, nl) = (numel(id), numel(ld));
        let mut b = Batch {
            index,
            n,
            input_dims: id,
            label_dims: ld,
            images: vec![0.0; n * ni],
            labels: vec![0; n * nl],
            weights: self.with_weights.then(|| vec![0.0; n * nl]),
            sources: Vec::with_capacity(n),
        };
        for i in 0..n {
            let mut k = index.wrapping_mul(n as u64).wrapping_add(i as u64);
            if self.opts.repeat > 0 {
                k %= self.opts.repeat as u64;
            }
            let img = &mut b.images[i * ni..(i + 1) * ni];
            let lab = &mut b.labels[i * nl..(i + 1) * nl];
            let w = b.weights.as_mut().map(|w| &mut w[i * nl..(i + 1) * nl]);
            b.sources.push(self.patch_into(k, img, lab, w));
        }
        b
    }

    /// Patch number `k` into the given slices; returns the sample index.
    fn patch_into(&self, k: u64, img: &mut [f32], lab: &mut [i32], w: Option<&mut [f32]>) -> usize {
        let mut rng = rng_for(self.opts.seed, k);
        let si = rng.random_range(0..self.data.samples.len());
        let s = &self.data.samples[si];
        let d = s.image.dims;
        let p = self.opts.patch;
        let present: Vec<usize> = (0..self.fg[si].len())
            .filter(|&c| !self.fg[si][c].is_empty())
            .collect();
        let fg_draw = rng.random::<f32>() < self.opts.fg_prob;
        let mut origin = [0isize; 3];
        if fg_draw && !present.is_empty() {
            let list = &self.fg[si][present[rng.random_range(0..present.len())]];
            let v = list[rng.random_range(0..list.len())] as usize;
            let c = [v / (d[1] * d[2]), (v / d[2]) % d[1], v % d[2]];
            for a in 0..3 {
                origin[a] = if d[a] >= p[a] {
                    (c[a] as isize - (p[a] as isize - 1) / 2).clamp(0, (d[a] - p[a]) as isize)
                } else {
                    -((p[a] - d[a]) as isize / 2)
                };
            }
        } else {
            for a in 0..3 {
                origin[a] = if d[a] >= p[a] {
                    rng.random_range(0..=d[a] - p[a]) as isize
                } else {
                    -((p[a] - d[a]) as isize / 2)
                };
            }
        }
        let centre: [f32; 3] =
            std::array::from_fn(|a| origin[a] as f32 + (p[a] as f32 - 1.0) * 0.5);
        let id = self.opts.input_dims();
        let t = SpatialTransform::random(&mut rng, centre, id, &self.opts.augment);
        t.warp_linear_unchecked(&s.image, id, [0; 3], img);
        t.warp_nearest_unchecked(&s.labels, p, self.opts.margin, lab);
        if let (Some(w), Some(sw)) = (w, &s.weights) {
            t.warp_linear_unchecked(sw, p, self.opts.margin, w);
        }
        if let Some(io) = &self.opts.augment.intensity {
            augment_intensity(&mut rng, img, id, io, &self.ranges[si]);
        }
        si
    }
}

/// Batches produced on a background thread into a bounded channel.
pub struct Prefetcher {
    rx: Option<Receiver<Batch>>,
    handle: Option<JoinHandle<()>>,
}

impl Prefetcher {
    /// Start producing batches `start, start + 1, …` with at most `depth`
    /// (≥ 1) batches waiting.
    pub fn spawn(sampler: Sampler, start: u64, depth: usize) -> Prefetcher {
        let (tx, rx) = sync_channel(depth.max(1));
        let handle = std::thread::Builder::new()
            .name("wunet-prefetch".into())
            .spawn(move || {
                let mut i = start;
                while tx.send(sampler.batch(i)).is_ok() {
                    i += 1;
                }
            })
            .ok();
        Prefetcher {
            rx: Some(rx),
            handle,
        }
    }

    /// The next batch in order. Fails only if the producer thread is gone.
    pub fn next_batch(&mut self) -> Result<Batch> {
        let rx = self
            .rx
            .as_ref()
            .ok_or_else(|| Error::Other("prefetcher stopped".into()))?;
        if self.handle.is_none() {
            return Err(Error::Other(
                "prefetcher: could not start its thread".into(),
            ));
        }
        rx.recv()
            .map_err(|_| Error::Other("prefetcher: producer thread ended (panicked?)".into()))
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.rx.take(); // the producer's next send fails and it returns
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::DatasetOptions;
    use crate::data::Array3;

    fn toy() -> Arc<Dataset> {
        // 1 x 20 x 30 image = x coordinate, one foreground voxel at (12, 25)
        let img =
            Array3::from_vec([1, 20, 30], (0..600).map(|i| (i % 30) as f32).collect()).unwrap();
        let mut lab = Array3::filled([1, 20, 30], 0i32);
        lab.data[12 * 30 + 25] = 1;
        let o = DatasetOptions {
            normalize: crate::data::dataset::Normalize::None,
            invert: Some(false),
            ..Default::default()
        };
        Arc::new(Dataset::from_arrays(vec![("t".into(), img, lab)], &o).unwrap())
    }

    #[test]
    fn foreground_oversampling_centres_patch() {
        let mut o = SamplerOptions::new([1, 5, 5]);
        o.fg_prob = 1.0;
        o.augment = AugmentOptions::none();
        o.batch_size = 4;
        let s = Sampler::new(toy(), o).unwrap();
        assert_eq!(s.ranges[0].range, (0.0, 29.0), "the image's range, once");
        let b = s.batch(3);
        for i in 0..4 {
            let lab = &b.labels[i * 25..(i + 1) * 25];
            assert_eq!(
                lab[2 * 5 + 2],
                1,
                "patch {i} centred on the only foreground voxel"
            );
            assert_eq!(b.images[i * 25 + 12], 25.0);
        }
    }

    #[test]
    fn margin_extends_input_and_mirrors() {
        let mut o = SamplerOptions::new([1, 4, 6]);
        o.margin = [0, 3, 2];
        o.augment = AugmentOptions::none();
        o.fg_prob = 0.0;
        o.batch_size = 3;
        let s = Sampler::new(toy(), o).unwrap();
        let b = s.batch(0);
        assert_eq!(b.input_dims, [1, 10, 10]);
        for i in 0..3 {
            let img = &b.images[i * 100..(i + 1) * 100];
            // the label window's first column equals input column 2 (x = value)
            let x0 = img[3 * 10 + 2];
            assert!((0.0..=24.0).contains(&x0));
            // mirrored: input columns follow reflect(x0 - 2 + j)
            for (j, &v) in img[..10].iter().enumerate() {
                let want = crate::data::reflect_index(x0 as isize - 2 + j as isize, 30) as f32;
                assert_eq!(v, want);
            }
        }
    }

    #[test]
    fn deterministic_and_prefetch_in_order() {
        let d = Arc::new(
            crate::data::synthetic::synthetic_dataset(
                crate::data::synthetic::SyntheticKind::EmCells2d,
                2,
                [1, 48, 40],
                3,
            )
            .unwrap(),
        );
        let mut o = SamplerOptions::new([1, 16, 16]);
        o.margin = [0, 4, 4];
        o.batch_size = 2;
        o.seed = 11;
        let s = Sampler::new(d.clone(), o.clone()).unwrap();
        let want: Vec<Batch> = (5..9).map(|i| s.batch(i)).collect();
        let mut p = Prefetcher::spawn(Sampler::new(d, o).unwrap(), 5, 2);
        for w in &want {
            assert_eq!(&p.next_batch().unwrap(), w);
        }
        assert_ne!(want[0].images, want[1].images);
    }

    #[test]
    fn rejects_bad_options() {
        let mut o = SamplerOptions::new([3, 5, 5]);
        assert!(
            Sampler::new(toy(), o.clone()).is_err(),
            "3D patch on 2D data"
        );
        o.patch = [1, 0, 5];
        assert!(Sampler::new(toy(), o.clone()).is_err());
        o.patch = [1, 5, 5];
        o.fg_prob = 1.5;
        assert!(Sampler::new(toy(), o).is_err());
    }
}
