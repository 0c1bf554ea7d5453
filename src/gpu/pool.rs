//! A pool of storage buffers keyed by size class. A freed buffer goes back to
//! its class and is handed out again for any request of the same class, so a
//! training loop that allocates the same shapes every step stops allocating.

use std::collections::HashMap;
use std::sync::Mutex;

pub(crate) const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Round a request up to its size class: multiples of 256 B up to 64 KiB,
/// then four classes per power of two (at most ~19% waste).
pub fn size_class(bytes: u64) -> u64 {
    let b = bytes.max(4);
    if b <= 65536 {
        return b.div_ceil(256) * 256;
    }
    let p = 63 - b.leading_zeros() as u64; // 2^p <= b < 2^(p+1)
    let step = 1u64 << (p - 2);
    b.div_ceil(step) * step
}

pub struct BufferPool {
    device: wgpu::Device,
    free: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    stats: Mutex<PoolStats>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct PoolStats {
    pub allocations: u64,
    pub reuses: u64,
    pub live_bytes: u64,
}

impl BufferPool {
    pub fn new(device: wgpu::Device) -> Self {
        BufferPool {
            device,
            free: Mutex::new(HashMap::new()),
            stats: Mutex::new(PoolStats::default()),
        }
    }

    /// A buffer of at least `bytes` (its size class). The caller has checked the
    /// device limits.
    pub fn take(&self, bytes: u64) -> (wgpu::Buffer, u64) {
        let class = size_class(bytes);
        let reused = self
            .free
            .lock()
            .ok()
            .and_then(|mut f| f.get_mut(&class).and_then(|v| v.pop()));
        let mut st = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        st.live_bytes += class;
        if let Some(b) = reused {
            st.reuses += 1;
            return (b, class);
        }
        st.allocations += 1;
        let b = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wunet.pool"),
            size: class,
            usage: USAGE,
            mapped_at_creation: false,
        });
        (b, class)
    }

    pub fn give_back(&self, buf: wgpu::Buffer, class: u64) {
        if let Ok(mut st) = self.stats.lock() {
            st.live_bytes = st.live_bytes.saturating_sub(class);
        }
        if let Ok(mut f) = self.free.lock() {
            f.entry(class).or_default().push(buf);
        }
    }

    pub fn stats(&self) -> PoolStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drop every idle buffer.
    pub fn trim(&self) {
        if let Ok(mut f) = self.free.lock() {
            f.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;
    #[test]
    fn classes() {
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(65536), 65536);
        assert_eq!(size_class(65537), 65536 + 16384);
        assert_eq!(size_class(1 << 20), 1 << 20);
        assert!(size_class(3_000_000) >= 3_000_000);
        assert!(size_class(3_000_000) < 3_600_000);
    }
}
