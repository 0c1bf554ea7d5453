// precision/lanes.wgsl: work items packed into a workgroup, 2^lanes_log2 lanes each, so that
// small items (short planes, sets of few partials) share a workgroup instead of taking one
// each (norm_stats, norm_grad, norm_apply, reduce's channel_sum; the host picks the lanes
// with ops::lanes_for). Appended to every kernel module (src/gpu/pipelines.rs::compose).

// Invocation lid of workgroup wg (wg_size invocations): its item, its lane in the item, and
// the item's lanes as the slots [first, first + count) of a per-invocation workgroup array.
struct Lanes {
    item: u32,
    lane: u32,
    first: u32,
    count: u32,
}

fn lanes_of(wg: u32, lid: u32, lanes_log2: u32, wg_size: u32) -> Lanes {
    let first = (lid >> lanes_log2) << lanes_log2;
    let item = wg * (wg_size >> lanes_log2) + (lid >> lanes_log2);
    return Lanes(item, lid - first, first, 1u << lanes_log2);
}
