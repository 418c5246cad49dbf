//! ioctl(2) on the `/dev/xen` device files (and the TAP's): the one call site.
//!
//! Every wrapper issues its driver's requests through [`ioctl_with_ptr`], so that
//! the conversion of the C return convention (negative and `errno`) into an
//! [`io::Error`] is written once; each caller keeps its own `unsafe` block and its
//! own `SAFETY:` comment, because only the caller knows what its request's argument
//! must be.

use std::io;
use std::os::fd::AsRawFd;

/// Issues `request` on `fd` with argument `arg`, returning the driver's
/// non-negative result, or the `errno` of a failed call.
///
/// # Safety
/// `arg` must be what the driver behind `fd` expects for `request` (the struct
/// whose size the request number encodes, or null for a request without an
/// argument), valid for reads and writes for the whole call, and so must any
/// memory it points to that the driver reads or writes during the call.
pub(crate) unsafe fn ioctl_with_ptr<T>(
    fd: &impl AsRawFd,
    request: u64,
    arg: *mut T,
) -> io::Result<i32> {
    // SAFETY: the caller's contract above; the request number is passed through
    // unchanged (its type differs between libc targets, hence the cast).
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_request_gives_its_errno() {
        // A request /dev/null's driver does not know fails with ENOTTY: the error
        // must carry that errno.
        let f = std::fs::File::open("/dev/null").expect("/dev/null");
        let mut arg = 0u64;
        // SAFETY: an ioctl number no driver knows; `arg` is a live u64.
        let err = unsafe { ioctl_with_ptr(&f, 0xdead_0000, &mut arg) }
            .expect_err("an unknown request must fail");
        assert_eq!(err.raw_os_error(), Some(libc::ENOTTY));
    }

    #[test]
    fn a_successful_request_gives_its_result() {
        // FIONREAD on a pipe with 3 bytes in it writes 3 and returns 0.
        let (r, w) = nix::unistd::pipe().expect("pipe");
        nix::unistd::write(&w, b"abc").expect("write");
        let mut avail: libc::c_int = -1;
        // SAFETY: FIONREAD takes a pointer to an int, which `avail` is.
        let rc = unsafe { ioctl_with_ptr(&r, libc::FIONREAD, &mut avail) }.expect("FIONREAD");
        assert_eq!((rc, avail), (0, 3));
    }
}
