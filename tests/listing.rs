//! Lists that scale: `GET /counters` answers one page and links to the next (RFC 8288 `Link`),
//! `tally list` streams page after page, and the component's `list-page` pages exactly while
//! counters come and go on SQLite and memory (by name), lists every counter on Redis (`SCAN`
//! order), and pages through the server's cursor table across requests.

use crate::common::Answer as _;
use crate::common::server::Server;
use crate::common::{self, TempDb, block_on, start_with, tally_ok};
use std::collections::BTreeMap;
use std::sync::Arc;
use tally::{CounterError, Runtime};
use tally_keyvalue::storage::{
    MemoryStorage, RedisStorage, SqliteStorage, Storage, Write, WriteGroup,
};
use tally_test_support::redis_server::RedisServer;

/// Writes `count` counters `c00000`, `c00001`, ... with value = number through `tally import`.
fn import_counters(db: &TempDb, count: usize) -> BTreeMap<String, u64> {
    let counters: BTreeMap<String, u64> =
        (0..count).map(|n| (format!("c{n:05}"), n as u64)).collect();
    let lines: String = counters
        .iter()
        .map(|(name, value)| format!("{{\"name\":\"{name}\",\"value\":{value}}}\n"))
        .collect();
    let file = db.dir.path().join("counters.jsonl");
    std::fs::write(&file, lines).unwrap();
    tally_ok(&db.path, &["import", file.to_str().unwrap()]);
    counters
}

/// The `next` URL of a `Link` header, if it has one.
fn next_link(response: &tally_test_support::http_client::Response) -> Option<String> {
    let link = response.header("link")?;
    let url = link.strip_prefix('<')?.split_once(">; rel=\"next\"")?.0;
    Some(url.to_string())
}

/// Follows `Link` from `first` to the last page; the counters in order, and the page sizes.
fn follow_pages(server: &Server, first: &str) -> (Vec<(String, u64)>, Vec<usize>) {
    let mut client = server.client();
    let mut url = Some(first.to_string());
    let mut counters = Vec::new();
    let mut sizes = Vec::new();
    while let Some(current) = url {
        let response = client.request("GET", &current, None).unwrap();
        assert_eq!(response.status, 200, "{current}: {response:?}");
        let page: Vec<serde_json::Value> = serde_json::from_str(&response.body).unwrap();
        sizes.push(page.len());
        counters.extend(page.iter().map(|entry| {
            (
                entry["name"].as_str().unwrap().to_string(),
                entry["value"].as_u64().unwrap(),
            )
        }));
        url = next_link(&response);
    }
    (counters, sizes)
}

/// 2,500 counters: 1000 per page by default, any limit up to 1000, every counter once, by name.
#[test]
fn http_pages_follow_the_link_header() {
    let db = TempDb::new();
    let expected: Vec<(String, u64)> = import_counters(&db, 2500).into_iter().collect();
    let server = Server::start(&db.path, &[]);

    let first = server.request("GET", "/counters", None);
    let page: Vec<serde_json::Value> = serde_json::from_str(&first.body).unwrap();
    assert_eq!(page.len(), 1000);
    assert_eq!(page[0], serde_json::json!({"name": "c00000", "value": 0}));
    // The component's cursor `1` (the store's second page), signed: 24 hex digits and a dot.
    let link = first.header("link").unwrap();
    let signed = link
        .strip_prefix("</counters?limit=1000&cursor=")
        .and_then(|rest| rest.strip_suffix(".1>; rel=\"next\""))
        .unwrap_or_else(|| panic!("{link}"));
    assert!(
        signed.len() == 24 && signed.bytes().all(|b| b.is_ascii_hexdigit()),
        "{link}"
    );

    let (all, sizes) = follow_pages(&server, "/counters");
    assert_eq!(sizes, [1000, 1000, 500]);
    assert_eq!(all, expected);

    let (all, sizes) = follow_pages(&server, "/counters?limit=7");
    assert_eq!(all, expected);
    assert_eq!(sizes.len(), 358);
    assert!(sizes[..357].iter().all(|size| *size == 7), "{sizes:?}");
    assert_eq!(sizes[357], 1);
}

