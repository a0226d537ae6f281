//! Attribute macros of netz (see the `netz` crate for documentation).
