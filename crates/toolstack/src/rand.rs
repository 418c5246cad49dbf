//! Random bytes from the host's random source, for UUIDs, MACs and the guest's rng-seed.

use std::io::Read;

/// The kernel's random source; non-blocking once the kernel's pool is initialised.
pub const RANDOM_SOURCE: &str = "/dev/urandom";

/// Errors reading the host's random source.
#[derive(Debug, thiserror::Error)]
pub enum RandError {
    #[error("cannot read random bytes from {RANDOM_SOURCE}")]
    Read(#[source] std::io::Error),
}

/// Fills `buf` from [`RANDOM_SOURCE`].
pub fn fill(buf: &mut [u8]) -> Result<(), RandError> {
    std::fs::File::open(RANDOM_SOURCE)
        .and_then(|mut f| f.read_exact(buf))
        .map_err(RandError::Read)
}

/// `N` random bytes from [`RANDOM_SOURCE`].
pub fn bytes<const N: usize>() -> Result<[u8; N], RandError> {
    let mut b = [0u8; N];
    fill(&mut b)?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_draws_differ() {
        let a = super::bytes::<32>().expect("urandom");
        let b = super::bytes::<32>().expect("urandom");
        assert_ne!(a, b);
    }
}
