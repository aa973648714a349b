//! Volumes with pluggable drivers and the Docker volume plugin protocol.
//!
//! Not implemented yet: see the status table in the README.
