//! One module per command. Each has `Args` (clap) and
//! `run(&Globals, Args) -> anyhow::Result<u8>` (the exit code).

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod resume;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;
