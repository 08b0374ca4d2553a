//! The API's accept loop: HTTP/1.1 connections served by hyper, bounded in number and in how
//! slowly a client may send or read.
//!
//! `axum::serve` has no header timeout and no connection bound, so the node runs its own loop:
//!
//! - At most `connections` are open at once (a semaphore permit per connection). One more is
//!   accepted, answered `503 too_many_connections` with `Retry-After`, and closed: the client
//!   learns why at once rather than waiting unseen in the kernel's backlog. Refusals hold their
//!   socket for at most [`REFUSAL_LINGER`] so the answer is not lost to a reset, and at most
//!   [`REFUSALS_LINGERING_MAX`] do so at once (beyond that the answer is written once, without
//!   waiting, and the socket closed).
//! - hyper's header read timeout closes a connection whose request head has not arrived whole
//!   within `header_read_timeout`. hyper starts that timer whenever it waits for a head, so it
//!   also closes idle keep-alive connections. A head is buffered up to [`HEAD_BYTES_MAX`].
//! - [`SendStall`] closes a connection whose response has made no progress for
//!   `send_stall_timeout` (a client that does not read).
//! - Bodies are read with their own time limit by [`super::body`].
//!
//! The connection limit is lowered below the process's open-files limit minus
//! [`FILES_RESERVED`], so a flood of connections cannot take the descriptors the store,
//! consensus and gossip need.

use super::{ApiState, FILES_RESERVED, HEAD_BYTES_MAX, RETRY_AFTER_SECS, SHUTDOWN_DRAIN_TIMEOUT};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

/// How long a refused connection is kept open to deliver its 503 before it is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// The most refused connections lingering at once (each holds a socket for [`REFUSAL_LINGER`]).
const REFUSALS_LINGERING_MAX: usize = 64;
/// The pause after an accept error other than a connection's own (e.g. out of file
/// descriptors), so the loop does not spin while the cause lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Accepts and serves connections until `shutdown` completes, then shuts down gracefully.
pub(super) async fn serve_connections(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limits = state.inner.connection_limits;
    let connections_max = connections_allowed(limits.connections);
    let connections = Arc::new(Semaphore::new(connections_max));
    let refusals = Arc::new(Semaphore::new(REFUSALS_LINGERING_MAX));
    let refusal = refusal_response(connections_max);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(HEAD_BYTES_MAX);
    let service = TowerToHyperService::new(super::router(state.clone()));
    let (close, closing) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    'accept: loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break 'accept,
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                log_panic(joined);
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                tracing::warn!(%error, "the HTTP API cannot accept connections; pausing");
                tokio::select! {
                    () = &mut shutdown => break 'accept,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            state.inner.metrics.connection_refused();
            refuse(stream, &refusals, refusal.clone());
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(SendStall::new(stream, limits.send_stall_timeout));
        let connection = http.serve_connection(io, service.clone());
        // Counted open from here, so a request on a later connection sees this one.
        let open = OpenConnection::new(state.clone(), permit);
        tasks.spawn(serve_connection(connection, open, closing.clone()));
    }
    drop(listener);
    state.begin_shutdown();
    close.send_replace(true);
    drain(tasks).await;
}

type Connection = http1::Connection<TokioIo<SendStall>, TowerToHyperService<axum::Router>>;

