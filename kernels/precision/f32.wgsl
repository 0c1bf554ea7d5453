// precision/f32.wgsl: activations stored in f32 (the default). Appended to every
// kernel module by the pipeline cache (src/gpu/pipelines.rs::compose); kernels
// declare activation storage as array<act> and compute in f32.
alias act = f32;
