//! Execution: schedule, liveness and memory plan ([`mod@plan`], no wgpu types),
//! the graph-op -> kernel table ([`dispatch`]) and the GPU executor ([`run`]).

pub mod dispatch;
pub mod plan;
pub mod run;
pub mod slices;

#[cfg(test)]
mod tests;

pub use plan::{
    check_binding_limits, fmt_bytes, liveness, plan, schedule, Interval, MemoryReport, Placement,
    Plan, PlanOptions, Strategy,
};
pub use run::{fusion_enabled, DispatchInfo, ExecOptions, Executor};
