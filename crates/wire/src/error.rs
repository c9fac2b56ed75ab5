//! The one error type of every parser in this crate.
//!
//! Each variant is a separate drop reason: the IGMP core and the data plane count drops
//! per variant, so a variant must mean one kind of bad packet.

/// Why a byte string is not a valid packet of the asked format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the fixed header or than a length field says.
    #[error("packet truncated: the buffer is shorter than the header or its length field")]
    Truncated,
    /// The checksum does not verify.
    #[error("bad checksum: the packet was corrupted or built wrongly; it was dropped")]
    Checksum,
    /// A length, version, flag or count field holds a value the format does not allow,
    /// or an IPv6 extension header or option is malformed (an option past its header,
    /// a Hop-by-Hop header not first, a Router Alert of the wrong length).
    #[error(
        "malformed packet: a version, length or flag field holds a value the format does not allow"
    )]
    Malformed,
    /// A type field holds a value this crate does not know: a message type, or an IPv6
    /// option type whose action bits forbid skipping it (RFC 8200 section 4.2).
    #[error("unknown type {0:#04x}: this message type is not supported and was ignored")]
    UnknownType(u8),
    /// A record or source count (IGMPv3, MLDv2) says there is more data than the packet
    /// holds.
    #[error("record or source count runs past the end of the packet")]
    Overrun,
}

/// Result of a parse.
pub type Result<T> = core::result::Result<T, Error>;
