//! Streamed requests: one request, many reply frames — chunks, then one final reply.
//!
//! A stream keeps its worker busy until the final reply, like any request; what is particular
//! to it lives in [`Stream`], on the running request:
//!
//! - **Chunks** ([`Dispatch::on_chunk`]) go straight to the caller's sink ([`Chunked::Deliver`]);
//!   nothing is buffered here. A chunk for a request that asked for no stream, or that is not
//!   running, breaks the protocol ([`Chunked::Unexpected`]).
//! - **Credits** (back-pressure). A stream sent to a worker that takes credit
//!   ([`Host::takes_credit`]) carries a window W: the worker sends at most W chunks beyond those
//!   credited. The caller acknowledges the chunks its consumer took ([`Dispatch::stream_ack`]);
//!   each acknowledgement becomes a credit frame ([`Send::Credit`]). Credit is never granted
//!   for chunks not received (`credited ≤ chunks`), so `chunks ≤ W + credited ≤ W + acked`; a
//!   worker that sends more breaks the protocol.
//! - **Halting** ([`Dispatch::halt`], or the caller's death seen by [`Dispatch::caller_down`]):
//!   the request gets its outcome ([`Outcome::Halted`]) and no more messages reach the caller;
//!   the worker is sent a cancel and stays busy until its final reply (which is discarded), or
//!   is killed once the cancel grace is over — as for a timeout.
//! - **Timeouts**: the whole stream's (`Request::timeout`, from dispatch) and the idle one
//!   (`chunk_timeout`: the longest wait for the next chunk — or the final reply — while the
//!   worker may send; the clock stops while the window is used up, since the worker then waits
//!   for the consumer). Either one expires the request as a timeout: cancel, then kill after the
//!   grace.
//! - **The caller's monitor** is kept for the whole stream (not only while it waits, as for a
//!   call), so that a caller that dies mid-stream halts it.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use crate::dispatch::Dispatch;
use crate::effects::{Effects, Send};
use crate::outcome::Outcome;
use crate::slot::InFlight;
use crate::Host;

/// What a request adds to be streamed.
pub struct StreamRequest<H: Host> {
    /// Where its chunks go.
    pub sink: H::Sink,
    /// Its credit window, if its worker takes credit; `None`: no limit.
    pub window: Option<NonZeroU64>,
    /// The longest wait for the next chunk while the worker may send; `None`: no limit.
    pub chunk_timeout: Option<Duration>,
}

/// A stream on its worker.
pub struct Stream<H: Host> {
    pub sink: H::Sink,
    /// The window in effect: the request's when its worker takes credit, else `None`.
    pub window: Option<NonZeroU64>,
    pub chunk_timeout: Option<Duration>,
    /// Chunks received so far.
    pub chunks: u64,
    /// Credit sent to the worker so far (never more than `chunks`, nor than `acked`).
    pub credited: u64,
    /// Chunks the caller acknowledged so far.
    pub acked: u64,
    /// Since when the next chunk is awaited; `None` while the window is used up.
    pub idle_since: Option<Instant>,
    /// The caller's monitor, removed when the stream leaves its worker.
    pub monitor: Option<H::Monitor>,
}

impl<H: Host> Stream<H> {
    /// The stream of `request`, dispatched now to a worker that takes credit or not; `frame`
    /// gets the window when it applies.
    pub(crate) fn begin(
        request: StreamRequest<H>,
        credit: bool,
        frame: &mut Vec<u8>,
        monitor: Option<H::Monitor>,
        now: Instant,
    ) -> Self {
        let window = request.window.filter(|_| credit);
        if let Some(window) = window {
            H::set_window(frame, window);
        }
        Stream {
            sink: request.sink,
            window,
            chunk_timeout: request.chunk_timeout,
            chunks: 0,
            credited: 0,
            acked: 0,
            idle_since: Some(now),
            monitor,
        }
    }

    /// Whether the worker may send another chunk.
    pub fn may_send(&self) -> bool {
        self.window
            .is_none_or(|window| self.chunks < window.get().saturating_add(self.credited))
    }

    /// When the idle timeout passes, if it runs now.
    pub fn idle_deadline(&self) -> Option<Instant> {
        Some(self.idle_since? + self.chunk_timeout?)
    }
}

/// What became of a chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunked<S> {
    /// Send it to this sink.
    Deliver(S),
    /// The stream has its outcome already (halted, timed out): drop it.
    Discard,
    /// From a worker no longer installed in that slot (or a stopping pool): ignore it.
    Stale,
    /// Not a chunk this worker may send: the worker is broken.
    Unexpected(String),
}