/// Bad limits and cursors are 400 `invalid_query` with the reason; a cursor from before a restart
/// says to list again.
#[test]
fn bad_pages_are_refused() {
    let db = TempDb::new();
    import_counters(&db, 2500);
    let server = Server::start(&db.path, &[]);
    for (query, reason) in [
        (
            "limit=0",
            "invalid query: limit must be a whole number from 1 to 1000; got \"0\"",
        ),
        (
            "limit=1001",
            "invalid query: limit must be a whole number from 1 to 1000; got \"1001\"",
        ),
        (
            "limit=x",
            "invalid query: limit must be a whole number from 1 to 1000; got \"x\"",
        ),
        ("limit=1&limit=2", "invalid query: limit is given twice"),
    ] {
        let response = server.request("GET", &format!("/counters?{query}"), None);
        let json: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(
            (
                response.status,
                json["code"].as_str(),
                json["error"].as_str()
            ),
            (400, Some("invalid_query"), Some(reason)),
            "{query}"
        );
    }

    // Cursors the server did not hand out: made up, key-only or numbered by hand (each of
    // which the component would take), unsigned, signed with a made-up tag, or altered.
    let real = next_link(&server.request("GET", "/counters?limit=999", None)).unwrap();
    let real_cursor = real.split_once("cursor=").unwrap().1.to_string();
    let refused = "invalid query: cursor is not one this server handed out (cursors end when \
                   the server restarts, and only a page's Link carries one); list again from \
                   the first page";
    for cursor in [
        "abc".to_string(),
        String::new(),
        "%3Azzzz".into(),
        "%3Ac00006".into(),
        "123%3Ac00010".into(),
        format!("{}.%3Ac00006", "0".repeat(24)),
        real_cursor.replace("c00998", "c00990"),
        format!("{real_cursor}0"),
        real_cursor.split_once('.').unwrap().1.to_string(),
    ] {
        let response = server.request("GET", &format!("/counters?limit=999&cursor={cursor}"), None);
        let json: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(
            (
                response.status,
                json["code"].as_str(),
                json["error"].as_str()
            ),
            (400, Some("invalid_query"), Some(refused)),
            "{cursor}"
        );
    }

    // The second page of 999 ends inside the store's second page and names its cursor; it works
    // until a restart, and is refused after one.
    let second = server.request("GET", &real, None);
    assert_eq!(second.status, 200, "{second:?}");
    let next = next_link(&second).unwrap();
    assert!(
        next.ends_with("%3Ac01997"),
        "a store cursor and a key: {next}"
    );
    assert_eq!(server.request("GET", &next, None).status, 200);
    server.kill();
    let server = Server::start(&db.path, &[]);
    for stale in [real, next] {
        let response = server.request("GET", &stale, None);
        let json: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(
            (response.status, json["error"].as_str()),
            (400, Some(refused)),
            "{stale}"
        );
    }
}

