//! Learning-rate schedules, evaluated on the host once per step; the value
//! goes to the GPU through the optimiser's `hyper` tensor
//! (`ops::optim::write_hyper`).

/// A learning rate as a function of the step (0 for the first step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    /// `lr` at every step.
    Constant { lr: f64 },
    /// `lr * gamma^floor(step / every)` (PyTorch `StepLR`).
    Step { lr: f64, gamma: f64, every: u64 },
    /// `lr * (1 - step/max_steps)^power`, 0 from `max_steps` on (nnU-Net's
    /// `PolyLRScheduler` with `power = 0.9`).
    Poly { lr: f64, max_steps: u64, power: f64 },
}

impl LrSchedule {
    /// nnU-Net's schedule: `lr0 * (1 - step/max_steps)^0.9`.
    pub fn poly(lr: f64, max_steps: u64) -> Self {
        LrSchedule::Poly {
            lr,
            max_steps,
            power: 0.9,
        }
    }

    /// The learning rate at `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        match *self {
            LrSchedule::Constant { lr } => lr,
            LrSchedule::Step { lr, gamma, every } => {
                let k = step.checked_div(every).unwrap_or(0).min(i32::MAX as u64) as i32;
                lr * gamma.powi(k)
            }
            LrSchedule::Poly {
                lr,
                max_steps,
                power,
            } => {
                if step >= max_steps {
                    return 0.0;
                }
                lr * (1.0 - step as f64 / max_steps as f64).powf(power)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LrSchedule;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn constant() {
        let s = LrSchedule::Constant { lr: 0.01 };
        assert_eq!(s.lr(0), 0.01);
        assert_eq!(s.lr(1_000_000), 0.01);
    }

    #[test]
    fn step_decay() {
        let s = LrSchedule::Step {
            lr: 0.1,
            gamma: 0.5,
            every: 10,
        };
        assert!(close(s.lr(0), 0.1));
        assert!(close(s.lr(9), 0.1));
        assert!(close(s.lr(10), 0.05));
        assert!(close(s.lr(25), 0.025));
        // every = 0 never decays instead of dividing by zero.
        assert_eq!(
            LrSchedule::Step {
                lr: 0.1,
                gamma: 0.5,
                every: 0
            }
            .lr(100),
            0.1
        );
    }

    #[test]
    fn poly_as_nnunet() {
        let s = LrSchedule::poly(0.01, 1000);
        assert!(close(s.lr(0), 0.01));
        // nnU-Net: initial_lr * (1 - current_step / max_steps) ** 0.9
        assert!(close(s.lr(500), 0.01 * 0.5f64.powf(0.9)));
        assert!(close(s.lr(999), 0.01 * 0.001f64.powf(0.9)));
        assert_eq!(s.lr(1000), 0.0);
        assert_eq!(s.lr(5000), 0.0);
        // Monotone non-increasing.
        assert!((1..1000).all(|t| s.lr(t) <= s.lr(t - 1)));
    }
}
