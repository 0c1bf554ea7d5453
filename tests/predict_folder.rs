//! `wunet predict --input FOLDER --output FOLDER`: every image of the folder
//! predicted as `predict` of each file would, outputs named after the
//! inputs, a failing image reported without stopping the others, and the
//! refusals before the GPU opens.

mod common;
use common::{ctx, labelled_pngs, npy_f32, predict_args, run_wunet as wunet, tiny_model, tmp_dir};
use std::path::Path;
use wunet::data::io::{read_labels, write_npy, write_png_gray8};
use wunet::data::synthetic::em_cells_2d;
use wunet::data::Volume;

/// `wunet predict --input IN --output OUT EXTRA...` with one checkpoint:
/// (stdout, stderr, success).
fn predict(ck: &Path, input: &Path, output: &Path, extra: &[&str]) -> (String, String, bool) {
    let a = predict_args(ck, input, output, extra);
    let args: Vec<&str> = a.iter().map(String::as_str).collect();
    wunet(&args)
}

#[test]
fn a_folder_is_predicted_image_by_image() {
    if ctx().is_none() {
        return;
    }
    let dir = tmp_dir("predict-folder", "all");
    labelled_pngs(&dir);
    let ck = tiny_model(&dir, "m", &["--seed", "5", "--base", "4"]);
    let images = dir.join("images");
    // another size (the networks are rebuilt), a volume of two sections,
    // and files that are not images
    let odd = em_cells_2d(300, 40, 52);
    let img = odd.image.map(|&v| (v.clamp(0.0, 1.0) * 255.0) as u8);
    write_png_gray8(&images.join("t.png"), &img).unwrap();
    let vol = Volume::from_vec(
        [2, 40, 52],
        [odd.image.data.clone(), odd.image.data.clone()].concat(),
    )
    .unwrap();
    write_npy(&images.join("v.npy"), &vol).unwrap();
    std::fs::write(images.join("notes.txt"), "not an image").unwrap();
    std::fs::write(images.join(".hidden.png"), "not read").unwrap();

    let (out, probs) = (dir.join("out"), dir.join("probs"));
    let (stdout, stderr, ok) = predict(
        &ck,
        &images,
        &out,
        &["--probabilities", probs.to_str().unwrap()],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("6 images of"), "{stdout}");
    // networks built twice: for the 56x72 images, then for t.png's and
    // v.npy's 40x52 sections (each build says whether it flips)
    assert_eq!(stderr.matches("test-time flips").count(), 2, "{stderr}");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["s0.png", "s1.png", "s2.png", "s3.png", "t.png", "v.npy"]
    );
    assert_eq!(read_labels(&out.join("t.png")).unwrap().dims, [1, 40, 52]);
    assert_eq!(read_labels(&out.join("v.npy")).unwrap().dims, [2, 40, 52]);

    // the same as predicting each file on its own
    for name in ["s2", "t"] {
        let one = dir.join(format!("{name}-one.png"));
        let p = dir.join(format!("{name}-one.npy"));
        let input = images.join(format!("{name}.png"));
        let (stdout, stderr, ok) =
            predict(&ck, &input, &one, &["--probabilities", p.to_str().unwrap()]);
        assert!(ok, "{stdout}\n{stderr}");
        let folder = read_labels(&out.join(format!("{name}.png"))).unwrap();
        assert_eq!(read_labels(&one).unwrap().data, folder.data, "{name}");
        assert_eq!(
            npy_f32(&p),
            npy_f32(&probs.join(format!("{name}.npy"))),
            "{name}"
        );
    }

    // a broken image: the others are written, the run fails naming it
    std::fs::write(images.join("broken.png"), b"not a png").unwrap();
    let again = dir.join("again");
    let (_, stderr, ok) = predict(&ck, &images, &again, &[]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("1 of 7 images") && stderr.contains("broken.png"),
        "{stderr}"
    );
    assert!(again.join("s3.png").exists() && !again.join("broken.png").exists());
}

#[test]
fn folder_refusals_come_before_any_prediction() {
    if ctx().is_none() {
        return;
    }
    let dir = tmp_dir("predict-folder", "refuse");
    labelled_pngs(&dir);
    let ck = tiny_model(&dir, "m", &["--seed", "5", "--base", "4"]);
    let images = dir.join("images");
    // the input folder as the output folder
    let (_, stderr, ok) = predict(&ck, &images, &images, &[]);
    assert!(!ok && stderr.contains("is the input folder"), "{stderr}");
    // a file as the output folder
    let file = dir.join("file");
    std::fs::write(&file, b"x").unwrap();
    let (_, stderr, ok) = predict(&ck, &images, &file, &[]);
    assert!(
        !ok && stderr.contains("is a file, not a folder"),
        "{stderr}"
    );
    // a file name for a folder output
    let (_, stderr, ok) = predict(&ck, &images, &dir.join("labels.png"), &[]);
    assert!(!ok && stderr.contains("give a folder name"), "{stderr}");
    assert!(!dir.join("labels.png").exists());
    // two inputs that would write the same outputs
    std::fs::copy(images.join("s0.png"), images.join("s0.tif")).unwrap();
    let (_, stderr, ok) = predict(&ck, &images, &dir.join("o"), &[]);
    assert!(
        !ok && stderr.contains("same name before its extension"),
        "{stderr}"
    );
    assert!(!dir.join("o").exists());
    // a folder without images
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (_, stderr, ok) = predict(&ck, &empty, &dir.join("o"), &[]);
    assert!(!ok && stderr.contains("no images"), "{stderr}");
}
