//! One connection's state (authenticated or not, protocol version, name) and the running of its
//! commands: each counter command is one or more calls of the component, whose answers are put
//! in Redis's shapes. Nothing here computes a counter; the component does all the counting.

use super::command::{self, Command, Spec};
use super::glob;
use super::reply::{Protocol, Reply};
use super::{REDIS_VERSION, Shared};
use crate::runtime::Counter;
use crate::{CounterError, Refusal};
use std::collections::BTreeSet;
use std::fmt::Write;
use tally_keyvalue::storage::{DurableFuture, WriteContext};

/// What one command came to: its answer, how it is counted in the metrics, whether the
/// connection closes after it (`QUIT`), and the durability its answer must wait for.
pub struct Outcome {
    /// The answer.
    pub reply: Reply,
    /// `ok`, `refused` (the client's input or state) or `failed` (the server's side).
    pub label: &'static str,
    /// The command's name for the metrics (`unknown` for names tally does not know).
    pub command: &'static str,
    /// Close the connection once the answer is sent.
    pub close: bool,
    /// The command's staged writes: the answer may be sent only once all have completed, and
    /// becomes an error if one fails.
    pub durable: Vec<DurableFuture>,
}

/// Whether the command `args` names has its writes staged ([`Session::run`]): `INCR`, `INCRBY`
/// and `SET`, one write each. Anything else runs only after the writes before it are durable,
/// so a read in a pipeline sees the pipeline's writes.
pub fn stages_writes(args: &[Vec<u8>]) -> bool {
    ["incr", "incrby", "set"]
        .iter()
        .any(|name| name.as_bytes().eq_ignore_ascii_case(&args[0]))
}

/// A failed command: refused (the client's input) or failed (the store or the component).
enum Failure {
    Refused(Reply),
    Failed(Reply),
}

impl From<Reply> for Failure {
    fn from(reply: Reply) -> Self {
        Self::Refused(reply)
    }
}

/// The component instance that the commands of one pipelined read share: made on the first
/// command that needs it, discarded after a call that trapped.
pub struct Instance<'a> {
    shared: &'a Shared,
    counter: Option<Counter>,
}

impl<'a> Instance<'a> {
    /// No instance yet.
    pub fn new(shared: &'a Shared) -> Self {
        Self {
            shared,
            counter: None,
        }
    }

    /// The instance, its writes durable on return (the default).
    async fn get(&mut self) -> Result<&mut Counter, Failure> {
        let counter = self.instance().await?;
        counter.stop_staging();
        Ok(counter)
    }

    /// The instance, its writes staged (see [`Counter::stage_writes`]).
    async fn staging(&mut self, more_follow: bool) -> Result<&mut Counter, Failure> {
        let counter = self.instance().await?;
        counter.stage_writes(more_follow);
        Ok(counter)
    }

    /// The durability of the staged writes since the last call.
    fn take_durability(&self) -> Vec<DurableFuture> {
        self.counter
            .as_ref()
            .map(Counter::take_durability)
            .unwrap_or_default()
    }

    async fn instance(&mut self) -> Result<&mut Counter, Failure> {
        if self.counter.is_none() {
            // RESP integers are signed 64-bit: an increment is refused before it passes that.
            let context = WriteContext::default().with_increment_limit(i64::MAX as u64);
            let counter = self
                .shared
                .runtime
                .instantiate_for(context)
                .await
                .map_err(|error| Failure::Failed(Reply::err(format!("{error:#}"))))?;
            self.counter = Some(counter);
        }
        self.counter
            .as_mut()
            .ok_or_else(|| Failure::Failed(Reply::err("no component instance")))
    }
}

/// How a counter command reads a refusal of the component.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// `INCR` and `INCRBY`: overflow and a stored non-number get Redis's own errors.
    Increment,
    /// Everything else: tally's sentence for the refusal.
    Other,
}

