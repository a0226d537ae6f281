//! Why the supervisor refused a request; the control API and the SDK
//! servers map each kind onto an HTTP status or a gRPC code.

/// Why the supervisor refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The request itself is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// The named server, allocation, counter or list does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The value is already there (409; gRPC `ALREADY_EXISTS`).
    #[error("{0}")]
    AlreadyExists(String),
    /// A count or a list would leave its capacity (409; gRPC `OUT_OF_RANGE`).
    #[error("{0}")]
    OutOfRange(String),
    /// A payload is over its limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// The supervisor is shutting down (503).
    #[error("{0}")]
    Unavailable(String),
}
