//! The `wasi:keyvalue` host traits on [`KeyValue`]: each operation translated to the
//! [`Storage`](crate::storage::Storage) call it is, and its failure recorded for the host.

use super::KeyValue;
use super::resources::{Bucket, KeyValueError};
use crate::bindings::wasi::keyvalue::{atomics, batch, store};
use crate::storage::Write;
use wasmtime::component::Resource;

impl store::Host for KeyValue<'_> {
    /// Opens any allowed bucket the storage serves (SQLite and memory: every identifier; Redis:
    /// `""`). Buckets need no creation.
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, KeyValueError> {
        if let Some(allowed) = &self.ctx.allowed_buckets
            && !allowed.contains(&identifier)
        {
            return Err(KeyValueError::Denied(identifier));
        }
        self.ctx
            .record(self.ctx.storage.check_bucket(&identifier))?;
        Ok(self.table.push(Bucket { name: identifier })?)
    }

    fn convert_error(&mut self, error: KeyValueError) -> wasmtime::Result<store::Error> {
        match error {
            KeyValueError::NoSuchStore => Ok(store::Error::NoSuchStore),
            KeyValueError::Denied(_) => Ok(store::Error::AccessDenied),
            KeyValueError::Other(message) => Ok(store::Error::Other(message)),
            KeyValueError::Trap(error) => Err(error),
        }
    }
}

impl store::HostBucket for KeyValue<'_> {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        ctx.read(ctx.storage.get(&name, &key)).await
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        ctx.write(name, Write::Set { key, value }).await.map(|_| ())
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        ctx.write(name, Write::Delete { key }).await.map(|_| ())
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<bool, KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        ctx.read(ctx.storage.exists(&name, &key)).await
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        let (after, size) = ctx.listing_step(&name, cursor)?;
        let page = ctx
            .read(ctx.storage.list_keys(&name, after.as_ref(), size))
            .await?;
        ctx.keep_listed(&name, &page);
        ctx.note_page(&name, &page);
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor.map(|next| ctx.remember(&name, next)),
        })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValue<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Result<u64, KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        ctx.write(name, Write::Increment { key, delta }).await
    }
}

impl batch::Host for KeyValue<'_> {
    /// One [`Storage::get_many`](crate::storage::Storage::get_many): from SQLite, every value of one point in time. Or, for keys
    /// all listed in the call's last page, that page's values (see
    /// [`KeyValueCtx::start_call`](super::KeyValueCtx::start_call)): one point in time too, without a second read.
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        let values = match ctx.take_listed(&name, &keys) {
            Some(listed) => listed,
            None => ctx.read(ctx.storage.get_many(&name, &keys)).await?,
        };
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| value.map(|value| (key, value)))
            .collect())
    }

    /// The writes in order, all queued before the first is awaited (SQLite commits them
    /// together). Not atomic, as the standard says: after a failure, the writes before it stand.
    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        let writes = key_values
            .into_iter()
            .map(|(key, value)| Write::Set { key, value });
        ctx.write_all(name, writes).await
    }

    /// Like `set-many`: in order, not atomic.
    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<(), KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        ctx.write_all(name, keys.into_iter().map(|key| Write::Delete { key }))
            .await
    }
}
