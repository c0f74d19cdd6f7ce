//! The README and `docs/` are tested like code: the contract they show is `wit/counter.wit`
//! verbatim, they document every `TALLY_*` variable the binary reads, every link between them
//! leads to a file and a heading that exist, and their command blocks (the README's five-minute
//! tour; the CLI, exactly-once and Python blocks and the exit-code examples in `docs/`) run, top
//! to bottom, with the output their `# →` comments promise (`docs/windows.md`'s too).

use crate::common;

use clap::CommandFactory;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The text of a document: `README.md`, or a file in `docs/`.
fn doc(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

fn readme() -> String {
    doc("README.md")
}

/// The README and every file in `docs/`, by path from the repository's root.
fn documents() -> Vec<(String, String)> {
    let mut documents = vec![("README.md".to_string(), readme())];
    let mut names: Vec<_> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".md"))
        .collect();
    names.sort();
    assert!(names.len() >= 7, "{names:?}");
    for name in names {
        let path = format!("docs/{name}");
        documents.push((path.clone(), doc(&path)));
    }
    documents
}

/// `docs/embedding.md` contains `wit/counter.wit` exactly, inside a wit code block.
#[test]
fn the_contract_document_shows_the_current_wit() {
    let wit = std::fs::read_to_string(root().join("wit/counter.wit")).unwrap();
    assert!(
        doc("docs/embedding.md").contains(&format!("```wit\n{wit}```\n")),
        "docs/embedding.md must show wit/counter.wit verbatim; paste the file into its wit block"
    );
}

/// Every relative link in the README and `docs/` leads to a file that exists, and a link with
/// a `#fragment` to a heading of that file (as GitHub makes its anchors).
#[test]
fn every_link_between_the_documents_resolves() {
    fn anchor(heading: &str) -> String {
        heading
            .trim_start_matches('#')
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect()
    }
    let mut links = 0;
    for (path, text) in documents() {
        let dir = Path::new(&path).parent().unwrap().to_path_buf();
        for target in text
            .split("](")
            .skip(1)
            .filter_map(|rest| rest.split(')').next())
        {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = target.split_once('#').unwrap_or((target, ""));
            let file = if file.is_empty() {
                PathBuf::from(&path)
            } else {
                dir.join(file)
            };
            let full = root().join(&file);
            assert!(full.exists(), "{path}: the link {target:?} leads nowhere");
            if !fragment.is_empty() {
                let headings: Vec<String> = std::fs::read_to_string(&full)
                    .unwrap()
                    .lines()
                    .filter(|line| line.starts_with('#'))
                    .map(anchor)
                    .collect();
                assert!(
                    headings.iter().any(|heading| heading == fragment),
                    "{path}: the link {target:?} names no heading of {}",
                    file.display()
                );
            }
            links += 1;
        }
    }
    assert!(links >= 20, "{links}");
}

