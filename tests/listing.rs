//! Lists that scale: `GET /counters` answers one page and links to the next (RFC 8288 `Link`),
//! `tally list` streams page after page, and pages resume at the store's own position, so a
//! listing is exact while counters come and go anywhere on SQLite, memory and PostgreSQL (by
//! name), lists every counter at least once on Redis (`SCAN` order), and its cursors outlive
//! the server that made them.

use crate::common::Answer as _;
use crate::common::server::Server;
use crate::common::{self, TempDb, block_on, start_with, tally_ok};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tally::{CounterError, Runtime};
use tally_keyvalue::storage::{
    MemoryStorage, PostgresOptions, PostgresStorage, RedisStorage, SqliteStorage, Storage, Write,
    WriteGroup,
};
use tally_test_support::postgres_server::PostgresServer;
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
    // The store's position after the page (its last key, `c00999`, in base64url), signed: 24
    // hex digits and a dot.
    let link = first.header("link").unwrap();
    let signed = link
        .strip_prefix("</counters?limit=1000&cursor=")
        .and_then(|rest| rest.strip_suffix(".YzAwOTk5>; rel=\"next\""))
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

    // Cursors no server handed out: made up, unsigned, signed with a made-up tag, altered,
    // or the component's own form.
    let real = next_link(&server.request("GET", "/counters?limit=999", None)).unwrap();
    let real_cursor = real.split_once("cursor=").unwrap().1.to_string();
    let (tag, position) = real_cursor.split_once('.').unwrap();
    let refused = "invalid query: cursor is not one a server of this store handed out (only a \
                   page's Link carries one); list again from the first page";
    for cursor in [
        "abc".to_string(),
        String::new(),
        "%3Azzzz".into(),
        "123%3Ac00010".into(),
        format!("{}.{position}", "0".repeat(24)),
        format!("{tag}.YzAwOTkw"),
        format!("{real_cursor}0"),
        position.to_string(),
        format!("{tag}."),
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

    // The second page of 999 and the third go on from the store's position, and the same
    // cursors work after a restart: the key that signs them lives in the database.
    let second = server.request("GET", &real, None);
    assert_eq!(second.status, 200, "{second:?}");
    let next = next_link(&second).unwrap();
    let third = server.request("GET", &next, None);
    assert_eq!(third.status, 200);
    server.kill();
    let server = Server::start(&db.path, &[]);
    for (url, first) in [(&real, "c00999"), (&next, "c01998")] {
        let response = server.request("GET", url, None);
        assert_eq!(response.status, 200, "{url}: {response:?}");
        let page: Vec<serde_json::Value> = serde_json::from_str(&response.body).unwrap();
        assert_eq!(page[0]["name"], first, "{url}");
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
/// instance, each resuming at the position the page before it gave; `between` runs after every
/// page with the names listed so far.
fn list_by_pages(
    runtime: &Runtime,
    limit: u32,
    mut between: impl FnMut(&[String]),
) -> Vec<(String, u64)> {
    let mut from = None;
    let mut listed = Vec::new();
    loop {
        let mut counter = block_on(runtime.instantiate()).unwrap();
        let page = block_on(counter.list_from(from, limit))
            .map_err(|failure| failure.message())
            .unwrap()
            .value;
        assert!(page.counters.len() <= limit as usize);
        listed.extend(page.counters);
        let names: Vec<String> = listed.iter().map(|(name, _)| name.clone()).collect();
        between(&names);
        match page.next {
            Some(next) => from = Some(next),
            None => return listed,
        }
    }
}

/// Fills `storage` with 2,500 counters `c00000`... (value = number) and lists them by pages of
/// `limit` through one runtime; after every page, in one write group, ten counters are created
/// before the cursor (five that sort first, five just before the page's last name) and the last
/// first-made counter listed is deleted. Checks that no counter
/// was listed more than `most` times, every counter present throughout at least once, each with
/// its stored value; the names listed.
fn list_while_counters_change_before_the_cursor(
    storage: Arc<dyn Storage>,
    limit: u32,
    most: usize,
) -> Vec<String> {
    let count = 2500;
    let counters = (0..count)
        .map(|n| Write::Set {
            key: format!("c{n:05}"),
            value: n.to_string().into_bytes(),
        })
        .collect();
    block_on(storage.submit_group(WriteGroup::new("", counters))).unwrap();
    let (runtime, _) = start_with(storage.clone());
    let mut deleted = BTreeSet::new();
    let mut page = 0;
    let listed = list_by_pages(&runtime, limit, |names| {
        page += 1;
        // `c00992~7-0` sorts between `c00992` and `c00993`: just before the page's last name.
        let before = names
            .len()
            .checked_sub(2)
            .map_or("b", |at| names[at].as_str());
        let mut changes: Vec<Write> = (0..5)
            .flat_map(|n| [format!("a{page:05}-{n}"), format!("{before}~{page}-{n}")])
            .map(|key| Write::Set {
                key,
                value: b"1".to_vec(),
            })
            .collect();
        if let Some(gone) = names.iter().rev().find(|name| original(name).is_some())
            && deleted.insert(gone.clone())
        {
            changes.push(Write::Delete { key: gone.clone() });
        }
        block_on(storage.submit_group(WriteGroup::new("", changes))).unwrap();
    });
    let mut times: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, value) in &listed {
        *times.entry(name).or_default() += 1;
        if let Some(n) = original(name) {
            assert_eq!(*value, n, "{name}");
        }
    }
    for (name, listed) in &times {
        assert!(
            *listed <= most,
            "limit {limit}: {name} listed {listed} times"
        );
    }
    for n in 0..count {
        let name = format!("c{n:05}");
        assert!(
            deleted.contains(&name) || times.contains_key(name.as_str()),
            "limit {limit}: {name} was present throughout and not listed"
        );
    }
    listed.into_iter().map(|(name, _)| name).collect()
}

/// The number of one of the 2,500 counters `c00000`... made first; `None` for the others.
fn original(name: &str) -> Option<u64> {
    name.strip_prefix('c')
        .filter(|digits| digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse().ok())
}

/// On a store that lists by name, every counter present throughout is listed exactly once, in
/// name order, at limits 1, 7 and 1000, however many are created or deleted before the cursor.
fn listings_stay_exact(open: impl Fn() -> Arc<dyn Storage>) {
    for limit in [1, 7, 1000] {
        let listed = list_while_counters_change_before_the_cursor(open(), limit, 1);
        assert!(listed.is_sorted(), "limit {limit}: not in name order");
    }
}

#[test]
fn sqlite_listings_stay_exact_while_counters_come_and_go() {
    let dbs: Vec<TempDb> = (0..3).map(|_| TempDb::new()).collect();
    let next = std::cell::Cell::new(0);
    listings_stay_exact(|| {
        let db = &dbs[next.replace(next.get() + 1)];
        Arc::new(SqliteStorage::open(&db.path).unwrap())
    });
}

#[test]
fn memory_listings_stay_exact_while_counters_come_and_go() {
    listings_stay_exact(|| Arc::new(MemoryStorage::default()));
}

#[test]
fn postgres_listings_stay_exact_while_counters_come_and_go() {
    let postgres = PostgresServer::start(&[]).unwrap();
    let next = std::cell::Cell::new(0);
    listings_stay_exact(|| {
        let schema = format!("listing{}", next.replace(next.get() + 1));
        let options = PostgresOptions {
            schema,
            ..PostgresOptions::default()
        };
        Arc::new(PostgresStorage::open(&postgres.url(), options).unwrap())
    });
}

/// On Redis (`SCAN` order), every counter present throughout is listed at least once while
/// counters come and go, as `SCAN` promises; one may be listed twice (`SCAN` may repeat a key
/// when the key space grows or shrinks meanwhile), never more here.
#[test]
fn redis_listings_list_every_counter_while_counters_come_and_go() {
    let redis = RedisServer::start(&[]).unwrap();
    for (db, limit) in [(0, 7), (1, 1000)] {
        let storage = Arc::new(RedisStorage::open(&redis.url(db), false).unwrap());
        list_while_counters_change_before_the_cursor(storage, limit, 2);
    }
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
