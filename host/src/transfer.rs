//! Moving counters between stores: `tally export` writes JSON lines, `tally import` reads them.
//!
//! The format is one JSON object per line, `{"name":"visits","value":42}`, sorted by name: it
//! diffs well, streams, and any tool that writes JSON can produce it.
//!
//! Both run in the host on the [`Storage`] trait rather than through the component, with the
//! component's own rules (the guest crate's pure `name` and `value` modules, compiled natively):
//! the component's interface moves one counter per call, while an export must page through any
//! number of counters without the per-call deadline and memory limit of a sandboxed instance, and
//! an import must be all or nothing. So an import checks the whole file first and then writes
//! every counter in one write group ([`Storage::write_group`]: all or nothing).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::BufRead;
use std::ops::ControlFlow;
use tally_keyvalue::storage::{Storage, StorageError, Write, WriteGroup, value};

/// One line of an export file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// The counter's name.
    pub name: String,
    /// Its value: any exact spelling of a whole number (`5`, `5.0`, `5e0`), as in the HTTP API.
    #[serde(deserialize_with = "crate::whole_number::deserialize")]
    pub value: u64,
}

/// Why an import file was refused or could not be read. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A line is not a valid counter (the file's fault).
    #[error("line {line}: {reason}")]
    InvalidLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it and, where it helps, what to do.
        reason: String,
    },
    /// The file could not be read.
    #[error("cannot read the import file: {0}")]
    Read(std::io::Error),
}

/// Why an export stopped. What was written before stays written (an export is a stream).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A stored value is not a decimal `u64` (something other than tally wrote it).
    #[error("counter {0:?} holds a stored value that is not a decimal u64")]
    CorruptValue(String),
    /// The store failed.
    #[error("reading the counters: {0}")]
    Storage(StorageError),
    /// The output could not be written.
    #[error("writing the export: {0}")]
    Write(#[from] std::io::Error),
}

impl From<StorageError> for ExportError {
    fn from(failure: StorageError) -> Self {
        Self::Storage(failure)
    }
}

/// Writes every counter of the default bucket to `out` as JSON lines, sorted by name, and
/// returns how many. From SQLite the export is one point in time (one read transaction); from
/// other stores each value is read when its turn comes. Windows' keys (`tally hit`), which are
/// not counters, are left out: they hold counts that reset, not state to move.
pub async fn export(
    storage: &dyn Storage,
    out: &mut (impl std::io::Write + Send),
) -> Result<usize, ExportError> {
    let mut written = 0;
    let mut stopped = None;
    let mut visit = |name: &str, bytes: &[u8]| {
        if tally_guest::window::is_window_key(name) {
            return ControlFlow::Continue(());
        }
        let line = value::decode(bytes)
            .ok_or_else(|| ExportError::CorruptValue(name.to_string()))
            .and_then(|value| {
                let line = Line {
                    name: name.to_string(),
                    value,
                };
                serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
                Ok(out.write_all(b"\n")?)
            });
        match line {
            Ok(()) => {
                written += 1;
                ControlFlow::Continue(())
            }
            Err(error) => {
                stopped = Some(error);
                ControlFlow::Break(())
            }
        }
    };
    storage.scan("", &mut visit).await?;
    if let Some(error) = stopped {
        return Err(error);
    }
    out.flush()?;
    Ok(written)
}