/// Every environment variable an option reads is in the command line's table
/// (`docs/cli.md`), and the screenshot the README shows exists.
#[test]
fn the_documents_name_every_variable_and_the_screenshot() {
    fn variables(command: &clap::Command, found: &mut Vec<String>) {
        for arg in command.get_arguments() {
            if let Some(name) = arg.get_env() {
                found.push(name.to_string_lossy().into_owned());
            }
        }
        for sub in command.get_subcommands() {
            variables(sub, found);
        }
    }
    let mut found = Vec::new();
    variables(&tally::cli::Cli::command(), &mut found);
    let table = doc("docs/cli.md");
    let missing: Vec<_> = found
        .iter()
        .filter(|name| !table.contains(&format!("| `{name}` |")))
        .collect();
    assert!(found.len() >= 15, "{found:?}");
    assert!(
        missing.is_empty(),
        "docs/cli.md's table does not name {missing:?}"
    );

    assert!(readme().contains("](docs/dashboard.png)"));
    let png = std::fs::read(root().join("docs/dashboard.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
}

/// The `sh` block that follows `heading` in the document at `path`.
fn sh_block(path: &str, heading: &str) -> String {
    doc(path)
        .split(heading)
        .nth(1)
        .and_then(|section| section.split("```sh\n").nth(1))
        .and_then(|block| block.split("\n```").next())
        .unwrap()
        .to_string()
}

/// A fresh home directory with the binary this build made on `PATH`, for README blocks to run
/// in as a user would paste them (with bash, `set -e`, no `TALLY_*` variables).
fn shell_in_fresh_home(home: &Path, script: &str) -> std::process::Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_tally")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut bash = std::process::Command::new("bash");
    bash.args(["--norc", "-c", script])
        .current_dir(home)
        .env("HOME", home)
        .env("PATH", path)
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CACHE_HOME");
    common::without_tally_variables(&mut bash);
    bash
}

/// Runs a document's `sh` block and checks its standard output: every `# → TEXT` comment must be the
/// next line of output (`...` matches anything, `<TAB>` is a tab); a comment with nothing before
/// it promises a further line of the command above. `adapt` rewrites each command line first.
/// Returns the home directory it ran in.
fn run_promises(
    block: &str,
    adapt: impl Fn(&str) -> String,
    prepare: impl FnOnce(&mut std::process::Command),
) -> tempfile::TempDir {
    let mut script = String::from("set -e\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    let mut expected = Vec::new();
    for line in block.lines() {
        if line.starts_with("rustup ") || line.starts_with("cargo install ") {
            continue;
        }
        let (command, promise) = match line.split_once("# →") {
            Some((command, promise)) => (command, Some(promise.trim())),
            None => (line, None),
        };
        script.push_str(&adapt(command));
        script.push('\n');
        expected.extend(promise.map(|promise| adapt(promise).replace("<TAB>", "\t")));
    }
    assert!(expected.len() >= 8, "{expected:?}");

    let home = tempfile::tempdir().unwrap();
    let mut bash = shell_in_fresh_home(home.path(), &script);
    prepare(&mut bash);
    let output = bash.output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "the documented block failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Vec<&str> = stdout.lines().collect();
    assert_eq!(printed.len(), expected.len(), "printed:\n{stdout}");
    for (line, promise) in printed.iter().zip(&expected) {
        assert!(
            matches(line, promise),
            "printed {line:?}, the document promises {promise:?}"
        );
    }
    home
}

/// The five-minute tour, as a user would paste it: in a fresh home directory, with the binary
/// this build made on PATH (instead of its two install lines) and a free port for 8080.
#[test]
fn the_five_minute_tour_runs_as_written() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let home = run_promises(
        &sh_block("README.md", "## Five-minute tour"),
        |text| text.replace(":8080", &format!(":{port}")),
        |bash| {
            bash.env("TALLY_LISTEN", format!("127.0.0.1:{port}"));
        },
    );
    assert!(home.path().join(".local/share/tally/counters.db").is_file());
    assert!(home.path().join("visits-backup.db").is_file());
}

/// "Exactly once" runs as written: a keyed increment, its replay (header and body), the refused
/// reuse, and the CLI sharing the server's keys; on a free port for 8080.
#[test]
fn the_exactly_once_block_runs_as_written() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // `sleep 1` is a person's wait for the server; a loaded test machine may need longer, so
    // the test waits until the server answers instead.
    let ready = format!("until curl -sf localhost:{port}/healthz >/dev/null; do sleep 0.1; done");
    run_promises(
        &sh_block("docs/service.md", "## Exactly once"),
        |text| {
            text.replace(":8080", &format!(":{port}"))
                .replace("sleep 1", &ready)
        },
        |bash| {
            bash.env("TALLY_LISTEN", format!("127.0.0.1:{port}"));
        },
    );
}

/// The windows block runs as written, on the clock it sets itself: hits within and over the
/// limit (exit 5), a new window, the history, and windows that are not counters.
#[test]
fn the_windows_block_runs_as_written() {
    run_promises(
        &sh_block("docs/windows.md", "runs this block on a clock"),
        str::to_string,
        |_| {},
    );
}

/// The Python section runs as written: with the virtualenv `./setup --test` made instead of a
/// new one, the example from the repository, and a free port for Redis's 6379.
#[test]
fn the_python_block_runs_as_written() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let python = root().join(".tools/wasmtime-py/bin/python");
    assert!(python.exists(), "run ./setup --test");
    let example = root().join("examples/python/");
    run_promises(
        &sh_block(
            "docs/embedding.md",
            "**In Python, through wasmtime from PyPI**",
        ),
        |text| {
            if text.starts_with("python3 -m venv") {
                return String::new();
            }
            text.replace(".venv/bin/python", python.to_str().unwrap())
                .replace("examples/python/", example.to_str().unwrap())
                .replace("6379", &port.to_string())
        },
        |_| {},
    );
}

/// "Using the CLI" runs as written, every promised line checked; the completion script lands
/// where it says, in a home that did not have the directory.
#[test]
fn the_cli_block_runs_as_written() {
    let home = run_promises(
        &sh_block("docs/cli.md", "## Using the CLI"),
        str::to_string,
        |_| {},
    );
    let completion = home
        .path()
        .join(".local/share/bash-completion/completions/tally");
    assert!(
        std::fs::read_to_string(completion)
            .unwrap()
            .contains("_tally()")
    );
}

/// The exit-code examples (the `console` block after "Exit codes") print exactly what they show,
/// standard error included, run one after another in a fresh home from the repository's root
/// (where `README.md` is).
#[test]
fn the_exit_code_examples_print_what_they_show() {
    let cli = doc("docs/cli.md");
    let block = cli
        .split("**Exit codes**")
        .nth(1)
        .and_then(|section| section.split("```console\n").nth(1))
        .and_then(|block| block.split("\n```").next())
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut examples = 0;
    for example in block.split("$ ").filter(|text| !text.is_empty()) {
        let (command, shown) = example.split_once('\n').unwrap_or((example, ""));
        let mut bash = shell_in_fresh_home(home.path(), &format!("{command} 2>&1"));
        let output = bash.current_dir(root()).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim_end(),
            shown.trim_end(),
            "$ {command}"
        );
        examples += 1;
    }
    assert!(examples >= 4, "{block}");
}

/// Whether `line` is `pattern`, where each `...` in the pattern stands for any text.
fn matches(line: &str, pattern: &str) -> bool {
    let mut parts = pattern.split("...");
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (index, part) in parts.iter().enumerate() {
        if index + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}
