//! What tally's tests need besides tally: a small HTTP/1.1 client with exact control over
//! connections, a byte-exact RESP client, a throwaway `redis-server` and PostgreSQL, and the test-only
//! misbehaving component. A dev-dependency only, so none of it ships in the `tally` binary or
//! library.
//!
//! # Layout
//! - [`http_client`]: a blocking keep-alive HTTP/1.1 client for driving `tally serve`.
//! - [`redis_server`]: a `redis-server` on a free loopback port, killed when dropped.
//! - [`postgres_server`]: a PostgreSQL server (or synchronous standby) on a free loopback port.
//! - [`resp_client`]: a RESP client that shows answers byte for byte.
//! - [`cutting_proxy`]: a TCP proxy that cuts a connection after relaying a request, unanswered.
//! - [`MISBEHAVING_GUEST_WASM`]: the component that traps, spins or exhausts memory on request.
//! - [`COUNTER_COMPONENT_WASM`]: the counter component itself, for crates that do not embed it
//!   (`tally-keyvalue`'s example).

pub mod cutting_proxy;
pub mod http_client;
pub mod postgres_server;
pub mod redis_server;
pub mod resp_client;

/// The path of the test-only misbehaving counter component (`tests/misbehaving-guest`), built by
/// this crate's `build.rs`.
pub const MISBEHAVING_GUEST_WASM: &str = env!("TALLY_MISBEHAVING_GUEST_WASM");

/// The path of the counter component (`guest/`), built by this crate's `build.rs` as the host
/// builds the one it embeds.
pub const COUNTER_COMPONENT_WASM: &str = env!("TALLY_COUNTER_WASM");
