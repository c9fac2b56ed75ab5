//! ethernet (to be written).
