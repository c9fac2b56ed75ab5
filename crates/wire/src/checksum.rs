//! checksum (to be written).
