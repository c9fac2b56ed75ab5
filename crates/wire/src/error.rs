//! The one error type of every parser in this crate.

/// Why a byte string is not a valid packet of the asked format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header or than a length field says.
    #[error("packet truncated")]
    Truncated,
    /// The checksum does not verify.
    #[error("bad checksum")]
    Checksum,
    /// A length, version or count field holds a value the format does not allow.
    #[error("malformed packet")]
    Malformed,
    /// A type field holds a value this crate does not know.
    #[error("unknown type {0:#04x}")]
    UnknownType(u8),
}

/// Result of a parse.
pub type Result<T> = core::result::Result<T, Error>;
