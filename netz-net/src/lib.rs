//! The tokio driver of netz.
