//! The `portico` package: the CLI binary (`src/main.rs`) and the library it is built on,
//! which the end-to-end tests use too: [`platform`] starts the whole demo platform in one
//! process and [`seed`] fills it with demo data through the gateway's public API.

pub mod platform;
pub mod schema_cmds;
pub mod seed;
pub mod telemetry;
