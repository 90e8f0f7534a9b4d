//! Cutting a worker's output into log lines of bounded size, as it streams: a line longer than
//! the bound is cut there and the rest of it is counted, not kept, so a worker printing hundreds
//! of megabytes without a newline costs the pool a few kilobytes.

/// One line, as long as the bound allows, and how many bytes of it were dropped.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    pub text: &'a [u8],
    pub cut: u64,
}

pub struct LineCutter {
    line: Vec<u8>,
    max: usize,
    /// Bytes of the current line dropped past `max`.
    cut: u64,
}

impl LineCutter {
    pub fn new(max: usize) -> Self {
        LineCutter {
            line: Vec::new(),
            max,
            cut: 0,
        }
    }

    /// Feeds bytes as they arrive; `emit` gets every line they complete (without its `\n` or a
    /// trailing `\r`).
    pub fn feed(&mut self, mut bytes: &[u8], mut emit: impl FnMut(Line)) {
        while !bytes.is_empty() {
            let (part, complete) = match bytes.iter().position(|&b| b == b'\n') {
                Some(end) => (&bytes[..end], Some(end + 1)),
                None => (bytes, None),
            };
            let room = self.max - self.line.len();
            let kept = part.len().min(room);
            self.line.extend_from_slice(&part[..kept]);
            self.cut += (part.len() - kept) as u64;
            match complete {
                Some(consumed) => {
                    self.flush(&mut emit);
                    bytes = &bytes[consumed..];
                }
                None => bytes = &[],
            }
        }
    }

    /// Emits what is left of an unfinished line (the output ended).
    pub fn finish(&mut self, mut emit: impl FnMut(Line)) {
        if !self.line.is_empty() || self.cut > 0 {
            self.flush(&mut emit);
        }
    }

    fn flush(&mut self, emit: &mut impl FnMut(Line)) {
        let mut text = &self.line[..];
        if self.cut == 0 && text.last() == Some(&b'\r') {
            text = &text[..text.len() - 1];
        }
        emit(Line {
            text,
            cut: self.cut,
        });
        self.line.clear();
        self.cut = 0;
    }

    /// Bytes held right now (never more than the bound).
    pub fn held(&self) -> usize {
        self.line.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(cutter: &mut LineCutter, input: &[&[u8]]) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for bytes in input {
            cutter.feed(bytes, |line| {
                out.push((String::from_utf8_lossy(line.text).into_owned(), line.cut))
            });
        }
        cutter.finish(|line| out.push((String::from_utf8_lossy(line.text).into_owned(), line.cut)));
        out
    }

    #[test]
    fn splits_lines_across_reads() {
        let mut cutter = LineCutter::new(100);
        assert_eq!(
            lines(&mut cutter, &[b"ab", b"c\r\nd\n\nef"]),
            vec![
                ("abc".into(), 0),
                ("d".into(), 0),
                ("".into(), 0),
                ("ef".into(), 0)
            ]
        );
    }

    #[test]
    fn a_long_line_is_cut_at_the_bound_and_the_rest_counted_not_kept() {
        let mut cutter = LineCutter::new(4);
        let chunk = vec![b'x'; 1 << 20];
        let mut out = Vec::new();
        for _ in 0..200 {
            cutter.feed(&chunk, |line| out.push(line.cut));
            assert!(cutter.held() <= 64, "holds {} bytes", cutter.held());
        }
        cutter.feed(b"\nnext\n", |line| out.push(line.cut));
        assert_eq!(out, vec![200 * (1 << 20) - 4, 0]);
    }
}
