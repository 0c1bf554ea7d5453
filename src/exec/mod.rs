//! Execution planning: schedule, liveness and memory plan ([`plan`]). The
//! GPU executor builds on these; nothing here touches wgpu.

pub mod plan;

#[cfg(test)]
mod tests;

pub use plan::{
    check_binding_limits, fmt_bytes, liveness, plan, schedule, Interval, MemoryReport, Placement,
    Plan, PlanOptions, Strategy,
};