/// Reads and checks a whole import file: every line a `{"name", "value"}` object with a valid
/// name, a value `counter_limit` or less (the store's largest counter), and no name twice. Blank
/// lines are skipped. `bytes_read` is told how many bytes were consumed so far.
pub fn read_lines(
    reader: impl BufRead,
    counter_limit: u64,
    bytes_read: &mut dyn FnMut(u64),
) -> Result<Vec<Line>, ImportError> {
    let mut lines = Vec::new();
    // Where each name was first seen, to point at both lines of a duplicate.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut consumed = 0_u64;
    for (index, text) in reader.split(b'\n').enumerate() {
        let number = index + 1;
        let text = text.map_err(ImportError::Read)?;
        consumed += text.len() as u64 + 1;
        bytes_read(consumed);
        let invalid = |reason: String| ImportError::InvalidLine {
            line: number,
            reason,
        };
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line: Line = serde_json::from_slice(&text).map_err(|error| {
            // serde_json's own position counts lines of the one line it read: only the
            // column means something here.
            let reason = error.to_string();
            let reason = reason
                .rsplit_once(" at line ")
                .map_or(reason.as_str(), |(reason, _)| reason);
            invalid(format!(
                "expected {{\"name\": \"...\", \"value\": N}} with N from 0 to {counter_limit}: \
                 {reason} (column {})",
                error.column()
            ))
        })?;
        tally_guest::name::validate(&line.name)
            .map_err(|reason| invalid(format!("invalid counter name: {reason}")))?;
        if line.value > counter_limit {
            return Err(invalid(format!(
                "counter {:?} has the value {}, above this store's largest counter \
                 {counter_limit}",
                line.name, line.value
            )));
        }
        if let Some(first) = seen.insert(line.name.clone(), number) {
            return Err(invalid(format!(
                "counter {:?} already appeared on line {first}; a file names each counter once",
                line.name
            )));
        }
        lines.push(line);
    }
    Ok(lines)
}