impl<H: Host> Dispatch<H> {
    /// Worker `uid` of slot `slot_index` sent a chunk of request `id`.
    pub fn on_chunk(
        &mut self,
        slot_index: usize,
        uid: u64,
        id: u64,
        now: Instant,
    ) -> Chunked<H::Sink> {
        let now = self.clock(now);
        let stopping = self.phase == crate::Phase::Stopping;
        let slot = &mut self.slots[slot_index];
        if stopping || !slot.holds(uid) {
            return Chunked::Stale;
        }
        let inflight = match slot.inflight.as_mut() {
            Some(inflight) if inflight.id == id => inflight,
            Some(inflight) => {
                let running = inflight.id;
                return Chunked::Unexpected(format!(
                    "stream chunk for request {id} while request {running} is running"
                ));
            }
            None => {
                return Chunked::Unexpected(format!(
                    "stream chunk for request {id}, which is not running"
                ))
            }
        };
        let Some(stream) = inflight.stream.as_mut() else {
            return Chunked::Unexpected(format!(
                "stream chunk for request {id}, which asked for no stream"
            ));
        };
        if !stream.may_send() {
            let window = stream.window.map_or(0, NonZeroU64::get);
            return Chunked::Unexpected(format!(
                "chunk {} of stream {id} exceeds its window of {window} plus {} credited",
                stream.chunks + 1,
                stream.credited
            ));
        }
        stream.chunks += 1;
        self.counters.chunks += 1;
        if inflight.reply.is_none() {
            return Chunked::Discard;
        }
        stream.idle_since = stream.may_send().then_some(now);
        Chunked::Deliver(stream.sink.clone())
    }

    /// The caller of stream `id` took `taken` more chunks: the worker gets that much credit
    /// (if it takes credit, and no more than the chunks it sent).
    pub fn stream_ack(&mut self, id: u64, taken: u64, now: Instant) -> Effects<H> {
        let now = self.clock(now);
        let mut effects = Effects::default();
        let Some(index) = self.running(id) else {
            return effects;
        };
        let slot = &mut self.slots[index];
        let Some(inflight) = slot.inflight.as_mut().filter(|i| i.reply.is_some()) else {
            return effects;
        };
        let Some(stream) = inflight.stream.as_mut() else {
            return effects;
        };
        stream.acked = stream.acked.saturating_add(taken);
        if stream.window.is_none() {
            return effects;
        }
        let Some(grant) = NonZeroU64::new(taken.min(stream.chunks - stream.credited)) else {
            return effects;
        };
        let blocked = !stream.may_send();
        stream.credited += grant.get();
        let worker = slot
            .worker
            .as_ref()
            .expect("a running slot has a worker")
            .1
            .clone();
        effects.sends.push((worker, Send::Credit(id, grant)));
        if blocked {
            stream.idle_since = Some(now);
            if let Some(at) = stream.idle_deadline() {
                self.note_deadline(at);
            }
        }
        effects
    }

    /// Halts stream `id` (its consumer stopped): it gets its outcome, the caller no more
    /// messages; a running one's worker is sent a cancel. Nothing happens if it has its
    /// outcome already, or is not a stream.
    pub fn halt(&mut self, id: u64, now: Instant) -> Effects<H> {
        let now = self.clock(now);
        let mut effects = Effects::default();
        if self
            .queue
            .get(id)
            .is_some_and(|queued| queued.stream.is_some())
        {
            let queued = self.queue.remove(id).expect("found above");
            self.counters.record(Outcome::Halted, queued.timings(now));
            effects.demonitors.extend(queued.monitor);
            effects.withdrawn.push(queued.reply);
        } else if let Some(index) = self.running(id) {
            self.halt_running(index, now, &mut effects);
        }
        effects
    }

    /// Halts the stream running on slot `index`, if it is a stream without an outcome.
    pub(crate) fn halt_running(&mut self, index: usize, now: Instant, effects: &mut Effects<H>) {
        let grace = self.config.cancel_grace;
        let slot = &mut self.slots[index];
        let Some(inflight) = slot.inflight.as_mut().filter(|i| i.stream.is_some()) else {
            return;
        };
        let Some(reply) = inflight.reply.take() else {
            return;
        };
        self.counters.record(Outcome::Halted, inflight.timings(now));
        effects.withdrawn.push(reply);
        inflight.expired_at = Some(now);
        inflight.cancel_sent = true;
        let worker = slot
            .worker
            .as_ref()
            .expect("a running slot has a worker")
            .1
            .clone();
        effects.sends.push((worker, Send::Cancel(inflight.id)));
        self.note_deadline(now + grace);
    }

    /// The slot running request `id`.
    pub(crate) fn running(&self, id: u64) -> Option<usize> {
        self.slots
            .iter()
            .position(|slot| slot.inflight.as_ref().is_some_and(|i| i.id == id))
    }

    /// Whether stream `id` runs and its worker waits for credit: it used up its window (the
    /// consumer has that many chunks it has not acknowledged).
    pub fn waits_for_credit(&self, id: u64) -> bool {
        self.running(id).is_some_and(|index| {
            let inflight = self.slots[index].inflight.as_ref();
            let stream = inflight.and_then(|i| i.stream.as_ref());
            stream.is_some_and(|s| s.window.is_some() && !s.may_send())
        })
    }

    /// Whether request `id` is a stream still running with no outcome: its chunks are
    /// delivered, and its caller's acknowledgements become credit.
    pub fn streaming(&self, id: u64) -> bool {
        self.running(id).is_some_and(|index| {
            self.slots[index]
                .inflight
                .as_ref()
                .is_some_and(|i| i.stream.is_some() && i.reply.is_some())
        })
    }
}

impl<H: Host> InFlight<H> {
    /// The request leaves its worker: its stream's monitor (if any) is removed; returns its
    /// reply target unless it has its outcome already.
    pub(crate) fn leave(self, effects: &mut Effects<H>) -> Option<H::Reply> {
        if let Some(monitor) = self.stream.and_then(|stream| stream.monitor) {
            effects.demonitors.push(monitor);
        }
        self.reply
    }
}
