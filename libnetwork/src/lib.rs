//! The Container Network Model on netlink and nftables.
//!
//! Not implemented yet: see the status table in the README.
