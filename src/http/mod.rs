//! The axum HTTP server.
