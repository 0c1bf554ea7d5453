//! Tests of [`super`]: keys and flags, layers, shipped configs, old configs.

use super::*;
use clap::CommandFactory;

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    f: TrainFlags,
}

#[test]
fn every_key_is_a_flag() {
    let keys: Vec<String> = to_table(&TrainConfig::defaults("unet2d"))
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let cmd = Cli::command();
    let mut ids: Vec<String> = cmd
        .get_arguments()
        .map(|a| a.get_id().as_str().to_string())
        .filter(|s| s != "help")
        .collect();
    ids.sort();
    let mut k = keys.clone();
    k.sort();
    assert_eq!(k, ids);
    // and every flag is spelled --key-name
    for a in cmd.get_arguments().filter(|a| a.get_id() != "help") {
        assert_eq!(a.get_long().unwrap(), a.get_id().as_str().replace('_', "-"));
    }
}

#[test]
fn layers_override_in_order() {
    let file: TrainFlags = toml::from_str("base = 32\nlr = 0.5\nmodel = 'unet3d'").unwrap();
    let flags = TrainFlags {
        lr: Some(0.25),
        ..Default::default()
    };
    let c = TrainConfig::resolve(&[("f".into(), file), ("flags".into(), flags)]).unwrap();
    assert_eq!(c.base, 32);
    assert_eq!(c.lr, 0.25);
    assert_eq!(c.model, "unet3d");
    assert_eq!(c.patch, TrainConfig::defaults("unet3d").patch);
    // test-time flips: on for 2D models (4 passes), off for 3D (8)
    assert!(!c.tta && TrainConfig::defaults("unet2d").tta);
    // 2D on the user's data: the NIH3T3 recipe; the built-in data and 3D
    // keep theirs; a layer's value wins over either
    let with_data = |extra: &str| {
        let f: TrainFlags = toml::from_str(&format!("data = 'd'\n{extra}")).unwrap();
        TrainConfig::resolve(&[("f".into(), f)]).unwrap()
    };
    let d = with_data("");
    assert_eq!(
        (d.batch, d.loss.as_str(), d.noise_prob),
        (16, "dicece", 0.3)
    );
    assert_eq!(d.noise_variance, "0,0.5");
    let demo = TrainConfig::defaults("unet2d");
    assert_eq!(
        (demo.batch, demo.loss.as_str(), demo.noise_prob),
        (4, "auto", 0.1)
    );
    let d3 = with_data("model = 'unet3d'");
    assert_eq!((d3.batch, d3.loss.as_str()), (2, "auto"));
    let pinned = with_data("batch = 4\nloss = 'wce'\nnoise_prob = 0.1");
    assert_eq!(
        (pinned.batch, pinned.loss.as_str(), pinned.noise_prob),
        (4, "wce", 0.1)
    );
    // the Dice term counts the background unless told otherwise, and the
    // key reaches the loss
    assert!(c.dice_background);
    let nobg: TrainFlags = toml::from_str("loss = 'dicece'\ndice_background = false").unwrap();
    let c2 = TrainConfig::resolve(&[("f".into(), nobg)]).unwrap();
    match c2.loss_fn(2) {
        Loss::DiceCe { dice, .. } => assert!(!dice.include_background),
        l => panic!("{l:?}"),
    }
    // round trip through config.toml
    let back: TrainConfig = toml::from_str(&c.to_toml().unwrap()).unwrap();
    assert_eq!(back, c);
    assert!(toml::from_str::<TrainFlags>("bse = 3").is_err());
    let bad = TrainFlags {
        loss: Some("focal".into()),
        ..Default::default()
    };
    let e = TrainConfig::resolve(&[("x".into(), bad)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("loss") && e.contains("focal"), "{e}");
}

#[test]
fn shipped_configs_resolve() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let f = read_config_file(&p).unwrap();
            let c = TrainConfig::resolve(&[(p.display().to_string(), f)])
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let unet = c.unet(2);
            crate::train::run::patch_geometry(&unet, c.patch_dims().unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n >= 3);
}

#[test]
fn old_config_without_the_issue13_keys_loads_with_their_defaults() {
    let d = TrainConfig::defaults("unet2d");
    let text = d.to_toml().unwrap();
    let new = [
        "norm_clip",
        "rotate_prob",
        "rotate_degrees",
        "zoom_prob",
        "zoom_range",
        "noise_prob",
        "noise_variance",
        "blur_prob",
        "brightness_prob",
        "contrast_prob",
        "lowres_prob",
        "gamma_prob",
        "gamma_invert_prob",
        "gamma_range",
        "gamma_range_of",
        "val_part",
        "neck_ratio",
        "fold",
    ];
    let old: String = text
        .lines()
        .filter(|l| !new.iter().any(|k| l.starts_with(&format!("{k} ="))))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(text.lines().count() - old.lines().count(), new.len());
    let back: TrainConfig = toml::from_str(&old).unwrap();
    assert_eq!(back, d);
    // as flags (resume, eval --split val): resolves to the same
    let flags: TrainFlags = toml::from_str(&old).unwrap();
    assert_eq!(TrainConfig::resolve(&[("old".into(), flags)]).unwrap(), d);
    // nnU-Net's values, and bad ones are named
    assert_eq!(
        (d.zoom_limits().unwrap(), d.rotate_degrees, d.gamma_prob),
        ((0.7, 1.4), 180.0, 0.3)
    );
    for (k, v) in [
        ("zoom_range", "'1.4,0.7'"),
        ("gamma_range", "'0,2'"),
        ("noise_variance", "'-0.1,0.1'"),
        ("gamma_range_of", "'volume'"),
        ("noise_prob", "1.5"),
        ("rotate_degrees", "200.0"),
        ("neck_ratio", "1.0"),
        ("neck_ratio", "-0.1"),
        ("fold", "'5/5'"),
        ("fold", "'0/1'"),
        ("fold", "'a/5'"),
        ("fold", "'2'"),
    ] {
        let f: TrainFlags = toml::from_str(&format!("{k} = {v}")).unwrap();
        let e = TrainConfig::resolve(&[("x".into(), f)])
            .unwrap_err()
            .to_string();
        assert!(e.contains(k), "{e}");
    }
}

#[test]
fn fold_parses_k_of_n() {
    let mut d = TrainConfig::defaults("unet2d");
    assert_eq!(d.fold().unwrap(), None);
    d.fold = "4/5".into();
    assert_eq!(d.fold().unwrap(), Some((4, 5)));
}

#[test]
fn gamma_range_of_reaches_the_sampler() {
    use crate::data::augment::GammaRangeOf;
    let of = |c: &TrainConfig| {
        c.sampler_options([1, 8, 8], [0; 3])
            .augment
            .intensity
            .map(|io| io.gamma_range_of)
    };
    let mut d = TrainConfig::defaults("unet2d");
    assert_eq!(d.gamma_range_of, "patch");
    assert_eq!(of(&d), Some(GammaRangeOf::Patch));
    let f: TrainFlags = toml::from_str("gamma_range_of = 'image'").unwrap();
    d = TrainConfig::resolve(&[("x".into(), f)]).unwrap();
    assert_eq!(of(&d), Some(GammaRangeOf::Image));
}
