//! Train a small U-Net on the built-in synthetic data from code, with a step
//! callback, and print the validation Dice (`cargo run --release --example
//! train_from_code`; the run folder goes to the temp directory).
use wunet::train::{Control, TrainFlags, Trainer};

fn main() -> wunet::Result<()> {
    let ctx = wunet::Context::new(&Default::default())?;
    let out = std::env::temp_dir().join(format!("wunet-from-code-{}", std::process::id()));
    let flags = TrainFlags {
        synthetic_images: Some(8),
        synthetic_size: Some("128x128".into()),
        base: Some(8),
        depth: Some(3),
        patch: Some("64".into()),
        batch: Some(4),
        steps: Some(120),
        val_every: Some(40),
        out: Some(out.display().to_string()),
        ..Default::default()
    };
    let report = Trainer::new(flags).run(&ctx, |s| {
        if let (Some(v), Some(loss)) = (s.val, s.loss) {
            let dice = v.mean_dice.unwrap_or(f64::NAN);
            println!(
                "step {}/{}: loss {loss:.4}, validation Dice {dice:.4}",
                s.step, s.steps
            );
        }
        Control::Continue
    })?;
    let dice = report.val.as_ref().and_then(|m| m.mean_dice);
    println!("validation Dice: {dice:.4?} after {} steps", report.step);
    println!(
        "best checkpoint: {}",
        report.out.join("best.safetensors").display()
    );
    Ok(())
}
