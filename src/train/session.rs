//! A training session: a U-Net training graph (forward, loss, backward,
//! optimiser update) on the GPU executor, one submission per step.

use crate::error::{Error, Result};
use crate::exec::{ExecOptions, Executor};
use crate::gpu::Context;
use crate::graph::{append_optimizer, backward, Optimizer, ValueId};
use crate::models::{build_unet, Loss, Mode, UNet, UNetConfig};

pub struct Session {
    pub exec: Executor,
    pub net: UNet,
    /// `(parameter, gradient)` pairs.
    pub grads: Vec<(ValueId, ValueId)>,
    pub loss: ValueId,
}

impl Session {
    /// Build and plan the training step for `batch` patches of `spatial`
    /// (`[H, W]` or `[D, H, W]`). `keep_grads` keeps every gradient readable
    /// (tests); otherwise gradients live in reused buffers.
    pub fn new(
        ctx: &Context,
        cfg: &UNetConfig,
        batch: usize,
        spatial: &[usize],
        loss: Loss,
        opt: Option<&Optimizer>,
        seed: u64,
        keep_grads: bool,
    ) -> Result<Self> {
        let net = build_unet(cfg, batch, spatial, &Mode::Training(loss))?;
        let mut g = net.graph.clone();
        let loss_v = net
            .loss
            .ok_or_else(|| Error::Other("training graph without a loss".into()))?;
        let grads = backward(&mut g, loss_v)?.params;
        if let Some(o) = opt {
            append_optimizer(&mut g, &grads, o)?;
        }
        crate::graph::check_kernel_ops(&g)?;
        let mut keep = vec![net.logits];
        if keep_grads {
            keep.extend(grads.iter().map(|(_, gr)| *gr));
        }
        let exec = Executor::new(ctx, g, &ExecOptions { seed, keep })?;
        Ok(Session {
            exec,
            net,
            grads,
            loss: loss_v,
        })
    }

    /// Upload one batch: images `N*C*spatial`, labels `N*out` (class ids),
    /// optional weight map `N*out`.
    pub fn set_batch(
        &self,
        ctx: &Context,
        images: &[f32],
        labels: &[i32],
        weights: Option<&[f32]>,
    ) -> Result<()> {
        self.exec.write_f32(ctx, self.net.input, images)?;
        let lv = self
            .net
            .labels
            .ok_or_else(|| Error::Other("no label input".into()))?;
        self.exec.write_i32(ctx, lv, labels)?;
        match (self.net.weight_map, weights) {
            (Some(w), Some(d)) => self.exec.write_f32(ctx, w, d),
            (Some(_), None) => Err(Error::Other("this loss needs a weight map".into())),
            _ => Ok(()),
        }
    }

    /// One training step at learning rate `lr` (no readback).
    pub fn step(&mut self, ctx: &Context, lr: f32) -> Result<()> {
        self.exec.run(ctx, lr)
    }

    /// The loss of the last step (reads it back).
    pub fn read_loss(&self, ctx: &Context) -> Result<f32> {
        Ok(self.exec.read_f32(ctx, self.loss)?[0])
    }

    /// Logits of the last step (`N, classes, out..`).
    pub fn read_logits(&self, ctx: &Context) -> Result<Vec<f32>> {
        self.exec.read_f32(ctx, self.net.logits)
    }
}
