use std::time::Instant;
use wunet::data::synthetic::{synthetic_dataset, SyntheticKind};
use wunet::data::weightmap::{instances_of_class, two_nearest, WeightMapOptions};
fn main() {
    let t = Instant::now();
    let ds = synthetic_dataset(SyntheticKind::Nuclei3d, 1, [32, 96, 96], 2015).unwrap();
    println!("synth {:?}", t.elapsed());
    let s = &ds.samples[0];
    let t = Instant::now();
    let inst = instances_of_class(&s.labels, 1, false);
    println!("cc {:?} n={}", t.elapsed(), inst.data.iter().max().unwrap());
    let t = Instant::now();
    let o = WeightMapOptions::default();
    let _ = two_nearest(&inst, o.spacing, o.cutoff());
    println!("two_nearest {:?}", t.elapsed());
}
