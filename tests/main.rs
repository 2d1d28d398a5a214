//! One integration-test binary (see STYLE.md): a module per feature, shared helpers in `common`.
//! Every test starts the real server binary against a real ipykernel.

// The whole crate is test code: helpers unwrap like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod attacks;
mod audit_log;
mod auth;
mod cancel;
mod cgroups;
mod common;
mod execute;
mod executions;
mod faults;
mod kernels;
mod lifecycle;
mod load;
mod notebook_edit;
mod notebooks;
mod outputs;
mod packages;
mod protocol;
mod reliability;
mod results;
mod stdio;
mod variables;
