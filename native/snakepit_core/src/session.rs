//! Session affinity: which worker a session's requests go to.
//!
//! A session is *bound* to the worker that last started one of its requests: the binding holds
//! the worker's slot and uid (unique in the run, so a replacement in the same slot is never
//! mistaken for the worker it replaced), the mode of that request and when the session was last
//! used. Looking a session up is one hash-map access on the request path; nothing else is paid
//! per request.
//!
//! # The modes, per request
//!
//! A request of a session that is not bound (yet, or any more) is a plain request: it runs on an
//! idle worker, else waits in the global queue; whichever worker starts it gets the session
//! bound. Requests of one session submitted before any of them started are all plain; once one
//! starts, a strict one still waiting in the global queue follows it to that worker's line.
//!
//! For a bound session:
//!
//! - [`Affinity::Hint`] (the default): the bound worker idle → it runs the request. Busy, and
//!   another worker idle → that one runs it and the session moves there. Every worker busy → the
//!   request waits in the bound worker's line, but only while every other worker is busy too:
//!   the first worker to free up that has nothing of its own to run takes it (the session then
//!   moves). So a hint request never waits while any worker is idle; what `:hint` promises is
//!   *the same worker whenever that costs no waiting*, not the same worker.
//! - [`Affinity::StrictQueue`]: the request runs on the bound worker only, waiting in its line
//!   while it is busy, bounded by the queue timeout like any queued request. Never moves.
//! - [`Affinity::StrictFailFast`]: the bound worker idle → it runs the request; busy → the
//!   request is refused at once ([`crate::Rejected::WorkerBusy`]), never queued.
//!
//! If the bound worker is gone (it crashed, was recycled, or is draining to be recycled):
//! a strict request is refused with [`crate::Rejected::SessionWorkerUnavailable`], and strict
//! requests already waiting in that worker's line fail with
//! [`crate::Failure::SessionWorkerUnavailable`]: the session's state on that worker is lost, and
//! carrying on elsewhere would silently run against a worker that never saw it. As upstream
//! Snakepit v0.13 does, the binding stays, so every later strict request of the session is
//! refused the same way until the session is forgotten ([`crate::Dispatch::forget_session`],
//! the session's end) or expires, or a hint request moves it to a live worker. A hint request
//! just moves on: it runs like a plain one and rebinds; hint requests waiting in a gone worker's
//! line join the global queue in age order.
//!
//! # Order in which a freed worker takes waiting requests
//!
//! First the oldest of its own line (requests of sessions bound to it, strict and hint, in age
//! order), then the oldest of: the global queue's front and the fronts of other workers' hint
//! lines. Every line is FIFO, a line's front is its oldest request, and every request but a
//! strict one is at some point the oldest any freed worker may take, so none waits while a
//! worker is idle and none is overtaken within its line; requests of a busy worker's own
//! sessions come before plain ones on that worker only.
//!
//! # Forgetting
//!
//! Bindings to gone workers are recognised lazily (by uid) and kept as described above. A
//! binding unused for the session TTL is expired: never used again, and its memory reclaimed by
//! a rotation the timer runs once per TTL (two generations of the map: a binding not used during
//! a whole generation is dropped with it), so memory stays bounded by the sessions used within
//! about two TTLs, at no cost per request.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How strictly a request of a session keeps to the session's worker (see the module doc).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Affinity {
    #[default]
    Hint,
    StrictQueue,
    StrictFailFast,
}

impl Affinity {
    /// Never runs anywhere but on the session's worker.
    pub fn is_strict(self) -> bool {
        self != Affinity::Hint
    }
}

/// The session a request belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub affinity: Affinity,
}

/// Where a session's requests go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The slot of the worker that last started one of the session's requests.
    pub slot: usize,
    /// That worker's uid: if the slot holds another worker now, the session's worker is gone.
    pub uid: u64,
    /// The mode of the session's latest request.
    pub affinity: Affinity,
    /// When the session's latest request was submitted.
    pub last_used: Instant,
}

/// A session's binding as `Dispatch::session` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo<W> {
    /// The session's worker; `None` when it is gone (strict requests are then refused).
    pub worker: Option<W>,
    /// The mode of the session's latest request.
    pub affinity: Affinity,
    pub last_used: Instant,
}

/// The session → worker map, in two generations (see "Forgetting" in the module doc).
pub struct Sessions {
    current: HashMap<String, Binding>,
    /// The generation before: a binding found here moves to `current`; what is left when the
    /// next rotation comes was unused for a whole generation and is dropped.
    previous: HashMap<String, Binding>,
    /// A binding unused this long is expired; `None`: never.
    ttl: Option<Duration>,
    /// When the next rotation is due; `None` while there is nothing to rotate.
    rotate_at: Option<Instant>,
}

