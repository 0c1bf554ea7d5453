// precision/epilogue.wgsl: the store of an activation with an optional fused ReLU, shared by
// every kernel that can end in one (conv forwards, batch-norm normalise; flags bit 3 in
// their params). Appended to every kernel module after the precision file
// (src/gpu/pipelines.rs::compose).
//   relu: y = v > 0 ? v : 0, then rounded to `act` (as relu_fwd of activation.wgsl stores
//         after reading act(v) back: rounding keeps the sign, so the two agree bit for bit).
fn store_act(v: f32, relu: bool) -> act {
    return act(select(v, select(0.0, v, v > 0.0), relu));
}