/// The component's answer, or its refusal or failure as a Redis error. A call that trapped
/// leaves the instance discarded.
fn answer<T>(
    instance: &mut Instance<'_>,
    outcome: anyhow::Result<Result<T, CounterError>>,
    reading: Reading,
) -> Result<T, Failure> {
    let Some(counter) = instance.counter.as_ref() else {
        return Err(Failure::Failed(Reply::err("no component instance")));
    };
    let limit = match reading {
        Reading::Increment => i64::MAX as u64,
        Reading::Other => counter.counter_limit(),
    };
    let busy = counter.store_was_busy();
    let unreachable = counter.store_was_unavailable();
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(match (&error, reading) {
            (CounterError::Overflow(_), Reading::Increment) => {
                Failure::Refused(Reply::err("increment or decrement would overflow"))
            }
            (CounterError::CorruptValue(_), Reading::Increment) => {
                Failure::Refused(command::not_an_integer())
            }
            (CounterError::StoreFailure(detail), _) if unreachable => Failure::Failed(Reply::err(
                crate::refusal::store_unreachable(&instance.shared.options.store, detail),
            )),
            (CounterError::StoreFailure(_), _) => {
                let again = if busy {
                    "; nothing changed, try again"
                } else {
                    ""
                };
                Failure::Failed(Reply::err(format!("{}{again}", Refusal::new(error, limit))))
            }
            _ => Failure::Refused(Reply::err(Refusal::new(error, limit))),
        }),
        Err(error) => {
            instance.counter = None;
            Err(Failure::Failed(Reply::err(format!("{error:#}"))))
        }
    }
}

/// One client connection's state.
pub struct Session {
    id: u64,
    authenticated: bool,
    protocol: Protocol,
    name: Option<String>,
}

impl Session {
    /// A new connection: authenticated already when the server has no token.
    pub fn new(id: u64, shared: &Shared) -> Self {
        Self {
            id,
            authenticated: shared.options.auth_token.is_none(),
            protocol: Protocol::Resp2,
            name: None,
        }
    }

    /// The protocol version answers are written in.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Runs one command (`args`, the name first) on `instance`. Its writes are staged when
    /// [`stages_writes`] says so; `more_follow` tells the store more commands follow at once.
    pub async fn run(
        &mut self,
        args: &[Vec<u8>],
        shared: &Shared,
        instance: &mut Instance<'_>,
        more_follow: bool,
    ) -> Outcome {
        let spec = match command::lookup(args) {
            Ok(spec) => spec,
            Err(reply) => {
                return Outcome {
                    reply,
                    label: "refused",
                    command: "unknown",
                    close: false,
                    durable: Vec::new(),
                };
            }
        };
        let close = spec.name == "quit";
        let (reply, label) = match self
            .dispatch(spec, args, shared, instance, more_follow)
            .await
        {
            Ok(reply) => (reply, "ok"),
            Err(Failure::Refused(reply)) => (reply, "refused"),
            Err(Failure::Failed(reply)) => (reply, "failed"),
        };
        Outcome {
            reply,
            label,
            command: spec.name,
            close,
            durable: instance.take_durability(),
        }
    }