/// Serves one connection until it ends or, at shutdown, finishes its request in flight.
async fn serve_connection(
    connection: Connection,
    open: OpenConnection,
    mut closing: watch::Receiver<bool>,
) {
    // Counted open until this task ends or is aborted.
    let _open = open;
    tokio::pin!(connection);
    // The borrow `wait_for` returns is not `Send`; drop it inside the future.
    let shutting_down = async move {
        let _ = closing.wait_for(|closing| *closing).await;
    };
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = shutting_down => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = ended {
        // Timeouts, resets and malformed requests: the client's doing, not the node's.
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}

/// Holds a connection's permit and counts it in the metrics while it is open.
struct OpenConnection {
    state: ApiState,
    _permit: OwnedSemaphorePermit,
}

impl OpenConnection {
    fn new(state: ApiState, permit: OwnedSemaphorePermit) -> OpenConnection {
        state.inner.metrics.connections_add(1);
        OpenConnection {
            state,
            _permit: permit,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.state.inner.metrics.connections_add(-1);
    }
}

/// Waits for the connections to finish their requests, for at most [`SHUTDOWN_DRAIN_TIMEOUT`],
/// then closes the rest.
async fn drain(mut tasks: JoinSet<()>) {
    let drained = tokio::time::timeout(SHUTDOWN_DRAIN_TIMEOUT, async {
        while let Some(joined) = tasks.join_next().await {
            log_panic(joined);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = tasks.len(),
            "HTTP connections still busy after the shutdown grace period; closing them"
        );
        tasks.shutdown().await;
    }
}

fn log_panic(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined {
        if error.is_panic() {
            tracing::error!(%error, "an HTTP connection task panicked");
        }
    }
}

/// Errors of one incoming connection (it went away before it was accepted), after which the
/// loop goes on at once.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The answer to a connection over the limit.
fn refusal_response(connections_max: usize) -> Arc<[u8]> {
    let body = serde_json::json!({"error": {
        "code": "too_many_connections",
        "message": format!(
            "the node has {connections_max} HTTP connections open, as many as it allows; retry shortly"
        ),
    }})
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: {RETRY_AFTER_SECS}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
    .into()
}

/// Answers a connection over the limit with `response` and closes it (see the module
/// documentation).
fn refuse(stream: TcpStream, refusals: &Arc<Semaphore>, response: Arc<[u8]>) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        // The send buffer of a new connection is empty, so this one write goes through whole.
        let _ = stream.try_write(&response);
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut stream = stream;
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            stream.write_all(&response).await?;
            stream.shutdown().await?;
            // Closing with unread bytes would send a reset, which may discard the answer before
            // the client reads it; so read (and drop) what the client sends until it closes.
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            io::Result::Ok(())
        })
        .await;
    });
}

/// How many connections the API may hold: `configured`, lowered to leave [`FILES_RESERVED`]
/// descriptors when the process's open-files limit is known and too low.
fn connections_allowed(configured: usize) -> usize {
    let Some(files_max) = open_files_limit() else {
        return configured;
    };
    let allowed = files_max.saturating_sub(FILES_RESERVED).max(1);
    if allowed < configured {
        tracing::warn!(
            configured,
            allowed,
            files_max,
            "the open-files limit (ulimit -n) is too low for the HTTP connection limit; \
             serving fewer connections. Raise it (e.g. LimitNOFILE) to serve more"
        );
        return allowed;
    }
    configured
}

/// The process's soft limit on open files, from `/proc/self/limits` (Linux); `None` elsewhere
/// or when unlimited.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A TCP stream whose writes fail with `TimedOut` once one has been pending, without any byte
/// accepted by the socket, for `stall` (the client is not reading). Progress restarts the clock.
struct SendStall {
    stream: TcpStream,
    stall: Duration,
    /// Armed while a write is pending; reset, not reallocated, each time.
    deadline: Pin<Box<Sleep>>,
    armed: bool,
}

impl SendStall {
    fn new(stream: TcpStream, stall: Duration) -> SendStall {
        SendStall {
            stream,
            stall,
            deadline: Box::pin(tokio::time::sleep(stall)),
            armed: false,
        }
    }

    /// After a write: disarms on progress; on `Pending`, arms the deadline (once) and fails
    /// when it has passed.
    fn check<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.armed = false;
            return poll;
        }
        if !self.armed {
            self.armed = true;
            self.deadline.as_mut().reset(Instant::now() + self.stall);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing of the response for {} ms",
                    self.stall.as_millis()
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for SendStall {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendStall {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.check(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.stream).poll_flush(cx);
        this.check(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.check(cx, poll)
    }
}
