//! The admin token's policy, shared by the data directory that generates and checks it
//! and the admin router that compares it.

/// The shortest admin token accepted, in characters (besides surrounding whitespace):
/// 128 bits as hex. Generated tokens are 64 characters, 256 bits.
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;