    async fn dispatch(
        &mut self,
        spec: &'static Spec,
        args: &[Vec<u8>],
        shared: &Shared,
        instance: &mut Instance<'_>,
        more_follow: bool,
    ) -> Result<Reply, Failure> {
        // As in Redis: an unknown command or a wrong arity is answered before authentication,
        // anything else only after it.
        if !self.authenticated && !spec.without_auth() {
            return Err(Reply::Error("NOAUTH Authentication required.".into()).into());
        }
        let command = command::parse(spec, args)?;
        Ok(match command {
            Command::Increment { name, by } => {
                let counter = instance.staging(more_follow).await?;
                let outcome = counter.increment(&name, by).await;
                let value = answer(instance, outcome, Reading::Increment)?;
                // The store refused anything past the limit; a value beyond it would be a bug.
                Reply::Integer(i64::try_from(value).map_err(|_| {
                    Failure::Failed(Reply::err("increment or decrement would overflow"))
                })?)
            }
            Command::Get(name) => {
                let outcome = instance.get().await?.find(&name).await;
                match answer(instance, outcome, Reading::Other)? {
                    Some(value) => Reply::text(value.to_string()),
                    None => Reply::Nil,
                }
            }
            Command::Set { name, value } => {
                let outcome = instance.staging(more_follow).await?.set(&name, value).await;
                answer(instance, outcome, Reading::Other)?;
                Reply::OK
            }
            Command::Del(names) => delete(instance, names).await?,
            Command::Exists(names) => {
                let outcome = instance.get().await?.find_many(&names).await;
                let values = answer(instance, outcome, Reading::Other)?;
                Reply::Integer(values.iter().filter(|value| value.is_some()).count() as i64)
            }
            Command::MGet(names) => {
                let outcome = instance.get().await?.find_many(&names).await;
                let values = answer(instance, outcome, Reading::Other)?;
                Reply::Array(
                    values
                        .into_iter()
                        .map(|value| {
                            value.map_or(Reply::Nil, |value| Reply::text(value.to_string()))
                        })
                        .collect(),
                )
            }
            Command::Scan {
                cursor,
                pattern,
                count,
                strings,
            } => scan(shared, instance, cursor, pattern.as_deref(), count, strings).await?,
            Command::Keys(pattern) => keys(instance, &pattern).await?,
            Command::Ping(None) => Reply::Simple("PONG"),
            Command::Ping(Some(message)) | Command::Echo(message) => Reply::Bulk(message),
            Command::Select => Reply::OK,
            Command::Auth { username, password } => {
                self.authenticate(shared, username.as_deref(), &password)?;
                Reply::OK
            }
            Command::Hello {
                protocol,
                auth,
                name,
            } => {
                if let Some((username, password)) = &auth {
                    self.authenticate(shared, Some(username), password)?;
                }
                if !self.authenticated {
                    return Err(Reply::Error(
                        "NOAUTH HELLO must be called with the client already authenticated, \
                         otherwise the HELLO <proto> AUTH <user> <pass> option can be used to \
                         authenticate the client and select the RESP protocol version at the \
                         same time"
                            .into(),
                    )
                    .into());
                }
                if let Some(protocol) = protocol {
                    self.protocol = protocol;
                }
                if let Some(name) = name {
                    self.name = Some(name).filter(|name| !name.is_empty());
                }
                self.hello()
            }
            Command::ClientSetName(name) => {
                self.name = Some(name).filter(|name| !name.is_empty());
                Reply::OK
            }
            Command::ClientGetName => self.name.clone().map_or(Reply::Nil, Reply::text),
            Command::ClientId => Reply::Integer(self.id as i64),
            Command::ClientSetInfo | Command::Quit => Reply::OK,
            Command::CommandList => {
                Reply::Array(command::COMMANDS.iter().map(command::describe).collect())
            }
            Command::CommandCount => Reply::Integer(command::COMMANDS.len() as i64),
            Command::CommandInfo(names) => Reply::Array(
                names
                    .iter()
                    .map(|name| {
                        let name = String::from_utf8_lossy(name);
                        command::COMMANDS
                            .iter()
                            .find(|spec| spec.name.eq_ignore_ascii_case(&name))
                            .map_or(Reply::Nil, command::describe)
                    })
                    .collect(),
            ),
            Command::CommandDocs => Reply::Map(Vec::new()),
            Command::Info(sections) => Reply::text(info(shared, &sections)),
        })
    }

    /// `AUTH`, with Redis's `requirepass` rules: the user is `default`, the password the token.
    fn authenticate(
        &mut self,
        shared: &Shared,
        username: Option<&[u8]>,
        password: &[u8],
    ) -> Result<(), Failure> {
        let wrong = || {
            Failure::Refused(Reply::Error(
                "WRONGPASS invalid username-password pair or user is disabled.".into(),
            ))
        };
        let default_user = username.is_none_or(|username| username == b"default");
        match shared.options.auth_token.as_deref() {
            None if username.is_none() => Err(Reply::err(
                "AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?",
            )
            .into()),
            // Without a token the default user has no password: any password logs in.
            None if default_user => Ok(()),
            Some(token)
                if default_user
                    && crate::server::auth::tokens_match(
                        &String::from_utf8_lossy(password),
                        token,
                    ) =>
            {
                self.authenticated = true;
                Ok(())
            }
            _ => Err(wrong()),
        }
    }

