//! tally's tables in a PostgreSQL schema of their own, and which schemas are tally's to touch.
//!
//! Everything lives in one schema (default `tally`, named by the host): tally's tables and
//! nothing else, so a database that other services use is safe to point it at. A schema is
//! tally's when it holds the `tally_schema` table with the row `('tally', version)`; a missing or
//! empty schema is new, and the first write creates the tables ([`create`]) in one transaction
//! under an advisory lock, so two tally processes starting at once create them once. Anything
//! else is another application's schema, refused before anything in it changes ([`inspect`]
//! only reads). Reads never create anything: a store whose tables do not exist yet reads as
//! empty.
//!
//! Keys are `text COLLATE "C"`: byte order, the order every tally store pages in. Values are
//! `bytea`, as `wasi:keyvalue` says values are bytes; counters are their ASCII decimal text.

use crate::storage::{Detail, StorageError};
use tokio_postgres::GenericClient;

/// The version this build writes (the row in `tally_schema`). A newer one is refused.
///
/// - 1: `counters` and `idempotency_records`.
/// - 2: `notes` (`Storage::keep_note`). A version 1 schema is upgraded by the first write, under
///   the same lock as a creation; builds before it refuse a version 2 schema as newer.
pub(super) const VERSION: i32 = 2;

/// The longest schema name PostgreSQL keeps (`NAMEDATALEN - 1` bytes); a longer one would be
/// cut short silently.
const MAX_NAME_LENGTH: usize = 63;

/// A schema name as SQL text: the name checked and quoted, so any name is one identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SchemaName {
    name: String,
    quoted: String,
}

impl SchemaName {
    /// `name`, or why PostgreSQL could not hold it as given.
    pub(super) fn parse(name: &str) -> Result<Self, StorageError> {
        let problem = if name.is_empty() {
            Some("it is empty".to_string())
        } else if name.len() > MAX_NAME_LENGTH {
            Some(format!(
                "it has {} bytes and PostgreSQL keeps at most {MAX_NAME_LENGTH}",
                name.len()
            ))
        } else if name.contains('\0') {
            Some("it contains a NUL character".to_string())
        } else if name.starts_with("pg_") {
            Some("names starting with pg_ are PostgreSQL's own".to_string())
        } else if name == "public" {
            // tally keeps a schema to itself, and `public` is every role's and application's.
            Some(
                "public is the database's shared default schema, where every role and \
                 application puts its tables; give tally a schema of its own (the default, \
                 tally, or another name)"
                    .to_string(),
            )
        } else {
            None
        };
        match problem {
            Some(problem) => Err(StorageError::Misconfigured(
                format!("the schema name {name:?} will not do: {problem}").into(),
            )),
            None => Ok(Self {
                name: name.to_string(),
                quoted: quoted(name),
            }),
        }
    }

    /// The name as given.
    pub(super) fn as_str(&self) -> &str {
        &self.name
    }

    /// `table` of this schema, quoted for SQL.
    pub(super) fn table(&self, table: &str) -> String {
        format!("{}.{table}", self.quoted)
    }
}

/// What a schema is to tally, as far as reading it can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SchemaKind {
    /// Missing or empty: tally's to create.
    New,
    /// tally's, of the version this build writes.
    Tally,
    /// tally's, of an older version: the first write upgrades it ([`create`]).
    Older,
    /// Another application's, or a newer tally's.
    Refused(SchemaProblem),
}

/// Classifies the schema, reading only (one statement, so one snapshot: another process
/// creating the tables meanwhile is seen wholly or not at all).
pub(super) async fn inspect(
    client: &impl GenericClient,
    schema: &SchemaName,
) -> Result<SchemaKind, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1),
                    to_regclass(quote_ident($1) || '.tally_schema') IS NOT NULL",
            &[&schema.as_str()],
        )
        .await?;
    let relations: i64 = row.get(0);
    let marked: bool = row.get(1);
    if !marked {
        return Ok(if relations == 0 {
            SchemaKind::New
        } else {
            SchemaKind::Refused(SchemaProblem::Foreign)
        });
    }
    let rows = client
        .query(
            &format!(
                "SELECT application, version FROM {}",
                schema.table("tally_schema")
            ),
            &[],
        )
        .await?;
    Ok(match rows.as_slice() {
        [row] if row.get::<_, &str>(0) == "tally" => match row.get::<_, i32>(1) {
            VERSION => SchemaKind::Tally,
            version if version > VERSION => SchemaKind::Refused(SchemaProblem::NewerVersion {
                version,
                supported: VERSION,
            }),
            1 => SchemaKind::Older,
            _ => SchemaKind::Refused(SchemaProblem::Foreign),
        },
        _ => SchemaKind::Refused(SchemaProblem::Foreign),
    })
}

/// The refusal for a schema that is not tally's to touch.
pub(super) fn refused(schema: &SchemaName, problem: SchemaProblem) -> StorageError {
    StorageError::Refused(Detail::of(SchemaRefusal {
        schema: schema.as_str().to_string(),
        problem,
    }))
}

/// A PostgreSQL schema the store will not use, left as it was: which, and why (the cause of a
/// [`StorageError::Refused`]), typed so a host can word it in its own terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the PostgreSQL schema {schema:?}: {problem}")]
pub struct SchemaRefusal {
    /// The schema's name.
    pub schema: String,
    /// What is wrong with it.
    pub problem: SchemaProblem,
}

