//! `wunet eval --per-image FILE.csv`: a row per image whose scores agree
//! with the pooled ones, and a bad file name refused before the GPU opens.

mod common;
use common::{ctx, eval_labelled, labelled_pngs, tiny_model, tmp_dir};
use std::path::Path;

/// [`eval_labelled`] of `ck` on `data` with `extra` flags that must
/// succeed: its `name: value` lines.
fn eval(ck: &Path, data: &Path, extra: &[&str]) -> Vec<(String, f64)> {
    let (stdout, stderr, ok) = eval_labelled(&[ck], data, extra);
    assert!(ok, "{stdout}\n{stderr}");
    stdout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter_map(|(n, v)| Some((n.to_string(), v.parse().ok()?)))
        .collect()
}

/// The CSV at `p` as (header, rows of (image, cells)).
fn read_csv(p: &Path) -> (Vec<String>, Vec<(String, Vec<String>)>) {
    let text = std::fs::read_to_string(p).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| {
            let mut cells = l.split(',').map(String::from);
            (cells.next().unwrap(), cells.collect())
        })
        .collect();
    (header, rows)
}

#[test]
fn per_image_scores_agree_with_the_pooled_ones() {
    if ctx().is_none() {
        return;
    }
    let dir = tmp_dir("eval-per-image", "agree");
    labelled_pngs(&dir);
    let ck = tiny_model(&dir, "m", &["--seed", "5", "--base", "4"]);
    let csv = dir.join("scores.csv");
    let pooled = eval(&ck, &dir, &["--per-image", csv.to_str().unwrap()]);
    let (header, rows) = read_csv(&csv);
    assert_eq!(header[..3], ["image", "pixel_error", "rand_error"]);
    assert!(header.iter().any(|h| h == "isbi_rand_error"), "{header:?}");
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["s0", "s1", "s2", "s3"]);
    // the images are the same size: the pooled pixel error is the mean
    let col = |name: &str| header.iter().position(|h| h == name).unwrap() - 1;
    let mean = |name: &str| {
        let c = col(name);
        rows.iter()
            .map(|(_, cells)| cells[c].parse::<f64>().unwrap())
            .sum::<f64>()
            / rows.len() as f64
    };
    let get = |name: &str| pooled.iter().find(|(n, _)| n == name).unwrap().1;
    assert!((mean("pixel_error") - get("pixel_error")).abs() < 2e-6);
    assert!((mean("rand_error") - get("rand_error")).abs() < 2e-6);

    // one image: its row's challenge scores are the pooled ones
    let one = dir.join("one");
    for sub in ["images", "labels"] {
        std::fs::create_dir_all(one.join(sub)).unwrap();
        std::fs::copy(dir.join(sub).join("s1.png"), one.join(sub).join("s1.png")).unwrap();
    }
    let csv1 = dir.join("one.csv");
    let pooled1 = eval(&ck, &one, &["--per-image", csv1.to_str().unwrap()]);
    let (header1, rows1) = read_csv(&csv1);
    for name in ["isbi_rand_error", "isbi_pixel_error", "isbi_v_info"] {
        let c = header1.iter().position(|h| h == name).unwrap() - 1;
        let v: f64 = rows1[0].1[c].parse().unwrap();
        let p = pooled1.iter().find(|(n, _)| n == name).unwrap().1;
        assert!((v - p).abs() < 2e-6, "{name}: {v} vs {p}");
    }

    // not a .csv: refused before anything runs
    let bad = dir.join("scores.txt");
    let (_, stderr, ok) = eval_labelled(&[&ck], &dir, &["--per-image", bad.to_str().unwrap()]);
    assert!(!ok && stderr.contains("--per-image"), "{stderr}");
}
