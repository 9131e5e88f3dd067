//! The one error type of the domain layer: a value that failed to parse or a rule it broke.

use std::fmt;

/// Why an input was refused: which field, a stable machine-readable code, and a human message.
///
/// The HTTP layer turns this into an RFC 9457 problem (`code` is what clients switch on);
/// the CLI prints it as `field: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ValidationError {}
