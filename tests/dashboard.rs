//! The dashboard in a real browser: headless Chromium (Debian's package) driven by Playwright
//! (`tests/browser/dashboard.mjs`) against the real `tally serve`. It creates counters and clicks
//! +1; this test increments behind the page's back (the page must pick it up by itself), then
//! kills and restarts the server on the same port; after a reload the page shows the same values,
//! and so does the database file. Then it adds more counters than a page holds, and the page
//! pages through them by the API's `Link` header.
//!
//! The screenshot it takes is `docs/dashboard.png` in the README;
//! `TALLY_UPDATE_SCREENSHOT=1 cargo test --test integration dashboard::` writes it there,
//! otherwise it goes to the target directory.

use crate::common::server::Server;
use crate::common::{TempDb, tally_ok};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser")
}

/// Click +1, see the value change, restart the server, reload, see the same value.
#[test]
fn dashboard_counts_in_a_real_browser_across_a_restart() {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in tests/browser: run ./setup"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: run ./setup (it installs Debian's chromium)"
    );
    let screenshot = if std::env::var_os("TALLY_UPDATE_SCREENSHOT").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dashboard.png")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png")
    };
    let _ = std::fs::remove_file(&screenshot);

    let db = TempDb::new();
    // The windows' time stands still: a minute's end cannot split the hits the page shows.
    let clock = db.dir.path().join("now");
    std::fs::write(&clock, "1800000030000").unwrap();
    let global = ["--clock-file", clock.to_str().unwrap()];
    let mut server = Some(Server::start_with(&db.path, &global, &[]));
    let address = server.as_ref().unwrap().address;
    let mut driver = Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(&dir)
        .env("TALLY_URL", format!("http://{address}"))
        .env("TALLY_SCREENSHOT", &screenshot)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_driver = driver.stdin.take().unwrap();
    let from_driver = BufReader::new(driver.stdout.take().unwrap());

    let mut steps = Vec::new();
    let mut result = None;
    for line in from_driver.lines() {
        let line = line.unwrap();
        if let Some(step) = line.strip_prefix("STEP ") {
            let running = server.as_ref().unwrap();
            match step {
                "external-increment" => {
                    // What the page shows now was stored: read it through another client.
                    assert_eq!(running.value("visits"), 3);
                    let response = running.request(
                        "POST",
                        "/counters/visits/increment",
                        Some(r#"{"by": 10}"#),
                    );
                    assert_eq!(response.status, 200, "{response:?}");
                }
                "restart" => {
                    server.take().unwrap().kill();
                    let listen = address.to_string();
                    server = Some(Server::start_with(
                        &db.path,
                        &global,
                        &["--listen", &listen],
                    ));
                }
                "many-counters" => {
                    // 60 more: with the 2 the page made, 62 over two pages of 50.
                    for n in 0..60 {
                        let response = running.request(
                            "PUT",
                            &format!("/counters/n{n:03}"),
                            Some(&format!(r#"{{"value": {n}}}"#)),
                        );
                        assert_eq!(response.status, 200, "{response:?}");
                    }
                }
                "windows" | "more-hits" => {
                    let hits: &[(&str, usize)] = if step == "windows" {
                        &[("api:ann", 3), ("api:bob", 1)]
                    } else {
                        &[("api:ann", 2)]
                    };
                    for (name, times) in hits {
                        for _ in 0..*times {
                            let response = running.request(
                                "POST",
                                &format!("/windows/{name}/hit"),
                                Some(r#"{"window": "1m", "limit": 10}"#),
                            );
                            assert_eq!(response.status, 200, "{response:?}");
                        }
                    }
                }
                other => panic!("unknown step {other}"),
            }
            steps.push(step.to_string());
            writeln!(to_driver, "go").unwrap();
        } else if let Some(json) = line.strip_prefix("RESULT ") {
            result = Some(json.to_string());
        }
    }
    let output = driver.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the browser test failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        steps,
        [
            "external-increment",
            "restart",
            "windows",
            "many-counters",
            "more-hits"
        ]
    );

    let tricky = "<b>\"signups\"</b> / ünï ✓";
    let result: serde_json::Value = serde_json::from_str(&result.unwrap()).unwrap();
    let shown: Vec<(String, String)> = serde_json::from_value(result["shown"].clone()).unwrap();
    // The sparklines: 30 windows, the current one last.
    let mut ann = vec![0; 29];
    ann.push(3);
    assert_eq!(result["ann"], serde_json::json!(ann));
    ann[29] = 5;
    assert_eq!(result["annLater"], serde_json::json!(ann));
    // Filtered: no counter holds "bob", one window does; ten counters hold "n05", no window.
    assert_eq!(
        result["bob"],
        serde_json::json!({ "counters": [], "windows": ["api:bob"] })
    );
    assert_eq!(
        result["n05"],
        serde_json::json!({
            "counters": (50..60).map(|n| format!("n{n:03}")).collect::<Vec<_>>(),
            "windows": []
        })
    );
    assert_eq!(
        shown,
        [
            (tricky.to_string(), "42".to_string()),
            ("visits".to_string(), "13".to_string())
        ]
    );
    server.take().unwrap().kill();
    // Each click on +1 (three on visits, one on the tricky name) sent its own idempotency key,
    // recorded with its increment.
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    let records: Vec<(String, String)> = conn
        .prepare("SELECT key, fingerprint FROM idempotency ORDER BY fingerprint")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut fingerprints: Vec<String> = vec!["increment \"visits\" by 1".into(); 3];
    fingerprints.push(format!("increment {tricky:?} by 1"));
    fingerprints.sort();
    assert_eq!(
        records.iter().map(|(_, f)| f.clone()).collect::<Vec<_>>(),
        fingerprints
    );
    let keys: std::collections::BTreeSet<&str> = records.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys.len(), 4, "a key was sent twice: {records:?}");
    assert!(
        keys.iter()
            .all(|key| key.len() == 32 && key.bytes().all(|byte| byte.is_ascii_hexdigit())),
        "{keys:?}"
    );
    assert_eq!(tally_ok(&db.path, &["get", "visits"]), "13\n");
    assert_eq!(tally_ok(&db.path, &["get", tricky]), "42\n");

    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5_000);
}

