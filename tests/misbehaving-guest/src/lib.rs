//! A test-only counter component, built like the real one (by `host/build.rs`, from the same
//! `wit/`), that misbehaves on request so the tests can prove a bad guest costs one call only.
//!
//! `increment` and `get` of these names misbehave; every other name counts normally:
//! - `trap`: panics, which traps the instance.
//! - `loop`: spins forever, until the host's epoch deadline traps it.
//! - `oom`: allocates until the host's memory limit refuses to grow memory.
//! - `file`: reads `/etc/passwd`; answers with its length if the sandbox let it, else a
//!   `store-failure` saying "sandbox refused".
//! - `env`: reads the environment; answers with its size if there was any, else a
//!   `store-failure` saying "sandbox refused".
//! - `other-bucket`: opens the bucket `other`; answers 0 if the host allowed it, else a
//!   `store-failure` naming the store's error.
//! - `remembered`: answers how many `get` and `increment` calls this instance served before
//!   (a static it keeps): 0 in a fresh instance, more in one reused for several requests.
//! - `grow`: fills 2 MiB of new memory, frees it and answers 0: the instance's memory has grown
//!   for good (wasm memory never shrinks).
//!
//! Its initial memory holds 2 MiB of zeros: it cannot start within a 1 MiB memory limit.
//!
//! `increment` of these names counts first, then misbehaves:
//! - `applied-then-loop`: spins forever.
//! - `applied-then-300ms`: spins for 300 ms, then answers the new value.
//! - `keep-bucket`: answers the new value but never drops its bucket, so the handle stays
//!   open in the host's table after the call.
#![cfg(target_family = "wasm")]

// Private, so the generated bindings need no docs.
mod component {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "tally:counter/counter-component@0.2.1",
        generate_all,
    });

    use exports::tally::counter::counter::{Error, Guest, Page};
    use wasi::keyvalue::{atomics, store};

    struct Misbehaving;

    /// Two MiB of zeros in the component's initial memory, so it cannot start within a 1 MiB
    /// limit (the host refuses such a limit at start).
    static BALLAST: [u8; 2 << 20] = [0; 2 << 20];

    /// `get` and `increment` calls this instance has served: state a stateless component must
    /// not keep, kept on purpose.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    /// Misbehaves if `name` asks for it: traps, never returns, or answers in its place.
    fn misbehave(name: &str) -> Option<Result<u64, Error>> {
        let earlier_calls = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let refused = |what: &str| Err(Error::StoreFailure(format!("sandbox refused {what}")));
        match name {
            "trap" => panic!("asked to trap"),
            "loop" => {
                let mut spins = 0_u64;
                loop {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
            "oom" => {
                std::hint::black_box(&BALLAST);
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1; 1 << 20]));
                }
            }
            "file" => Some(match std::fs::read("/etc/passwd") {
                Ok(bytes) => Ok(bytes.len() as u64),
                Err(error) => refused(&format!("file access ({error})")),
            }),
            "remembered" => Some(Ok(earlier_calls)),
            "grow" => {
                std::hint::black_box(vec![1_u8; 2 << 20]);
                Some(Ok(0))
            }
            "other-bucket" => Some(store::open("other").map(|_| 0).map_err(failure)),
            "env" => Some(match std::env::vars().count() {
                0 => refused("environment access (it is empty)"),
                n => Ok(n as u64),
            }),
            _ => None,
        }
    }

    /// Spins for `time`, or forever.
    fn spin(time: Option<std::time::Duration>) {
        let started = std::time::Instant::now();
        let mut spins = 0_u64;
        while time.is_none_or(|time| started.elapsed() < time) {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }

    fn failure(error: store::Error) -> Error {
        Error::StoreFailure(format!("{error:?}"))
    }

    impl Guest for Misbehaving {
        fn get(name: String) -> Result<u64, Error> {
            if let Some(answer) = misbehave(&name) {
                return answer;
            }
            let bucket = store::open("").map_err(failure)?;
            let bytes = bucket
                .get(&name)
                .map_err(failure)?
                .unwrap_or_else(|| b"0".to_vec());
            String::from_utf8_lossy(&bytes)
                .parse()
                .map_err(|_| Error::CorruptValue(name))
        }

        fn increment(name: String, by: u64) -> Result<u64, Error> {
            if let Some(answer) = misbehave(&name) {
                return answer;
            }
            let bucket = store::open("").map_err(failure)?;
            let value = atomics::increment(&bucket, &name, by).map_err(failure)?;
            match name.as_str() {
                "keep-bucket" => std::mem::forget(bucket),
                "applied-then-loop" => spin(None),
                "applied-then-300ms" => spin(Some(std::time::Duration::from_millis(300))),
                _ => {}
            }
            Ok(value)
        }

        fn set(name: String, value: u64) -> Result<(), Error> {
            let bucket = store::open("").map_err(failure)?;
            bucket
                .set(&name, value.to_string().as_bytes())
                .map_err(failure)
        }

        fn reset(name: String) -> Result<(), Error> {
            let bucket = store::open("").map_err(failure)?;
            bucket.delete(&name).map_err(failure)
        }

        fn find(name: String) -> Result<Option<u64>, Error> {
            Self::get(name).map(Some)
        }

        fn find_many(names: Vec<String>) -> Result<Vec<Option<u64>>, Error> {
            names.into_iter().map(Self::find).collect()
        }

        fn list() -> Result<Vec<(String, u64)>, Error> {
            Err(Error::StoreFailure(
                "the misbehaving guest does not list".into(),
            ))
        }

        fn list_page(_cursor: Option<String>, _limit: u32) -> Result<Page, Error> {
            Self::list().map(|counters| Page {
                counters,
                next: None,
            })
        }
    }

    /// Windows are not what this component tests: every call says so.
    mod windows {
        use super::Misbehaving;
        use super::exports::tally::counter::window::{
            Error, Guest, HitOutcome, Policy, SweepPage, WindowSpec, WindowsPage,
        };

        fn none<T>() -> Result<T, Error> {
            Err(Error::StoreFailure(
                "the misbehaving guest has no windows".into(),
            ))
        }

        impl Guest for Misbehaving {
            fn hit(
                _: String,
                _: WindowSpec,
                _: u64,
                _: u64,
                _: Policy,
                _: u64,
            ) -> Result<HitOutcome, Error> {
                none()
            }

            fn history(_: String, _: u64, _: u32, _: u64) -> Result<Vec<u64>, Error> {
                none()
            }

            fn list_windows(_: Option<String>) -> Result<WindowsPage, Error> {
                none()
            }

            fn sweep(_: Option<String>, _: u32, _: u64) -> Result<SweepPage, Error> {
                none()
            }
        }
    }

    export!(Misbehaving);
}
