//! A minimal client for Postgres' streaming replication protocol, logical flavour.
//!
//! Why our own client and not a crate: tokio-postgres 0.7 has no CopyBoth; `pgwire-replication`
//! drives the whole session itself and does not let us keep the connection idle after
//! `CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT` while other connections import the snapshot,
//! nor decide exactly which LSN is reported. The protocol part needed here is small (startup,
//! simple queries, CopyBoth with XLogData / keepalive / standby status update) and
//! `postgres-protocol` supplies message builders and the md5 / SCRAM-SHA-256 maths, so owning
//! it costs a few hundred lines and gives full control over durability: the only LSN ever
//! reported to the server is the one the caller passed to [`ReplicationStream::confirm`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::error::{CdcError, Result};
use crate::lsn::Lsn;
use crate::pgwire::{self, Credentials, FrameReader, QueryResult, ServerError, Transport};
use crate::source::{SESSION_SETTINGS, SourceConfig};
use crate::time::now_pg_micros;

type Reader = FrameReader<ReadHalf<Box<dyn Transport>>>;
type Writer = WriteHalf<Box<dyn Transport>>;

/// What IDENTIFY_SYSTEM answers.
#[derive(Debug, Clone)]
pub struct SystemInfo {
    pub system_id: String,
    pub timeline: u32,
    pub xlog_pos: Lsn,
    pub dbname: String,
}

/// A slot just created.
#[derive(Debug, Clone)]
pub struct CreatedSlot {
    pub slot: String,
    /// Changes committed after this point are streamed; everything before is in the snapshot.
    pub consistent_point: Lsn,
    /// The exported snapshot; valid only while this connection runs no other command.
    pub snapshot_name: Option<String>,
}

/// A replication connection (`replication=database`) before streaming starts.
pub struct ReplicationClient {
    reader: Reader,
    writer: Writer,
    user: String,
}

impl ReplicationClient {
    /// Connects and authenticates (trust, password, md5 or SCRAM-SHA-256).
    pub async fn connect(source: &SourceConfig) -> Result<Self> {
        let transport = source.transport().await?;
        let (read, mut writer) = tokio::io::split(transport);
        let mut reader = FrameReader::new(read);
        let mut params: Vec<(&str, &str)> = vec![
            ("user", source.user()),
            ("database", source.dbname()),
            ("replication", "database"),
            ("application_name", "ductstream-cdc"),
        ];
        params.extend_from_slice(SESSION_SETTINGS);
        let credentials = Credentials { user: source.user(), password: source.password() };
        pgwire::startup(&mut reader, &mut writer, &params, &credentials).await?;
        Ok(ReplicationClient { reader, writer, user: source.user().to_string() })
    }

    /// Runs one command with the simple query protocol; values come back as text.
    pub(crate) async fn simple_query(&mut self, sql: &str, slot: &str) -> Result<QueryResult> {
        let mut buf = BytesMut::new();
        frontend::query(sql, &mut buf)?;
        self.writer.write_all(&buf).await?;
        let mut result = QueryResult::default();
        let mut error = None;
        loop {
            let message = self.reader.next().await?;
            match message.tag {
                b'T' => result.columns = pgwire::parse_row_description(message.body)?,
                b'D' => result.rows.push(pgwire::parse_data_row(message.body)?),
                b'E' => error = Some(ServerError::parse(&message.body)),
                b'Z' => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(CdcError::from_server(&e.code, &e.message, &self.user, slot)),
            None => Ok(result),
        }
    }

    pub async fn identify_system(&mut self) -> Result<SystemInfo> {
        let r = self.simple_query("IDENTIFY_SYSTEM", "").await?;
        let field = |name: &str| r.get(0, name).map(str::to_string).unwrap_or_default();
        Ok(SystemInfo {
            system_id: field("systemid"),
            timeline: field("timeline").parse().unwrap_or(0),
            xlog_pos: field("xlogpos").parse().map_err(CdcError::protocol)?,
            dbname: field("dbname"),
        })
    }

    /// `CREATE_REPLICATION_SLOT <slot> LOGICAL pgoutput`, exporting a snapshot when asked.
    /// The older keyword syntax is used because every supported server (10+) accepts it.
    pub async fn create_slot(&mut self, slot: &str, export_snapshot: bool) -> Result<CreatedSlot> {
        let mode = if export_snapshot { "EXPORT_SNAPSHOT" } else { "NOEXPORT_SNAPSHOT" };
        let sql = format!("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput {mode}", quote_ident(slot));
        let r = self.simple_query(&sql, slot).await?;
        let consistent_point = r
            .get(0, "consistent_point")
            .ok_or_else(|| CdcError::protocol("CREATE_REPLICATION_SLOT returned no consistent_point"))?
            .parse()
            .map_err(CdcError::protocol)?;
        Ok(CreatedSlot {
            slot: slot.to_string(),
            consistent_point,
            snapshot_name: r.get(0, "snapshot_name").map(str::to_string),
        })
    }

    /// `DROP_REPLICATION_SLOT <slot>`.
    pub async fn drop_slot(&mut self, slot: &str) -> Result<()> {
        self.simple_query(&format!("DROP_REPLICATION_SLOT {}", quote_ident(slot)), slot).await.map(|_| ())
    }

    /// `START_REPLICATION SLOT ... LOGICAL <start>` with pgoutput (proto_version 1, the given
    /// publication, logical messages on). `Lsn::ZERO` starts at the slot's confirmed position.
    pub async fn start(
        mut self,
        slot: &str,
        start: Lsn,
        publication: &str,
        status_interval: Duration,
    ) -> Result<ReplicationStream> {
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {start} (proto_version '1', publication_names '{}', messages 'true')",
            quote_ident(slot),
            quote_ident(publication).replace('\'', "''"),
        );
        let mut buf = BytesMut::new();
        frontend::query(&sql, &mut buf)?;
        self.writer.write_all(&buf).await?;
        loop {
            let message = self.reader.next().await?;
            match message.tag {
                b'W' => break,
                b'E' => {
                    let e = ServerError::parse(&message.body);
                    return Err(CdcError::from_server(&e.code, &e.message, &self.user, slot));
                }
                _ => {}
            }
        }
        Ok(ReplicationStream::spawn(self.reader, self.writer, start, status_interval))
    }
}

