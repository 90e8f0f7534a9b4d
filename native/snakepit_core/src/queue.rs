//! Requests waiting for a worker: one global FIFO, plus one FIFO per slot for requests that must
//! run on that slot's worker (strict session affinity). A slot serves its own line first.

use std::collections::VecDeque;

/// Something waiting, identified by a request id.
pub trait Waiting {
    fn id(&self) -> u64;
}

pub struct Queue<T> {
    global: VecDeque<T>,
    lines: Vec<VecDeque<T>>,
    len: usize,
}

impl<T: Waiting> Queue<T> {
    pub fn new(slots: usize) -> Self {
        Queue {
            global: VecDeque::new(),
            lines: (0..slots).map(|_| VecDeque::new()).collect(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends to the global line, or to `slot`'s own line.
    pub fn push(&mut self, item: T, slot: Option<usize>) {
        match slot {
            None => self.global.push_back(item),
            Some(slot) => {
                if slot >= self.lines.len() {
                    self.lines.resize_with(slot + 1, VecDeque::new);
                }
                self.lines[slot].push_back(item)
            }
        }
        self.len += 1;
    }

    /// The next request `slot` should run: its own line first, then the global one.
    pub fn dequeue_for(&mut self, slot: usize) -> Option<T> {
        let item = match self.lines.get_mut(slot).and_then(VecDeque::pop_front) {
            Some(item) => Some(item),
            None => self.global.pop_front(),
        };
        self.len -= item.is_some() as usize;
        item
    }

    /// Finds a waiting request by id.
    pub fn get(&self, id: u64) -> Option<&T> {
        self.all_lines()
            .flat_map(|line| line.iter())
            .find(|item| item.id() == id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        std::iter::once(&mut self.global)
            .chain(self.lines.iter_mut())
            .flat_map(|line| line.iter_mut())
            .find(|item| item.id() == id)
    }

    /// Removes a waiting request by id.
    pub fn remove(&mut self, id: u64) -> Option<T> {
        self.remove_first(|item| item.id() == id)
    }

    /// Removes the first request (global line first, then each slot's) matching `pred`.
    pub fn remove_first(&mut self, pred: impl Fn(&T) -> bool) -> Option<T> {
        for line in std::iter::once(&mut self.global).chain(self.lines.iter_mut()) {
            if let Some(position) = line.iter().position(&pred) {
                self.len -= 1;
                return line.remove(position);
            }
        }
        None
    }

    /// Removes the requests at the front of each line while `expired` holds (all requests share
    /// one queue timeout, so the oldest of a line are at its front).
    pub fn drain_front_while(&mut self, expired: impl Fn(&T) -> bool) -> Vec<T> {
        let mut out = Vec::new();
        for line in std::iter::once(&mut self.global).chain(self.lines.iter_mut()) {
            while line.front().is_some_and(&expired) {
                out.extend(line.pop_front());
            }
        }
        self.len -= out.len();
        out
    }

    /// The oldest request of each line.
    pub fn fronts(&self) -> impl Iterator<Item = &T> {
        self.all_lines().filter_map(VecDeque::front)
    }

    /// Removes everything, oldest global first.
    pub fn drain_all(&mut self) -> Vec<T> {
        let mut out: Vec<T> = self.global.drain(..).collect();
        for line in &mut self.lines {
            out.extend(line.drain(..));
        }
        self.len = 0;
        out
    }

    /// Moves everything waiting in `slot`'s own line into the global line (its worker is gone),
    /// merged so that the global line stays oldest first (`older(a, b)`: `a` waited longer).
    pub fn merge_line_into_global(&mut self, slot: usize, older: impl Fn(&T, &T) -> bool) {
        let Some(line) = self.lines.get_mut(slot).filter(|line| !line.is_empty()) else {
            return;
        };
        let mut line = std::mem::take(line);
        let mut global = std::mem::take(&mut self.global);
        let mut merged = VecDeque::with_capacity(line.len() + global.len());
        while let (Some(a), Some(b)) = (line.front(), global.front()) {
            let next = if older(a, b) { &mut line } else { &mut global };
            merged.extend(next.pop_front());
        }
        merged.extend(global);
        merged.extend(line);
        self.global = merged;
    }

    fn all_lines(&self) -> impl Iterator<Item = &VecDeque<T>> {
        std::iter::once(&self.global).chain(self.lines.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Waiting for u64 {
        fn id(&self) -> u64 {
            *self
        }
    }

    #[test]
    fn a_slot_serves_its_own_line_first_then_the_global_fifo() {
        let mut queue = Queue::new(2);
        queue.push(1, None);
        queue.push(2, Some(1));
        queue.push(3, None);
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.dequeue_for(0), Some(1));
        assert_eq!(queue.dequeue_for(1), Some(2));
        assert_eq!(queue.dequeue_for(1), Some(3));
        assert_eq!(queue.dequeue_for(0), None);
        assert!(queue.is_empty());
    }

    #[test]
    fn removes_by_id_from_any_line() {
        let mut queue = Queue::new(1);
        queue.push(1, None);
        queue.push(2, Some(0));
        assert_eq!(queue.remove(2), Some(2));
        assert_eq!(queue.remove(2), None);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.get(1), Some(&1));
    }

    #[test]
    fn a_line_merged_into_the_global_one_keeps_it_oldest_first() {
        let mut queue = Queue::new(1);
        for id in [1, 4, 6] {
            queue.push(id, None);
        }
        for id in [2, 3, 5, 7] {
            queue.push(id, Some(0));
        }
        queue.merge_line_into_global(0, |a, b| a < b);
        assert_eq!(queue.len(), 7);
        let order: Vec<u64> = std::iter::from_fn(|| queue.dequeue_for(0)).collect();
        assert_eq!(order, vec![1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn drains_expired_fronts_only() {
        let mut queue = Queue::new(1);
        for id in [1, 2, 10, 3] {
            queue.push(id, None);
        }
        assert_eq!(queue.drain_front_while(|&id| id < 5), vec![1, 2]);
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.fronts().copied().collect::<Vec<_>>(), vec![10]);
    }
}
