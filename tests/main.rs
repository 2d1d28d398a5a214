//! One integration-test binary (see STYLE.md): a module per feature, shared helpers in `common`.
//! Every test starts the real server binary against a real ipykernel.

// The whole crate is test code: helpers unwrap like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod common;
mod execute;
mod kernels;
mod lifecycle;
mod notebooks;
mod packages;
mod protocol;
mod variables;
