//! Go-channel-like typed message passing across processes and hosts.
//!
//! Not implemented yet: see the status table in the README.