/// One XLogData message: a piece of pgoutput output and where it sits in the WAL.
#[derive(Debug, Clone)]
pub struct XLogData {
    pub wal_start: Lsn,
    pub wal_end: Lsn,
    pub server_time: i64,
    pub data: Bytes,
}

/// Messages buffered between the socket and the consumer; bounded so a slow writer stops reads.
const BUFFERED: usize = 1024;

/// A running replication stream. A background task reads the socket, answers keepalives and
/// sends standby status updates every `status_interval`, always reporting the last LSN given
/// to [`ReplicationStream::confirm`] (never anything newer, so the server keeps every change
/// the caller has not made durable).
pub struct ReplicationStream {
    rx: mpsc::Receiver<Result<XLogData>>,
    confirmed: Arc<AtomicU64>,
    server_end: Arc<AtomicU64>,
    wake: Arc<Notify>,
    shutdown: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

impl ReplicationStream {
    fn spawn(reader: Reader, writer: Writer, start: Lsn, status_interval: Duration) -> Self {
        let (tx, rx) = mpsc::channel(BUFFERED);
        let confirmed = Arc::new(AtomicU64::new(start.0));
        let server_end = Arc::new(AtomicU64::new(start.0));
        let wake = Arc::new(Notify::new());
        let shutdown = Arc::new(Notify::new());
        let worker = StreamTask {
            reader,
            writer,
            confirmed: confirmed.clone(),
            server_end: server_end.clone(),
            wake: wake.clone(),
            shutdown: shutdown.clone(),
            sent: 0,
            pending: VecDeque::new(),
            in_transaction: false,
            received_upto: start.0,
        };
        let task = tokio::spawn(worker.run(tx, status_interval));
        ReplicationStream { rx, confirmed, server_end, wake, shutdown, task: Some(task) }
    }

    /// The next XLogData message; an error ends the stream.
    pub async fn recv(&mut self) -> Result<XLogData> {
        match self.rx.recv().await {
            Some(message) => message,
            None => Err(CdcError::protocol("the replication stream ended")),
        }
    }

    /// Marks everything up to `lsn` as durably handled; reported to the server promptly.
    pub fn confirm(&self, lsn: Lsn) {
        let previous = self.confirmed.fetch_max(lsn.0, Ordering::SeqCst);
        if lsn.0 > previous {
            self.wake.notify_one();
        }
    }

    pub fn confirmed(&self) -> Lsn {
        Lsn(self.confirmed.load(Ordering::SeqCst))
    }

    /// The end of the server's WAL as it last said (in a message or a keepalive): with
    /// [`ReplicationStream::confirmed`], how far behind the source the reader is.
    pub fn server_end(&self) -> Lsn {
        Lsn(self.server_end.load(Ordering::SeqCst))
    }

