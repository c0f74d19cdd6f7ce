//! The component on the reference implementation of `wasi:keyvalue`: wasmtime's own
//! `wasmtime-wasi-keyvalue` crate (an in-memory store), linked by a host that shares nothing with
//! tally's but the generated export bindings.
//!
//! That store gives every `open` a fresh copy of the data it was seeded with, and the component
//! opens the bucket on every call: within one call everything behaves as on tally's host, but no
//! call sees an earlier call's writes. The tests seed the data each call needs.

use std::sync::OnceLock;
use tally::CounterError;
use tally::bindings::{CounterComponent, CounterComponentPre};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_keyvalue::{WasiKeyValue, WasiKeyValueCtx, WasiKeyValueCtxBuilder};

struct Host {
    table: ResourceTable,
    wasi: WasiCtx,
    keyvalue: WasiKeyValueCtx,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The embedded component, compiled and linked once per test binary.
fn pre() -> &'static CounterComponentPre<Host> {
    static PRE: OnceLock<CounterComponentPre<Host>> = OnceLock::new();
    PRE.get_or_init(|| {
        let engine = Engine::default();
        let component = Component::new(&engine, tally::runtime::EMBEDDED_COMPONENT).unwrap();
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        wasmtime_wasi_keyvalue::add_to_linker(&mut linker, |host: &mut Host| {
            WasiKeyValue::new(&host.keyvalue, &mut host.table)
        })
        .unwrap();
        CounterComponentPre::new(linker.instantiate_pre(&component).unwrap()).unwrap()
    })
}

/// A fresh instance on a reference store seeded with `data`.
async fn instance(data: &[(&str, &str)]) -> (Store<Host>, CounterComponent) {
    let keyvalue = WasiKeyValueCtxBuilder::new()
        .in_memory_data(data.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .build();
    let host = Host {
        table: ResourceTable::new(),
        wasi: WasiCtx::builder().build(),
        keyvalue,
    };
    let mut store = Store::new(pre().engine(), host);
    let bindings = pre().instantiate_async(&mut store).await.unwrap();
    (store, bindings)
}

/// get, increment, set, reset and list answer as on tally's host.
#[tokio::test]
async fn operations_match_tallys_host() {
    let (mut store, counter) = instance(&[("visits", "41"), ("other", "7")]).await;
    let api = counter.tally_counter_counter();
    assert_eq!(api.call_get(&mut store, "visits").await.unwrap(), Ok(41));
    assert_eq!(api.call_get(&mut store, "never").await.unwrap(), Ok(0));
    assert_eq!(
        api.call_increment(&mut store, "visits", 1).await.unwrap(),
        Ok(42)
    );
    assert_eq!(
        api.call_increment(&mut store, "new", 5).await.unwrap(),
        Ok(5)
    );
    assert_eq!(
        api.call_set(&mut store, "visits", 100).await.unwrap(),
        Ok(())
    );
    assert_eq!(api.call_reset(&mut store, "visits").await.unwrap(), Ok(()));
    assert_eq!(
        api.call_list(&mut store).await.unwrap(),
        Ok(vec![("other".to_string(), 7), ("visits".to_string(), 41)])
    );
    // Each call opened a fresh copy of the seed: the writes above are gone, as documented.
    assert_eq!(api.call_get(&mut store, "visits").await.unwrap(), Ok(41));
}

/// The typed errors come out the same: invalid name, overflow, corrupt value.
#[tokio::test]
async fn errors_match_tallys_host() {
    let max = u64::MAX.to_string();
    let (mut store, counter) = instance(&[("big", &max), ("word", "abc")]).await;
    let api = counter.tally_counter_counter();
    assert_eq!(
        api.call_increment(&mut store, "big", 1).await.unwrap(),
        Err(CounterError::Overflow("big".into()))
    );
    assert_eq!(
        api.call_increment(&mut store, "word", 1).await.unwrap(),
        Err(CounterError::CorruptValue("word".into()))
    );
    assert_eq!(
        api.call_get(&mut store, "word").await.unwrap(),
        Err(CounterError::CorruptValue("word".into()))
    );
    assert_eq!(
        api.call_get(&mut store, "").await.unwrap(),
        Err(CounterError::InvalidName(
            "a counter name must not be empty".into()
        ))
    );
}
