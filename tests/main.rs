//! The integration tests, compiled as one test binary.
//!
//! Each file beside this one proves one thing (restarts, bad input, the dashboard, ...) and is a
//! module here rather than a test target of its own: every test binary links wasmtime and
//! Cranelift statically (over 100 MB each in a debug build), and twenty of them filled a CI
//! machine's disk and spent minutes linking. Run one file's tests with a filter:
//! `cargo test --test integration dashboard::`.

// A test that meets the unexpected should stop right there, loudly: unwrap is how it says so.
#![allow(clippy::unwrap_used)]

mod common;

mod access;
mod bad_input;
mod cli;
mod component_restart;
mod concurrency;
mod connections;
mod conventions;
mod crash_loop;
mod cross_site;
mod dashboard;
mod docs;
mod exactly_once;
mod faults;
mod idempotency;
mod jco;
mod listing;
mod misbehaving;
mod model;
mod openapi;
mod outage;
mod ownership;
mod postgres;
mod python_host;
mod redis;
mod reference_host;
mod resp;
mod resp_clients;
mod resp_crash;
mod resp_transactions;
mod reuse;
mod sandbox;
mod serve;
mod transfer;
mod wasmtime_cli;
mod windows;
