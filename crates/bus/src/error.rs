//! What a call over the bus can end in besides the service's own answer.

use carehub_nats::{ErrorCode, WireError};

/// What a typed request on the bus can end in.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The service answered with an error.
    #[error(transparent)]
    Remote(#[from] WireError),
    /// Nobody subscribes to the subject: the service is not running.
    #[error("no responders for {subject}")]
    NoResponders { subject: String },
    /// The service is there but did not answer within the request's timeout.
    #[error("request to {subject} timed out")]
    TimedOut { subject: String },
    /// Publishing or connecting failed.
    #[error("transport error on {subject}: {message}")]
    Transport { subject: String, message: String },
    /// The reply could not be decoded into the expected type.
    #[error("could not decode reply from {subject}: {message}")]
    Decode { subject: String, message: String },
}

impl BusError {
    /// The error as a caller should report it further up: remote errors keep their code,
    /// transport failures become 503/504, decode failures are internal.
    pub fn to_wire(&self) -> WireError {
        match self {
            Self::Remote(e) => e.clone(),
            Self::NoResponders { .. } | Self::Transport { .. } => WireError::new(
                ErrorCode::ServiceUnavailable,
                "a required service is unavailable, try again shortly",
            ),
            Self::TimedOut { .. } => WireError::new(
                ErrorCode::Timeout,
                "a required service did not answer in time",
            ),
            Self::Decode { .. } => WireError::internal(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_map_to_503_and_504() {
        let no = BusError::NoResponders {
            subject: "s".into(),
        };
        assert_eq!(no.to_wire().code.http_status(), 503);
        let slow = BusError::TimedOut {
            subject: "s".into(),
        };
        assert_eq!(slow.to_wire().code.http_status(), 504);
    }
}