impl Sessions {
    pub fn new(ttl: Option<Duration>) -> Self {
        Sessions {
            current: HashMap::new(),
            previous: HashMap::new(),
            ttl,
            rotate_at: None,
        }
    }

    /// Bound sessions (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn expired(&self, binding: &Binding, now: Instant) -> bool {
        self.ttl
            .is_some_and(|ttl| now.saturating_duration_since(binding.last_used) >= ttl)
    }

    /// The session's binding, unless it has none or it expired (then it is dropped).
    pub fn get_mut(&mut self, id: &str, now: Instant) -> Option<&mut Binding> {
        let expired = match self.current.get(id) {
            Some(binding) => self.expired(binding, now),
            None => {
                let (key, binding) = self.previous.remove_entry(id)?;
                let expired = self.expired(&binding, now);
                if !expired {
                    self.current.insert(key, binding);
                }
                expired
            }
        };
        if expired {
            self.current.remove(id);
            return None;
        }
        self.current.get_mut(id)
    }

    /// The session's binding as it stands, without renewing it.
    pub fn get(&self, id: &str, now: Instant) -> Option<Binding> {
        let binding = self.current.get(id).or_else(|| self.previous.get(id))?;
        (!self.expired(binding, now)).then_some(*binding)
    }

    /// Binds `session` to the worker `uid` of slot `slot`, used at `now`.
    pub fn bind(&mut self, session: Session, slot: usize, uid: u64, now: Instant) {
        let binding = Binding {
            slot,
            uid,
            affinity: session.affinity,
            last_used: now,
        };
        if !self.previous.is_empty() {
            self.previous.remove(&session.id);
        }
        self.current.insert(session.id, binding);
        if self.rotate_at.is_none() {
            self.rotate_at = self.ttl.map(|ttl| now + ttl);
        }
    }

    /// Forgets a session; whether it was bound.
    pub fn forget(&mut self, id: &str) -> bool {
        self.current.remove(id).is_some() | self.previous.remove(id).is_some()
    }

    /// When [`Sessions::rotate`] is next due.
    pub fn rotate_at(&self) -> Option<Instant> {
        self.rotate_at
    }

    /// Drops the previous generation if a rotation is due: every binding in it was unused for at
    /// least one TTL. Returns the sessions dropped: they ended on this pool, and the host tells
    /// the workers, which drop what they kept for them.
    pub fn rotate(&mut self, now: Instant) -> Vec<String> {
        match (self.rotate_at, self.ttl) {
            (Some(at), Some(ttl)) if at <= now => {
                let dropped =
                    std::mem::replace(&mut self.previous, std::mem::take(&mut self.current));
                self.rotate_at = (!self.previous.is_empty()).then_some(now + ttl);
                dropped.into_keys().collect()
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str) -> Session {
        Session {
            id: id.into(),
            affinity: Affinity::Hint,
        }
    }

    #[test]
    fn a_binding_unused_for_the_ttl_expires_and_is_dropped_within_two_rotations() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut sessions = Sessions::new(Some(Duration::from_secs(10)));
        sessions.bind(session("a"), 0, 1, s(0));
        sessions.bind(session("b"), 1, 2, s(0));
        assert_eq!(sessions.rotate_at(), Some(s(10)));
        sessions.get_mut("a", s(8)).unwrap().last_used = s(8);
        assert!(sessions.rotate(s(10)).is_empty());
        assert_eq!(sessions.len(), 2);
        // "a" is used again: it moves to the current generation and survives the next rotation.
        sessions.get_mut("a", s(12)).unwrap().last_used = s(12);
        assert_eq!(sessions.rotate(s(20)), ["b"]);
        assert!(sessions.get("b", s(20)).is_none());
        assert!(sessions.get("a", s(21)).is_some());
        // Unused for the TTL: expired even before a rotation drops it.
        assert!(sessions.get_mut("a", s(22)).is_none());
        assert!(sessions.is_empty());
        assert!(sessions.rotate(s(30)).is_empty());
        assert_eq!(sessions.rotate_at(), None);
    }

    #[test]
    fn forgetting_removes_from_either_generation() {
        let t0 = Instant::now();
        let mut sessions = Sessions::new(None);
        sessions.bind(session("a"), 0, 1, t0);
        assert!(sessions.forget("a"));
        assert!(!sessions.forget("a"));
        assert_eq!(sessions.rotate_at(), None);
    }
}
