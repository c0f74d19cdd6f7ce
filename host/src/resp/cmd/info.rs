//! `INFO [section...]`: the `server` and `clients` sections, as `name:value` lines. `keyspace`
//! is refused rather than answered empty, which a client would read as "no keys": tally does
//! not count its counters there.

use super::{Context, InTransaction, Reply, Running, Spec};
use crate::resp::{REDIS_VERSION, Shared};
use std::fmt::Write;

/// `INFO`
pub(super) const SPEC: Spec = Spec {
    name: "info",
    arity: -1,
    flags: &["loading", "stale"],
    keys: (0, 0, 0),
    categories: &["@slow", "@dangerous"],
    stages_writes: false,
    in_transaction: InTransaction::Refuse,
    run,
};

fn run<'a>(args: &'a [Vec<u8>], ctx: &'a mut Context<'_, '_>) -> Running<'a> {
    let sections: Vec<String> = args[1..]
        .iter()
        .map(|section| String::from_utf8_lossy(section).to_ascii_lowercase())
        .collect();
    if sections.iter().any(|section| section == "keyspace") {
        return Box::pin(std::future::ready(Err(Reply::err(
            "tally does not count its counters in INFO keyspace; SCAN or KEYS list them",
        )
        .into())));
    }
    Box::pin(std::future::ready(Ok(Reply::text(info(
        ctx.shared, &sections,
    )))))
}

fn info(shared: &Shared, sections: &[String]) -> String {
    let all = sections.is_empty()
        || sections
            .iter()
            .any(|section| matches!(section.as_str(), "all" | "default" | "everything"));
    let wanted = |section: &str| all || sections.iter().any(|asked| asked == section);
    let mut text = String::new();
    if wanted("server") {
        let _ = write!(
            text,
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\n\
             tally_version:{}\r\nresp_protocols:2,3\r\nprocess_id:{}\r\ntcp_port:{}\r\n\
             uptime_in_seconds:{}\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            shared.port,
            shared.started.elapsed().as_secs(),
        );
    }
    if wanted("clients") {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        let _ = write!(
            text,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n",
            shared.open_clients(),
            shared.options.max_clients,
        );
    }
    text
}
