//! Handing memory back to the system once a burst of clients is gone.
//!
//! A thousand streams replaying a run's history at once allocate and free a lot; glibc keeps
//! the freed memory of its arenas for reuse, so the daemon would stay at its peak long after
//! the clients left. When the last stream closes, [`release_soon`] asks glibc to return what is
//! free (`malloc_trim`), once, a moment later.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A trim is already on its way.
static PENDING: AtomicBool = AtomicBool::new(false);

/// Returns freed memory to the system shortly (streams often close in a burst).
pub fn release_soon() {
    if PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        PENDING.store(false, Ordering::Release);
        return;
    };
    handle.spawn(async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        PENDING.store(false, Ordering::Release);
        let _ = tokio::task::spawn_blocking(trim).await;
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim takes a plain integer, touches only the allocator's own state under
    // its own locks, and may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
