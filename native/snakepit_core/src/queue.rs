//! Requests waiting for a worker: one global FIFO, plus two FIFOs per slot for requests of
//! sessions bound to that slot's worker: a strict line (they run there or nowhere) and a hint
//! line (they prefer it, and any freed worker with nothing of its own may take them). Every
//! request carries a sequence number given in submit order, by which lines are compared and
//! merged. See `session.rs` for the order in which a freed worker takes requests.

use std::collections::VecDeque;

/// Something waiting, identified by a request id, ordered by its sequence number.
pub trait Waiting {
    fn id(&self) -> u64;
    /// Its place in submit order.
    fn seq(&self) -> u64;
}

/// Where a request waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Global,
    /// In the slot's strict line: only that slot's worker runs it.
    Strict(usize),
    /// In the slot's hint line: that slot's worker first, else any freed worker.
    Hint(usize),
}

struct Line<T> {
    strict: VecDeque<T>,
    hint: VecDeque<T>,
}

impl<T> Default for Line<T> {
    fn default() -> Self {
        Line {
            strict: VecDeque::new(),
            hint: VecDeque::new(),
        }
    }
}

pub struct Queue<T> {
    global: VecDeque<T>,
    lines: Vec<Line<T>>,
    len: usize,
    /// Requests waiting in hint lines: a freed worker looks at other slots' hint lines only
    /// when there are some.
    hinted: usize,
}

