//! Shared application code for the example programs (configuration, backend selection).
