//! vxlan (to be written).
