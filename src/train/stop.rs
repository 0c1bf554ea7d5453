//! SIGINT / SIGTERM during training: the first signal asks the loop to stop
//! after the current step (it writes `last.safetensors` and the process
//! exits with status 130); a second one exits at once (every file is written
//! atomically, so the run folder stays consistent either way).

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Install the handler (once per process; later calls do nothing).
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step (again to quit now)");
    });
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
