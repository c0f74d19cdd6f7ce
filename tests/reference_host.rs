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

/// The embedded component and a linker that provides WASI and wasmtime's own keyvalue store:
/// everything this host has to offer, whichever contract's bindings instantiate it.
fn link() -> (Linker<Host>, Component) {
    let engine = Engine::default();
    let component = Component::new(&engine, tally::runtime::EMBEDDED_COMPONENT).unwrap();
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    wasmtime_wasi_keyvalue::add_to_linker(&mut linker, |host: &mut Host| {
        WasiKeyValue::new(&host.keyvalue, &mut host.table)
    })
    .unwrap();
    (linker, component)
}

/// The embedded component, compiled and linked once per test binary.
fn pre() -> &'static CounterComponentPre<Host> {
    static PRE: OnceLock<CounterComponentPre<Host>> = OnceLock::new();
    PRE.get_or_init(|| {
        let (linker, component) = link();
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

/// Windows on the reference store, at times the calls give: within one call (the reference
/// store forgets between calls), a window seeded with 2 hits takes a third within a limit of 3
/// and the fourth is over it; the previous window weighs into a sliding limit.
#[tokio::test]
async fn windows_match_tallys_host() {
    use tally::bindings::{HitOutcome, Policy, WindowSpec};
    let spec = WindowSpec {
        length_ms: 60_000,
        keep: 2,
    };
    let key = |number: u64| tally_guest::window::key("api", 60_000, number);
    let (mut store, counter) = instance(&[(&key(2), "2"), (&key(1), "6")]).await;
    let api = counter.tally_counter_window();
    assert_eq!(
        api.call_hit(&mut store, "api", spec, 1, 3, Policy::Fixed, 125_000)
            .await
            .unwrap(),
        Ok(HitOutcome {
            count: 3,
            used: 3,
            allowed: true,
            remaining: 0,
            window_start: 120_000,
            resets_at: 180_000,
        })
    );
    // 15 s into window 2: three quarters of window 1's 6 hits still count.
    assert_eq!(
        api.call_hit(&mut store, "api", spec, 1, 5, Policy::Sliding, 135_000)
            .await
            .unwrap()
            .map(|outcome| (outcome.count, outcome.used, outcome.allowed)),
        Ok((3, 7, false))
    );
    assert_eq!(
        api.call_history(&mut store, "api", 60_000, 3, 125_000)
            .await
            .unwrap(),
        Ok(vec![0, 6, 2])
    );
}

/// A host built against the previous contract, `tally:counter@0.2.0` (its WIT kept in
/// `tests/contract-0.2.0/`, before windows), runs today's component unchanged: wasmtime matches
/// the component's `counter@0.2.1` export to the host's lookup of `counter@0.2.0`.
mod previous_contract {
    use super::Host;
    use wasmtime::Store;
    use wasmtime::component::ResourceTable;
    use wasmtime_wasi::WasiCtx;
    use wasmtime_wasi_keyvalue::WasiKeyValueCtxBuilder;

    wasmtime::component::bindgen!({
        path: "../tests/contract-0.2.0",
        world: "tally:counter/counter-component@0.2.0",
        exports: { default: async },
        with: {
            "wasi:keyvalue/store": tally_keyvalue::bindings::wasi::keyvalue::store,
            "wasi:keyvalue/atomics": tally_keyvalue::bindings::wasi::keyvalue::atomics,
            "wasi:keyvalue/batch": tally_keyvalue::bindings::wasi::keyvalue::batch,
        },
        additional_derives: [PartialEq, Eq],
    });

    #[tokio::test]
    async fn a_host_of_the_previous_contract_runs_the_component() {
        let (linker, component) = super::link();
        let pre = CounterComponentPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
        let host = Host {
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().build(),
            keyvalue: WasiKeyValueCtxBuilder::new()
                .in_memory_data([("visits".to_string(), "41".to_string())])
                .build(),
        };
        let mut store = Store::new(component.engine(), host);
        let counter = pre.instantiate_async(&mut store).await.unwrap();
        let api = counter.tally_counter_counter();
        assert_eq!(
            api.call_increment(&mut store, "visits", 1).await.unwrap(),
            Ok(42)
        );
        assert_eq!(
            api.call_get(&mut store, "").await.unwrap(),
            Err(exports::tally::counter::counter::Error::InvalidName(
                "a counter name must not be empty".into()
            ))
        );
    }
}