/// Stores every line's counter, in one write group: all of them or, on error, none. Counters not
/// in `lines` are left as they are. Takes the lines by value so their names move into the write
/// instead of being copied (imports can hold millions).
pub async fn import(storage: &dyn Storage, lines: Vec<Line>) -> Result<(), StorageError> {
    let writes = lines
        .into_iter()
        .map(|line| Write::Set {
            key: line.name,
            value: value::encode(line.value),
        })
        .collect();
    storage
        .submit_group(WriteGroup::new("", writes))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Line>, ImportError> {
        read_lines(text.as_bytes(), u64::MAX, &mut |_| {})
    }

    fn refusal(text: &str) -> String {
        read(text).unwrap_err().to_string()
    }

    /// `future` run to its end (the memory store's futures are ready at once).
    fn block<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn set(storage: &dyn Storage, name: &str, value: &[u8]) {
        let write = Write::Set {
            key: name.into(),
            value: value.to_vec(),
        };
        let request = tally_keyvalue::storage::WriteRequest::new("", write);
        block(storage.submit_durable(request)).unwrap();
    }

    /// The component (tally-guest) and the store (tally-keyvalue) keep their own copy of the
    /// value encoding: both accept and refuse the same bytes, and write the same text.
    #[test]
    fn the_component_and_the_store_read_counters_alike() {
        let mut samples: Vec<Vec<u8>> = [
            &b""[..],
            b"0",
            b"007",
            b"-1",
            b"+1",
            b" 1",
            b"1 ",
            b"1.5",
            b"1e3",
            b"abc",
            b"9223372036854775808",
            b"18446744073709551615",
            b"18446744073709551616",
            b"99999999999999999999",
            "٣".as_bytes(),
        ]
        .map(<[u8]>::to_vec)
        .to_vec();
        samples.extend((0..=u8::MAX).map(|byte| vec![byte]));
        for bytes in &samples {
            assert_eq!(
                tally_guest::value::decode(bytes),
                value::decode(bytes),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        for number in [0, 7, 10, i64::MAX as u64, u64::MAX] {
            assert_eq!(tally_guest::value::encode(number), value::encode(number));
        }
    }

    /// What `export` writes, `read_lines` reads back unchanged; the export pages through every
    /// counter (several pages) in name order.
    #[test]
    fn export_and_read_lines_round_trip() {
        use tally_keyvalue::storage::{MAX_PAGE_SIZE, MemoryStorage};
        let storage: &dyn Storage = &MemoryStorage::new();
        let mut counters = vec![
            ("a".to_string(), 0),
            ("ünï \"quoted\"".to_string(), u64::MAX),
        ];
        counters.extend((0..MAX_PAGE_SIZE * 2).map(|i| (format!("c{i:05}"), i as u64)));
        for (name, value) in counters.iter().rev() {
            set(storage, name, value.to_string().as_bytes());
        }
        // A window's key is not a counter: not exported.
        set(storage, &tally_guest::window::key("a", 60_000, 7), b"3");
        let mut file = Vec::new();
        assert_eq!(block(export(storage, &mut file)).unwrap(), counters.len());
        let text = String::from_utf8(file).unwrap();
        assert!(text.starts_with("{\"name\":\"a\",\"value\":0}\n{\"name\":\"c00000\""));
        assert!(
            text.ends_with("{\"name\":\"ünï \\\"quoted\\\"\",\"value\":18446744073709551615}\n")
        );
        counters.sort();
        let back: Vec<_> = read(&text)
            .unwrap()
            .into_iter()
            .map(|l| (l.name, l.value))
            .collect();
        assert_eq!(back, counters);

        set(storage, "c00001", b"abc");
        let error = block(export(storage, &mut Vec::new())).unwrap_err();
        assert!(matches!(error, ExportError::CorruptValue(ref name) if name == "c00001"));
    }

    /// Every kind of bad line is refused with its line number and the reason.
    #[test]
    fn bad_lines_are_named() {
        let ok = "{\"name\":\"a\",\"value\":1}\n";
        assert_eq!(read(&format!("{ok}\n  \n{ok}")).unwrap_err().to_string(), {
            "line 4: counter \"a\" already appeared on line 1; a file names each counter once"
        });
        assert!(refusal(&format!("{ok}not json")).starts_with("line 2: expected {\"name\""));
        // One line number: the file's; serde_json's own position gives only the column.
        assert_eq!(
            refusal(&format!("{ok}{{\"name\":\"b\",\"value\":1,}}")),
            "line 2: expected {\"name\": \"...\", \"value\": N} with N from 0 to \
             18446744073709551615: trailing comma (column 23)"
        );
        assert!(refusal("{\"name\":\"a\",\"value\":-1}").starts_with("line 1: expected"));
        assert!(refusal("{\"name\":\"a\",\"value\":1.5}").starts_with("line 1: expected"));
        assert!(refusal("{\"name\":\"a\",\"value\":\"5\"}").starts_with("line 1: expected"));
        assert!(refusal("{\"name\":\"a\",\"value\":18446744073709551616}").starts_with("line 1:"));
        assert!(refusal("{\"name\":\"a\"}").contains("missing field `value`"));
        assert!(refusal("{\"name\":\"a\",\"value\":1,\"x\":2}").contains("unknown field `x`"));
        assert_eq!(
            refusal("{\"name\":\"\",\"value\":1}"),
            "line 1: invalid counter name: a counter name must not be empty"
        );
        assert_eq!(
            read_lines("{\"name\":\"a\",\"value\":10}".as_bytes(), 9, &mut |_| {})
                .unwrap_err()
                .to_string(),
            "line 1: counter \"a\" has the value 10, above this store's largest counter 9"
        );
    }

    /// Values are read with the HTTP API's rule: any exact spelling of a whole number.
    #[test]
    fn values_are_whole_numbers_in_any_spelling() {
        let values: Vec<u64> = read(
            "{\"name\":\"a\",\"value\":5.0}\n{\"name\":\"b\",\"value\":5e0}\n\
             {\"name\":\"c\",\"value\":1.8446744073709551615e19}\n{\"name\":\"d\",\"value\":7}",
        )
        .unwrap()
        .into_iter()
        .map(|line| line.value)
        .collect();
        assert_eq!(values, [5, 5, u64::MAX, 7]);
    }

    /// Progress counts every byte, so a bar reaches the file's size.
    #[test]
    fn progress_reaches_the_file_size() {
        let text = "{\"name\":\"a\",\"value\":1}\n{\"name\":\"b\",\"value\":2}\n";
        let mut last = 0;
        read_lines(text.as_bytes(), u64::MAX, &mut |bytes| last = bytes).unwrap();
        assert!(last >= text.len() as u64, "{last}");
    }
}