/// Pages from the server stay exact however counters change at every page boundary: after each
/// page a counter is created before the cursor, right after it and after the end; the counter at
/// the cursor (the page's last) and one further on are deleted. Every counter present
/// throughout is listed exactly once, and no counter twice (2,500 counters by pages of 7 and of
/// 1000; 100 by pages of 1), on SQLite and on memory.
#[test]
fn pages_stay_exact_through_changes_at_every_boundary() {
    for (store, count, limit) in [
        ("sqlite", 2500, 7),
        ("sqlite", 2500, 1000),
        ("sqlite", 100, 1),
        ("memory", 2500, 7),
        ("memory", 100, 1),
    ] {
        let db = TempDb::new();
        let server = if store == "sqlite" {
            import_counters(&db, count);
            Server::start(&db.path, &[])
        } else {
            let server = Server::start_with(&db.path, &["--store", "memory"], &[]);
            let mut client = server.client();
            for n in 0..count {
                let put = client
                    .request(
                        "PUT",
                        &format!("/counters/c{n:05}"),
                        Some(&format!(r#"{{"value":{n}}}"#)),
                    )
                    .unwrap();
                assert_eq!(put.status, 200, "{put:?}");
            }
            server
        };
        let mut client = server.client();
        let mut write = |method: &str, name: &str| {
            let body = (method == "PUT").then_some(r#"{"value":1}"#);
            let response = client
                .request(method, &format!("/counters/{name}"), body)
                .unwrap();
            assert_eq!(response.status, 200, "{method} {name}: {response:?}");
        };
        let mut deleted = std::collections::BTreeSet::new();
        let mut listed: Vec<String> = Vec::new();
        let mut url = Some(format!("/counters?limit={limit}"));
        let mut page_number = 0;
        while let Some(current) = url {
            let response = server.request("GET", &current, None);
            assert_eq!(response.status, 200, "{current}: {response:?}");
            let page: Vec<serde_json::Value> = serde_json::from_str(&response.body).unwrap();
            listed.extend(
                page.iter()
                    .map(|entry| entry["name"].as_str().unwrap().to_string()),
            );
            url = next_link(&response);
            if let Some(last) = listed.last().cloned().filter(|_| url.is_some()) {
                page_number += 1;
                // Only at an original counter: those created here may be listed too, and
                // creating more at every page after the end would never end.
                if let Some(number) = last.strip_prefix('c').and_then(|n| n.parse::<usize>().ok()) {
                    write("PUT", &format!("b{page_number:05}"));
                    write("PUT", &format!("d{page_number:05}"));
                    write("PUT", &format!("{last}."));
                    write("DELETE", &last);
                    deleted.insert(last.clone());
                    let ahead = number + 3 * limit as usize;
                    if ahead < count {
                        write("DELETE", &format!("c{ahead:05}"));
                        deleted.insert(format!("c{ahead:05}"));
                    }
                }
            }
        }
        assert!(page_number > 0);
        let mut seen = std::collections::BTreeSet::new();
        for name in &listed {
            assert!(
                seen.insert(name.clone()),
                "{store} limit {limit}: {name} listed twice"
            );
        }
        for n in 0..count {
            let name = format!("c{n:05}");
            assert!(
                deleted.contains(&name) || seen.contains(&name),
                "{store} limit {limit}: {name} was present throughout and not listed"
            );
        }
        assert!(
            listed.windows(2).all(|pair| pair[0] < pair[1]),
            "{store} limit {limit}: not in name order"
        );
    }
}

/// `tally list` prints every one of 2,500 counters, in name order, as text and as one JSON array.
#[test]
fn cli_list_streams_every_page() {
    let db = TempDb::new();
    let expected = import_counters(&db, 2500);
    let text = tally_ok(&db.path, &["list"]);
    let lines: Vec<String> = expected
        .iter()
        .map(|(name, value)| format!("{name}\t{value}\n"))
        .collect();
    assert_eq!(text, lines.concat());

    let json = tally_ok(&db.path, &["--json", "list"]);
    let entries: Vec<serde_json::Value> = expected
        .iter()
        .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
        .collect();
    assert_eq!(json, format!("{}\n", serde_json::Value::Array(entries)));
    let empty = TempDb::new();
    assert_eq!(tally_ok(&empty.path, &["--json", "list"]), "[]\n");
}

/// Pages of `limit` through one runtime (as a server's requests share it), each from a fresh
/// instance; `between` runs after every page with the names listed so far.
fn list_by_pages(
    runtime: &Runtime,
    limit: u32,
    mut between: impl FnMut(&[String]),
) -> Vec<(String, u64)> {
    let mut cursor: Option<String> = None;
    let mut listed = Vec::new();
    loop {
        let mut counter = block_on(runtime.instantiate()).unwrap();
        let page = block_on(counter.list_page(cursor.as_deref(), limit))
            .answer()
            .unwrap()
            .unwrap();
        assert!(page.counters.len() <= limit as usize);
        listed.extend(page.counters);
        let names: Vec<String> = listed.iter().map(|(name, _)| name.clone()).collect();
        between(&names);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return listed,
        }
    }
}

/// Fills `storage` with 2,100 counters `k0000`... (value = number), lists them by pages of 333
/// through one runtime, running `change` with a fresh instance after every page, and checks that
/// every `k` counter was listed (once when `exactly_once`) with its stored value, in name order
/// when the store lists by name.
fn pages_list_every_counter(
    storage: Arc<dyn Storage>,
    exactly_once: bool,
    mut change: impl FnMut(&mut tally::Counter, &[String], usize),
) {
    let counters = (0..2100_u64)
        .map(|n| Write::Set {
            key: format!("k{n:04}"),
            value: n.to_string().into_bytes(),
        })
        .collect();
    block_on(storage.submit_group(WriteGroup::new("", counters))).unwrap();
    // Each instance has the deadline of one call; a fresh one per change, as a server would.
    let (runtime, _) = start_with(storage);
    let mut pages = 0;
    let listed = list_by_pages(&runtime, 333, |names| {
        let mut writer = block_on(runtime.instantiate()).unwrap();
        change(&mut writer, names, pages);
        pages += 1;
    });
    let mut seen = BTreeMap::new();
    for (name, value) in &listed {
        *seen.entry(name.clone()).or_insert(0) += 1;
        // A counter listed again after it was incremented shows the increments (millions).
        if let Some(n) = name.strip_prefix('k') {
            assert_eq!(*value % 1_000_000, n.parse::<u64>().unwrap(), "{name}");
        }
    }
    for n in 0..2100 {
        let name = format!("k{n:04}");
        let times = seen.get(&name).copied().unwrap_or(0);
        assert!(times >= 1, "{name} was present throughout but not listed");
        if exactly_once {
            assert_eq!(times, 1, "{name} listed {times} times");
        }
    }
    if exactly_once {
        let names: Vec<&String> = listed.iter().map(|(name, _)| name).collect();
        assert!(names.is_sorted(), "pages come in name order");
    }
}

/// While a listing runs, the last counter listed is removed and new ones appear before and after
/// it: on a store that lists by name every counter present throughout is still listed exactly
/// once.
fn pages_stay_exact_while_counters_change(storage: Arc<dyn Storage>) {
    pages_list_every_counter(storage, true, |writer, names, page| {
        let last = names.last().unwrap().clone();
        block_on(writer.reset(&last)).answer().unwrap().unwrap();
        block_on(writer.set(&format!("a-new{page}"), 1))
            .answer()
            .unwrap()
            .unwrap();
        block_on(writer.set(&format!("z-new{page}"), 1))
            .answer()
            .unwrap()
            .unwrap();
    });
}

#[test]
fn sqlite_pages_stay_exact_while_counters_change() {
    let db = TempDb::new();
    let storage = Arc::new(SqliteStorage::open(&db.path).unwrap());
    pages_stay_exact_while_counters_change(storage);
}

#[test]
fn memory_pages_stay_exact_while_counters_change() {
    pages_stay_exact_while_counters_change(Arc::new(MemoryStorage::default()));
}

/// On Redis, pages of 333 split `SCAN` steps of about 1,000 keys, and the component finishes a
/// step by reading it again. With counters only changing value meanwhile, every counter is
/// listed. (Counters added or removed between pages can make that second read cover fewer
/// buckets, so one may be missed: the contract promises Redis listings nothing more; see the
/// README.)
#[test]
fn redis_pages_list_every_counter_while_values_change() {
    let redis = RedisServer::start(&[]).unwrap();
    let storage = Arc::new(RedisStorage::open(&redis.url(0), false).unwrap());
    pages_list_every_counter(storage, false, |writer, names, _| {
        for name in names.iter().rev().take(3) {
            block_on(writer.increment(name, 1_000_000))
                .answer()
                .unwrap()
                .unwrap();
        }
    });
}

/// `find` tells a never-written counter from one at 0, and `find-many` reads several at once;
/// both check every name first.
#[test]
fn find_tells_missing_from_zero() {
    let db = TempDb::new();
    let (_runtime, mut counter) = common::restart(&db.path);
    block_on(counter.set("zero", 0)).answer().unwrap().unwrap();
    block_on(counter.set("seven", 7)).answer().unwrap().unwrap();
    assert_eq!(
        block_on(counter.find("zero")).answer().unwrap(),
        Ok(Some(0))
    );
    assert_eq!(block_on(counter.find("never")).answer().unwrap(), Ok(None));
    assert_eq!(block_on(counter.get("never")).answer().unwrap(), Ok(0));
    let names: Vec<String> = ["seven", "never", "zero", "seven"]
        .iter()
        .map(|name| name.to_string())
        .collect();
    assert_eq!(
        block_on(counter.find_many(&names)).answer().unwrap(),
        Ok(vec![Some(7), None, Some(0), Some(7)])
    );
    let bad = vec!["seven".to_string(), String::new()];
    assert_eq!(
        block_on(counter.find_many(&bad)).answer().unwrap(),
        Err(CounterError::InvalidName(
            "a counter name must not be empty".into()
        ))
    );
    db.write_raw("junk", "abc");
    assert_eq!(
        block_on(counter.find("junk")).answer().unwrap(),
        Err(CounterError::CorruptValue("junk".into()))
    );
    assert_eq!(
        block_on(counter.list_page(None, 0)).answer().unwrap(),
        Err(CounterError::InvalidPage(
            "limit must be 1 to 1000; got 0".into()
        ))
    );
}
