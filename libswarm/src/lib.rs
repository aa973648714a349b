//! Adapter-based composition of container engine backends.
//!
//! Not implemented yet: see the status table in the README.
