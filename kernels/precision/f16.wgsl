// precision/f16.wgsl: activations and activation gradients stored in f16 (mixed
// precision). Appended to the kernel module after `enable f16;` is put in front
// (src/gpu/pipelines.rs::compose). Kernels load with f32(x[i]) and store with
// act(v): every sum, statistic and GEMM accumulates in f32.
alias act = f16;
