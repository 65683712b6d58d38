//! Facts about the device the heartbeat reports and nobody else measures
//! yet: whether the kernel considers the clock synchronised, and free disk.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub use crate::clock::is_synchronised as kernel_clock_synced;

/// Bytes available to unprivileged users on the file system holding `path`.
pub fn disk_free_bytes(path: &Path) -> Option<u64> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_free_disk_of_an_existing_directory_only() {
        assert!(disk_free_bytes(Path::new("/")).unwrap() > 0);
        assert_eq!(disk_free_bytes(Path::new("/nonexistent/dir")), None);
    }
}
