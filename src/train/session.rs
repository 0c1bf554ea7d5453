//! A training session: a U-Net training graph (forward, loss, backward,
//! optimiser update) on the GPU executor, one submission per step.

use crate::error::{Error, Result};
use crate::exec::{ExecOptions, Executor};
use crate::gpu::Context;
use crate::graph::ops::amp::GROWTH_INTERVAL;
use crate::graph::{append_optimizer, append_optimizer_amp, backward, Optimizer, ValueId};
use crate::models::{build_unet_with, Loss, Mode, UNet, UNetConfig};
use crate::shape::Precision;

pub struct Session {
    pub exec: Executor,
    pub net: UNet,
    /// `(parameter, gradient)` pairs.
    pub grads: Vec<(ValueId, ValueId)>,
    pub loss: ValueId,
}

/// What a training session trains.
#[derive(Clone, Debug)]
pub struct SessionSpec {
    pub config: UNetConfig,
    pub batch: usize,
    /// Input patch size, `[H, W]` or `[D, H, W]`.
    pub spatial: Vec<usize>,
    pub loss: Loss,
    /// `None`: forward, loss and backward only (no update).
    pub optimizer: Option<Optimizer>,
    /// Seed of the parameter initialisation.
    pub seed: u64,
    /// Keep every gradient readable (tests); otherwise gradients live in reused buffers.
    pub keep_grads: bool,
    /// F32, or mixed precision (F16 activations, dynamic loss scaling).
    pub precision: Precision,
}

impl Session {
    /// Build and plan the training step.
    pub fn new(ctx: &Context, spec: &SessionSpec) -> Result<Self> {
        let net = build_unet_with(
            &spec.config,
            spec.batch,
            &spec.spatial,
            &Mode::Training(spec.loss.clone()),
            spec.precision,
        )?;
        let mut g = net.graph.clone();
        let loss_v = net
            .loss
            .ok_or_else(|| Error::Other("training graph without a loss".into()))?;
        let grads = backward(&mut g, loss_v)?.params;
        match (&spec.optimizer, net.scaler) {
            (Some(o), Some(s)) => {
                append_optimizer_amp(&mut g, &grads, o, s, GROWTH_INTERVAL)?;
            }
            (Some(o), None) => {
                append_optimizer(&mut g, &grads, o)?;
            }
            (None, _) => {}
        }
        crate::graph::check_kernel_ops(&g)?;
        let mut keep = vec![net.logits];
        keep.push(loss_v); // a composite loss (Dice + CE) ends in an add node
        if spec.keep_grads {
            keep.extend(grads.iter().map(|(_, gr)| *gr));
        }
        let exec = Executor::new(
            ctx,
            g,
            &ExecOptions {
                seed: spec.seed,
                keep,
                ..Default::default()
            },
        )?;
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

    /// Mixed precision: the loss scale and the number of steps skipped so far
    /// for a non-finite gradient (reads the scaler back); `None` in f32.
    pub fn read_loss_scale(&self, ctx: &Context) -> Result<Option<(f32, u64)>> {
        match self.net.scaler {
            Some(s) => {
                let v = self.exec.read_f32(ctx, s)?;
                Ok(Some((v[0], v[3] as u64)))
            }
            None => Ok(None),
        }
    }

    /// Logits of the last step (`N, classes, out..`).
    pub fn read_logits(&self, ctx: &Context) -> Result<Vec<f32>> {
        self.exec.read_f32(ctx, self.net.logits)
    }
}