    /// `HELLO`'s answer: who this server is, in the connection's protocol.
    fn hello(&self) -> Reply {
        Reply::Map(vec![
            (Reply::text("server"), Reply::text("redis")),
            (Reply::text("version"), Reply::text(REDIS_VERSION)),
            (
                Reply::text("proto"),
                Reply::Integer(self.protocol.version()),
            ),
            (Reply::text("id"), Reply::Integer(self.id as i64)),
            (Reply::text("mode"), Reply::text("standalone")),
            (Reply::text("role"), Reply::text("master")),
            (Reply::text("modules"), Reply::Array(Vec::new())),
        ])
    }
}

/// `DEL`: reads which of the names exist, then resets those (each name once), and answers how
/// many were removed.
async fn delete(instance: &mut Instance<'_>, names: Vec<String>) -> Result<Reply, Failure> {
    let unique: Vec<String> = {
        let mut seen = BTreeSet::new();
        names
            .into_iter()
            .filter(|name| seen.insert(name.clone()))
            .collect()
    };
    let outcome = instance.get().await?.find_many(&unique).await;
    let values = answer(instance, outcome, Reading::Other)?;
    let mut removed = 0;
    for (name, value) in unique.iter().zip(values) {
        if value.is_some() {
            let outcome = instance.get().await?.reset(name).await;
            answer(instance, outcome, Reading::Other)?;
            removed += 1;
        }
    }
    Ok(Reply::Integer(removed))
}

/// `SCAN`: one page of the component's listing, `count` long, filtered by the pattern.
async fn scan(
    shared: &Shared,
    instance: &mut Instance<'_>,
    cursor: u64,
    pattern: Option<&[u8]>,
    count: u32,
    strings: bool,
) -> Result<Reply, Failure> {
    let page_cursor = match cursor {
        0 => None,
        number => Some(shared.cursors.recall(number).ok_or_else(|| {
            Reply::err(format!(
                "SCAN cursor {number} is unknown or expired (tally keeps the newest {} and \
                 forgets them on restart); SCAN again from 0",
                super::scan_cursors::MAX_SCAN_CURSORS
            ))
        })?),
    };
    let limit = count.clamp(1, tally_guest::page::MAX_LIMIT);
    let outcome = instance
        .get()
        .await?
        .list_page(page_cursor.as_deref(), limit)
        .await;
    let page = answer(instance, outcome, Reading::Other)?;
    let next = page.next.map_or(0, |next| shared.cursors.remember(next));
    let names = page
        .counters
        .into_iter()
        .filter(|(name, _)| {
            strings && pattern.is_none_or(|pattern| glob::matches(pattern, name.as_bytes()))
        })
        .map(|(name, _)| Reply::text(name))
        .collect();
    Ok(Reply::Array(vec![
        Reply::text(next.to_string()),
        Reply::Array(names),
    ]))
}

/// `KEYS`: every page of the component's listing, filtered by the pattern.
async fn keys(instance: &mut Instance<'_>, pattern: &[u8]) -> Result<Reply, Failure> {
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let outcome = instance
            .get()
            .await?
            .list_page(cursor.as_deref(), tally_guest::page::MAX_LIMIT)
            .await;
        let page = answer(instance, outcome, Reading::Other)?;
        names.extend(
            page.counters
                .into_iter()
                .filter(|(name, _)| glob::matches(pattern, name.as_bytes()))
                .map(|(name, _)| Reply::text(name)),
        );
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(Reply::Array(names)),
        }
    }
}

/// `INFO`'s text: the `server` and `clients` sections, as `name:value` lines.
fn info(shared: &Shared, sections: &[String]) -> String {
    let all = sections.is_empty()
        || sections
            .iter()
            .any(|section| matches!(section.as_str(), "all" | "default" | "everything"));
    let wanted = |section: &str| all || sections.iter().any(|asked| asked == section);
    let mut text = String::new();
    if wanted("server") {
        let _ = write!(
            text,
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\n\
             tally_version:{}\r\nresp_protocols:2,3\r\nprocess_id:{}\r\ntcp_port:{}\r\n\
             uptime_in_seconds:{}\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            shared.port,
            shared.started.elapsed().as_secs(),
        );
    }
    if wanted("clients") {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        let _ = write!(
            text,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n",
            shared.open_clients(),
            shared.options.max_clients,
        );
    }
    text
}