/// The older of two optional fronts.
fn older<'a, T: Waiting>(a: Option<&'a T>, b: Option<&'a T>) -> Option<&'a T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if a.seq() <= b.seq() { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Inserts `item` into a line kept in sequence order (at the back, unless it is older).
fn insert_sorted<T: Waiting>(line: &mut VecDeque<T>, item: T) {
    if line.back().is_none_or(|last| last.seq() < item.seq()) {
        return line.push_back(item);
    }
    let at = line.partition_point(|waiting| waiting.seq() < item.seq());
    line.insert(at, item);
}

impl<T: Waiting> Queue<T> {
    pub fn new(slots: usize) -> Self {
        Queue {
            global: VecDeque::new(),
            lines: (0..slots).map(|_| Line::default()).collect(),
            len: 0,
            hinted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a request where it waits; lines stay in sequence order (a request moved from
    /// another line keeps its place by age).
    pub fn push(&mut self, item: T, place: Place) {
        match place {
            Place::Global => insert_sorted(&mut self.global, item),
            Place::Strict(slot) => insert_sorted(&mut self.line(slot).strict, item),
            Place::Hint(slot) => {
                insert_sorted(&mut self.line(slot).hint, item);
                self.hinted += 1;
            }
        }
        self.len += 1;
    }

    fn line(&mut self, slot: usize) -> &mut Line<T> {
        if slot >= self.lines.len() {
            self.lines.resize_with(slot + 1, Line::default);
        }
        &mut self.lines[slot]
    }

    /// The next request `slot`'s worker should run, and where it waited: the oldest of its own
    /// lines, else the oldest of the global line's front and other slots' hint fronts.
    pub fn dequeue_for(&mut self, slot: usize) -> Option<(T, Place)> {
        let taken = self.take_for(slot);
        self.len -= taken.is_some() as usize;
        taken
    }

    fn take_for(&mut self, slot: usize) -> Option<(T, Place)> {
        if let Some(own) = self.lines.get_mut(slot) {
            let oldest = older(own.strict.front(), own.hint.front()).map(Waiting::seq);
            if let Some(seq) = oldest {
                if own.strict.front().is_some_and(|item| item.seq() == seq) {
                    return own
                        .strict
                        .pop_front()
                        .map(|item| (item, Place::Strict(slot)));
                }
                self.hinted -= 1;
                return own.hint.pop_front().map(|item| (item, Place::Hint(slot)));
            }
        }
        let mut best: Option<(u64, Option<usize>)> = self.global.front().map(|i| (i.seq(), None));
        if self.hinted > 0 {
            for (index, line) in self.lines.iter().enumerate() {
                if let Some(front) = line.hint.front() {
                    if best.is_none_or(|(seq, _)| front.seq() < seq) {
                        best = Some((front.seq(), Some(index)));
                    }
                }
            }
        }
        match best? {
            (_, None) => self.global.pop_front().map(|item| (item, Place::Global)),
            (_, Some(index)) => {
                self.hinted -= 1;
                let item = self.lines[index].hint.pop_front();
                item.map(|item| (item, Place::Hint(index)))
            }
        }
    }

    /// Every line, with whether it is a hint line.
    fn all_lines(&self) -> impl Iterator<Item = (&VecDeque<T>, bool)> {
        std::iter::once((&self.global, false)).chain(
            self.lines
                .iter()
                .flat_map(|line| [(&line.strict, false), (&line.hint, true)]),
        )
    }

    fn all_lines_mut(&mut self) -> impl Iterator<Item = (&mut VecDeque<T>, bool)> {
        std::iter::once((&mut self.global, false)).chain(
            self.lines
                .iter_mut()
                .flat_map(|line| [(&mut line.strict, false), (&mut line.hint, true)]),
        )
    }

    /// Finds a waiting request by id.
    pub fn get(&self, id: u64) -> Option<&T> {
        self.all_lines()
            .flat_map(|(line, _)| line.iter())
            .find(|item| item.id() == id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        self.all_lines_mut()
            .flat_map(|(line, _)| line.iter_mut())
            .find(|item| item.id() == id)
    }

    /// Removes a waiting request by id.
    pub fn remove(&mut self, id: u64) -> Option<T> {
        self.remove_first(|item| item.id() == id)
    }

    /// Removes the first request (global line first, then each slot's) matching `pred`.
    pub fn remove_first(&mut self, pred: impl Fn(&T) -> bool) -> Option<T> {
        let mut removed = None;
        for (line, hint) in self.all_lines_mut() {
            if let Some(position) = line.iter().position(&pred) {
                removed = line.remove(position).map(|item| (item, hint));
                break;
            }
        }
        let (item, hint) = removed?;
        self.len -= 1;
        self.hinted -= hint as usize;
        Some(item)
    }

    /// Removes the requests at the front of each line while `expired` holds (all requests share
    /// one queue timeout, so the oldest of a line are at its front).
    pub fn drain_front_while(&mut self, expired: impl Fn(&T) -> bool) -> Vec<T> {
        let mut out = Vec::new();
        let mut hints = 0;
        for (line, hint) in self.all_lines_mut() {
            while line.front().is_some_and(&expired) {
                out.extend(line.pop_front());
                hints += hint as usize;
            }
        }
        self.len -= out.len();
        self.hinted -= hints;
        out
    }

    /// The oldest request of each line.
    pub fn fronts(&self) -> impl Iterator<Item = &T> {
        self.all_lines().filter_map(|(line, _)| line.front())
    }

    /// Removes everything, oldest global first.
    pub fn drain_all(&mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len);
        for (line, _) in self.all_lines_mut() {
            out.extend(line.drain(..));
        }
        self.len = 0;
        self.hinted = 0;
        out
    }

    /// `slot`'s worker is gone (or will take no more work): its hint line joins the global one,
    /// merged so that it stays oldest first, and its strict line is removed and returned.
    pub fn abandon_line(&mut self, slot: usize) -> Vec<T> {
        let Some(line) = self.lines.get_mut(slot) else {
            return Vec::new();
        };
        let strict: Vec<T> = line.strict.drain(..).collect();
        let hint = std::mem::take(&mut line.hint);
        self.len -= strict.len();
        self.hinted -= hint.len();
        if !hint.is_empty() {
            let global = std::mem::take(&mut self.global);
            let (mut a, mut b) = (hint, global);
            let mut merged = VecDeque::with_capacity(a.len() + b.len());
            while let (Some(x), Some(y)) = (a.front(), b.front()) {
                let next = if x.seq() <= y.seq() { &mut a } else { &mut b };
                merged.extend(next.pop_front());
            }
            merged.extend(a);
            merged.extend(b);
            self.global = merged;
        }
        strict
    }

    /// Requests waiting in `slot`'s own lines.
    pub fn waiting_for(&self, slot: usize) -> usize {
        self.lines
            .get(slot)
            .map_or(0, |line| line.strict.len() + line.hint.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Waiting for u64 {
        fn id(&self) -> u64 {
            *self
        }
        fn seq(&self) -> u64 {
            *self
        }
    }

    fn order(queue: &mut Queue<u64>, slot: usize) -> Vec<u64> {
        std::iter::from_fn(|| queue.dequeue_for(slot).map(|(item, _)| item)).collect()
    }

    #[test]
    fn a_slot_serves_its_own_lines_first_then_the_oldest_of_the_rest() {
        let mut queue = Queue::new(3);
        queue.push(1, Place::Global);
        queue.push(2, Place::Strict(1));
        queue.push(3, Place::Global);
        queue.push(4, Place::Hint(1));
        queue.push(5, Place::Hint(2));
        assert_eq!(queue.len(), 5);
        // Slot 1: its own lines (strict 2, hint 4) by age, then global 1 and 3, and hint 5.
        assert_eq!(order(&mut queue, 1), vec![2, 4, 1, 3, 5]);
        assert!(queue.is_empty());
    }

    #[test]
    fn strict_lines_are_never_taken_by_another_slot() {
        let mut queue = Queue::new(2);
        queue.push(1, Place::Strict(0));
        queue.push(2, Place::Hint(0));
        queue.push(3, Place::Global);
        assert_eq!(order(&mut queue, 1), vec![2, 3]);
        assert_eq!(queue.len(), 1);
        assert_eq!(order(&mut queue, 0), vec![1]);
    }

    #[test]
    fn removes_by_id_from_any_line() {
        let mut queue = Queue::new(1);
        queue.push(1, Place::Global);
        queue.push(2, Place::Hint(0));
        assert_eq!(queue.remove(2), Some(2));
        assert_eq!(queue.remove(2), None);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.get(1), Some(&1));
        assert_eq!(queue.hinted, 0);
    }

    #[test]
    fn an_abandoned_line_returns_its_strict_requests_and_merges_its_hints_by_age() {
        let mut queue = Queue::new(1);
        for id in [1, 4, 6] {
            queue.push(id, Place::Global);
        }
        for id in [2, 3, 7] {
            queue.push(id, Place::Hint(0));
        }
        queue.push(5, Place::Strict(0));
        assert_eq!(queue.abandon_line(0), vec![5]);
        assert_eq!(queue.len(), 6);
        assert_eq!(order(&mut queue, 0), vec![1, 2, 3, 4, 6, 7]);
    }

    #[test]
    fn a_moved_request_keeps_its_place_by_age() {
        let mut queue = Queue::new(1);
        queue.push(3, Place::Strict(0));
        queue.push(1, Place::Strict(0));
        assert_eq!(order(&mut queue, 0), vec![1, 3]);
    }

    #[test]
    fn drains_expired_fronts_only() {
        let mut queue = Queue::new(1);
        for id in [1, 2, 10] {
            queue.push(id, Place::Global);
        }
        queue.push(3, Place::Hint(0));
        assert_eq!(queue.drain_front_while(|&id| id < 5), vec![1, 2, 3]);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.hinted, 0);
        assert_eq!(queue.fronts().copied().collect::<Vec<_>>(), vec![10]);
    }
}