/// With `--auth-token` the page still shows the counters; +1 asks for the token, then counts.
#[test]
fn dashboard_asks_for_the_auth_token() {
    let dir = browser_dir();
    let db = TempDb::new();
    tally_ok(&db.path, &["set", "visits", "5"]);
    let server = Server::start(&db.path, &["--auth-token", "s3cret"]);
    assert_eq!(
        run_page(&dir, &server, ("TALLY_AUTH_TOKEN_FOR_PAGE", "s3cret")),
        "RESULT \"auth ok\"\n"
    );
    assert_eq!(server.value("visits"), 6);
}

/// A web page of another site, in the real browser, cannot count: its no-cors `text/plain`
/// fetch, its beacon and its `text/plain` form all reach the server and are refused (403
/// `forbidden_origin`), and the counter is unchanged; the browser reaching the server through
/// a name that resolves to 127.0.0.1 (DNS rebinding) gets 403 `forbidden_host`.
#[test]
fn a_page_of_another_site_cannot_count() {
    let dir = browser_dir();
    let db = TempDb::new();
    tally_ok(&db.path, &["set", "visits", "5"]);
    let server = Server::start(&db.path, &[]);
    assert_eq!(
        run_page(&dir, &server, ("TALLY_CROSS_SITE", "1")),
        "RESULT {\"fetched\":\"sent\",\"form\":[403,\"forbidden_origin\"],\
         \"rebound\":[403,\"forbidden_host\"]}\n"
    );
    assert_eq!(server.value("visits"), 5);
    let metrics = server.request("GET", "/metrics", None).body;
    let refused = metrics
        .lines()
        .find(|line| {
            line.starts_with("tally_http_requests_total{method=\"POST\",route=\"/counters/{name}/increment\",status=\"403\"}")
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|count| count.parse::<u64>().ok());
    // The fetch, the beacon and the form.
    assert_eq!(refused, Some(3), "{metrics}");
}

/// Runs the browser script in `dir` against `server` with one more variable (`setting`, which
/// picks the script's scenario) and returns what it printed; a failed run fails the test.
fn run_page(dir: &std::path::Path, server: &Server, setting: (&str, &str)) -> String {
    let output = Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(dir)
        .env("TALLY_URL", format!("http://{}", server.address))
        .env(setting.0, setting.1)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the browser test failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