/// What is wrong with a schema ([`SchemaRefusal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaProblem {
    /// Another application's: tables of its own and no tally version row.
    Foreign,
    /// tally's, of a newer version than this build understands.
    NewerVersion {
        /// Its version.
        version: i32,
        /// The newest this build understands.
        supported: i32,
    },
}

impl std::fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Foreign => f.write_str(
                "another application's schema (tables of its own, no tally version row), left \
                 untouched",
            ),
            Self::NewerVersion { version, supported } => write!(
                f,
                "tally schema version {version}, newer than this build understands ({supported})"
            ),
        }
    }
}

/// What right the session's role lacks to create, upgrade or write tally's tables in `schema`,
/// in words that name it and how to grant it; `None` when it has them all. Asked when
/// PostgreSQL refused something for lack of a right (`42501`), and by readiness before the
/// first write, which must create the schema.
pub(super) async fn missing_right(
    client: &impl GenericClient,
    schema: &SchemaName,
) -> Result<Option<String>, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT current_user::text, current_database()::text, n.oid IS NOT NULL,
                    has_database_privilege(current_database(), 'CREATE'),
                    n.oid IS NOT NULL AND has_schema_privilege(n.oid, 'USAGE')
                        AND has_schema_privilege(n.oid, 'CREATE'),
                    to_regclass(quote_ident($1) || '.counters') IS NULL
                        OR (SELECT bool_and(has_table_privilege(c.oid,
                                'SELECT, INSERT, UPDATE, DELETE'))
                            FROM pg_class c WHERE c.relnamespace = n.oid AND c.relkind = 'r')
             FROM (SELECT 1) AS one LEFT JOIN pg_namespace n ON n.nspname = $1",
            &[&schema.as_str()],
        )
        .await?;
    let (role, database): (String, String) = (row.get(0), row.get(1));
    let (exists, create_in_database, schema_rights, table_rights): (bool, bool, bool, bool) =
        (row.get(2), row.get(3), row.get(4), row.get(5));
    let (role, name) = (quoted(&role), &schema.quoted);
    Ok(if !exists && !create_in_database {
        Some(format!(
            "the role {role} may not create tally's schema {name} in database {database:?} (it \
             lacks CREATE on the database): GRANT CREATE ON DATABASE {} TO {role}, or have an \
             administrator create the schema for it (CREATE SCHEMA {name} AUTHORIZATION {role})",
            quoted(&database)
        ))
    } else if exists && !schema_rights {
        Some(format!(
            "the role {role} may not make or change tables in the schema {name} (it lacks USAGE \
             or CREATE on it): GRANT USAGE, CREATE ON SCHEMA {name} TO {role}"
        ))
    } else if exists && !table_rights {
        Some(format!(
            "the role {role} may not read and write tally's tables in the schema {name}: GRANT \
             SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {name} TO {role}"
        ))
    } else {
        None
    })
}

/// `name` as one SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the tables if the schema is new (or upgrades an older tally schema), inside the
/// caller's transaction, under an advisory lock held until it ends: a second process waits for
/// the first one's commit, then finds the tables. A schema that turned out not to be tally's is
/// refused untouched.
pub(super) async fn create(
    transaction: &tokio_postgres::Transaction<'_>,
    schema: &SchemaName,
) -> Result<Result<(), StorageError>, tokio_postgres::Error> {
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('tally schema ' || $1, 0))",
            &[&schema.as_str()],
        )
        .await?;
    let notes = format!(
        "CREATE TABLE {notes} (
             name       text COLLATE \"C\" PRIMARY KEY,
             value      bytea NOT NULL,
             expires_at bigint
         );
         CREATE INDEX ON {notes} (expires_at) WHERE expires_at IS NOT NULL;",
        notes = schema.table("notes"),
    );
    let marker = schema.table("tally_schema");
    let sql = match inspect(transaction, schema).await? {
        SchemaKind::Tally => return Ok(Ok(())),
        SchemaKind::Refused(problem) => return Ok(Err(refused(schema, problem))),
        SchemaKind::Older => format!("{notes} UPDATE {marker} SET version = {VERSION};"),
        SchemaKind::New => format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE {marker} (application text NOT NULL, version integer NOT NULL);
             INSERT INTO {marker} VALUES ('tally', {VERSION});
             CREATE TABLE {counters} (
                 bucket text COLLATE \"C\" NOT NULL,
                 key    text COLLATE \"C\" NOT NULL,
                 value  bytea NOT NULL,
                 PRIMARY KEY (bucket, key)
             );
             CREATE TABLE {records} (
                 key         text COLLATE \"C\" PRIMARY KEY,
                 fingerprint text NOT NULL,
                 outcome     text NOT NULL,
                 expires_at  bigint NOT NULL
             );
             CREATE INDEX ON {records} (expires_at);
             {notes}",
            schema = schema.quoted,
            counters = schema.table("counters"),
            records = schema.table("idempotency_records"),
        ),
    };
    transaction.batch_execute(&sql).await?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_whole() {
        let name = SchemaName::parse("we\"ird name").unwrap();
        assert_eq!(name.table("counters"), "\"we\"\"ird name\".counters");
        for bad in ["", "pg_temp", "public", "a\0b", &"s".repeat(64)] {
            assert!(SchemaName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(SchemaName::parse(&"s".repeat(63)).is_ok());
    }
}