    /// Sends a last status update and ends the stream.
    pub async fn close(mut self) {
        self.shutdown.notify_one();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(10), &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Drop for ReplicationStream {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

struct StreamTask {
    reader: Reader,
    writer: Writer,
    confirmed: Arc<AtomicU64>,
    server_end: Arc<AtomicU64>,
    wake: Arc<Notify>,
    shutdown: Arc<Notify>,
    sent: u64,
    pending: VecDeque<XLogData>,
    /// Between a pgoutput Begin and its Commit: the WAL up to here is not wholly received.
    in_transaction: bool,
    /// The LSN the caller must confirm before everything received so far counts as handled:
    /// the end of the last commit, or the position of the last message outside a transaction.
    received_upto: u64,
}

impl StreamTask {
    async fn run(mut self, tx: mpsc::Sender<Result<XLogData>>, status_interval: Duration) {
        if let Err(e) = self.serve(&tx, status_interval).await {
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn serve(&mut self, tx: &mpsc::Sender<Result<XLogData>>, status_interval: Duration) -> Result<()> {
        let mut tick = tokio::time::interval(status_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            while self.pending.len() < BUFFERED {
                match self.reader.try_frame()? {
                    Some(frame) => self.handle(frame.tag, frame.body).await?,
                    None => break,
                }
            }
            tokio::select! {
                biased;
                _ = self.shutdown.notified() => {
                    self.send_status(false).await?;
                    let mut buf = BytesMut::new();
                    frontend::copy_done(&mut buf);
                    self.writer.write_all(&buf).await?;
                    return Ok(());
                }
                permit = tx.reserve(), if !self.pending.is_empty() => {
                    let Ok(permit) = permit else { return Ok(()) };
                    if let Some(message) = self.pending.pop_front() {
                        permit.send(Ok(message));
                    }
                }
                _ = self.wake.notified() => {
                    if self.confirmed.load(Ordering::SeqCst) > self.sent {
                        self.send_status(false).await?;
                    }
                }
                _ = tick.tick() => self.send_status(false).await?,
                read = self.reader.fill(), if self.pending.len() < BUFFERED => read?,
            }
        }
    }

    async fn handle(&mut self, tag: u8, mut body: Bytes) -> Result<()> {
        match tag {
            b'd' => {
                if body.is_empty() {
                    return Err(CdcError::protocol("empty CopyData"));
                }
                match body.get_u8() {
                    b'w' => {
                        if body.remaining() < 24 {
                            return Err(CdcError::protocol("short XLogData"));
                        }
                        let wal_start = Lsn(body.get_u64());
                        let wal_end = Lsn(body.get_u64());
                        let server_time = body.get_i64();
                        self.server_end.fetch_max(wal_end.0, Ordering::SeqCst);
                        self.track_transaction(wal_start, &body);
                        self.pending.push_back(XLogData { wal_start, wal_end, server_time, data: body });
                    }
                    b'k' => {
                        if body.remaining() < 17 {
                            return Err(CdcError::protocol("short keepalive"));
                        }
                        let wal_end = body.get_u64();
                        self.server_end.fetch_max(wal_end, Ordering::SeqCst);
                        let _server_time = body.get_i64();
                        let reply_requested = body.get_u8() == 1;
                        if self.caught_up() && wal_end > self.confirmed.load(Ordering::SeqCst) {
                            // Everything the server sent is handled and the WAL since holds
                            // nothing for us: confirm up to its end, as pg_recvlogical does.
                            // Postgres' walsender waits at shutdown until its sent position is
                            // flushed, so an idle stream that never said so would hold it.
                            self.confirmed.fetch_max(wal_end, Ordering::SeqCst);
                            self.send_status(false).await?;
                        } else if reply_requested {
                            // The server wants an answer now (wal_sender_timeout is near).
                            self.send_status(false).await?;
                        }
                    }
                    other => return Err(CdcError::protocol(format!("unknown CopyData kind {:?}", other as char))),
                }
            }
            b'E' => {
                let e = ServerError::parse(&body);
                return Err(CdcError::from_server(&e.code, &e.message, "", ""));
            }
            b'c' => return Err(CdcError::protocol("the server ended the replication stream")),
            _ => {}
        }
        Ok(())
    }

    /// Follows pgoutput's transaction boundaries (proto_version 1: a transaction arrives whole,
    /// Begin to Commit, after it committed).
    fn track_transaction(&mut self, wal_start: Lsn, data: &[u8]) {
        match data.first() {
            Some(b'B') => self.in_transaction = true,
            Some(b'C') => {
                self.in_transaction = false;
                // Commit: flags (1), commit LSN (8), end LSN (8), timestamp (8).
                let end = data.get(10..18).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes);
                self.received_upto = self.received_upto.max(end.unwrap_or(wal_start.0));
            }
            _ if !self.in_transaction => self.received_upto = self.received_upto.max(wal_start.0),
            _ => {}
        }
    }

    /// Whether the caller has confirmed everything received: nothing buffered, no transaction
    /// half received, and the confirmed LSN at or past the last thing received.
    fn caught_up(&self) -> bool {
        !self.in_transaction
            && self.pending.is_empty()
            && self.confirmed.load(Ordering::SeqCst) >= self.received_upto
    }

    /// A standby status update ('r') reporting the confirmed LSN as written, flushed and applied.
    async fn send_status(&mut self, reply_requested: bool) -> Result<()> {
        let lsn = self.confirmed.load(Ordering::SeqCst);
        let mut payload = BytesMut::with_capacity(34);
        payload.put_u8(b'r');
        payload.put_u64(lsn);
        payload.put_u64(lsn);
        payload.put_u64(lsn);
        payload.put_i64(now_pg_micros());
        payload.put_u8(u8::from(reply_requested));
        let mut buf = BytesMut::new();
        frontend::CopyData::new(payload.freeze())?.write(&mut buf);
        self.writer.write_all(&buf).await?;
        self.sent = lsn;
        Ok(())
    }
}

/// Quotes an identifier for SQL and replication commands.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
