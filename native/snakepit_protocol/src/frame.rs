//! 4-byte big-endian length-prefixed frames.
//!
//! The decoder is incremental: bytes arrive in whatever pieces the pipe hands out, and "not enough
//! bytes yet" is a normal state, not an error. A frame whose announced length exceeds the configured
//! maximum is refused as soon as its header is seen, before any memory is reserved for it.

use std::io::{self, Read};

/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// How much the decoder asks the pipe for at a time when no larger frame is pending.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the maximum frame size of {max} bytes")]
    TooLarge { len: usize, max: usize },
}

/// Starts a frame in `buf`: reserves the header, to be filled by [`finish_frame`] once the payload
/// has been written after it. Lets the request encoder write JSON straight into the frame.
pub fn begin_frame(buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&[0; HEADER_LEN]);
}

/// Writes the payload length into the header reserved by [`begin_frame`].
pub fn finish_frame(buf: &mut [u8], max: usize) -> Result<(), FrameError> {
    let len = buf.len() - HEADER_LEN;
    if len > max || len > u32::MAX as usize {
        return Err(FrameError::TooLarge { len, max });
    }
    buf[..HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Builds a whole frame around `payload`.
pub fn encode_frame(payload: &[u8], max: usize) -> Result<Vec<u8>, FrameError> {
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
    begin_frame(&mut buf);
    buf.extend_from_slice(payload);
    finish_frame(&mut buf, max)?;
    Ok(buf)
}

/// Accumulates bytes and cuts them into frames.
///
/// The buffer is zeroed once and reused: reads land in its spare part, so a read costs no
/// allocation and no clearing. It grows for a frame larger than a read chunk and shrinks back
/// once that frame has been consumed.
pub struct FrameDecoder {
    /// Storage; `buf[start..end]` holds bytes received and not yet consumed.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of the frame handed out by the last `next_frame`, released on the next call.
    pending_release: usize,
    /// Largest payload accepted.
    max: usize,
}

impl FrameDecoder {
    pub fn new(max: usize) -> Self {
        FrameDecoder {
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            pending_release: 0,
            max,
        }
    }

    /// Appends bytes (used by tests and by callers that read elsewhere).
    pub fn push(&mut self, bytes: &[u8]) {
        self.release();
        self.make_room(bytes.len());
        self.buf[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// Reads once from `reader` into the buffer. Returns the byte count; 0 means end of file.
    pub fn read_from<R: Read>(&mut self, reader: &mut R) -> io::Result<usize> {
        self.release();
        let want = self.bytes_wanted().max(READ_CHUNK);
        self.make_room(want);
        let got = reader.read(&mut self.buf[self.end..self.end + want])?;
        self.end += got;
        Ok(got)
    }

    /// The next complete frame's payload, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        self.release();
        let available = &self.buf[self.start..self.end];
        if available.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes(available[..HEADER_LEN].try_into().unwrap()) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        if available.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let begin = self.start + HEADER_LEN;
        self.pending_release = HEADER_LEN + len;
        Ok(Some(&self.buf[begin..begin + len]))
    }

    /// Number of bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start - self.pending_release
    }

    fn release(&mut self) {
        self.start += std::mem::take(&mut self.pending_release);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // Give back what a large frame made the buffer grow to.
            if self.buf.len() > 4 * READ_CHUNK {
                self.buf.truncate(READ_CHUNK);
                self.buf.shrink_to_fit();
            }
        }
    }

    /// Makes `extra` bytes of room after `end`: first by moving unconsumed bytes to the front,
    /// then by growing (only the new part is zeroed).
    fn make_room(&mut self, extra: usize) {
        if self.buf.len() - self.end >= extra {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < extra {
            self.buf.resize(self.end + extra, 0);
        }
    }

    /// How many more bytes finish the frame in progress (0 when its header is incomplete or it
    /// is oversized, which `next_frame` reports).
    fn bytes_wanted(&self) -> usize {
        let available = &self.buf[self.start..self.end];
        if available.len() < HEADER_LEN {
            return 0;
        }
        let len = u32::from_be_bytes(available[..HEADER_LEN].try_into().unwrap()) as usize;
        if len > self.max {
            return 0;
        }
        (HEADER_LEN + len).saturating_sub(available.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per call, like a slow pipe.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(self.data.len()).min(out.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn frames_of(decoder: &mut FrameDecoder) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(frame) = decoder.next_frame().unwrap() {
            out.push(frame.to_vec());
        }
        out
    }

    #[test]
    fn round_trips_a_frame() {
        let frame = encode_frame(b"{\"a\":1}", 1024).unwrap();
        assert_eq!(&frame[..4], &[0, 0, 0, 7]);
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&frame);
        assert_eq!(frames_of(&mut decoder), vec![b"{\"a\":1}".to_vec()]);
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn partial_reads_one_byte_at_a_time() {
        let mut wire = encode_frame(b"hello", 64).unwrap();
        wire.extend(encode_frame(b"", 64).unwrap());
        wire.extend(encode_frame(b"world!", 64).unwrap());
        let mut reader = Trickle {
            data: &wire,
            step: 1,
        };
        let mut decoder = FrameDecoder::new(64);
        let mut frames = Vec::new();
        while decoder.read_from(&mut reader).unwrap() > 0 {
            frames.extend(frames_of(&mut decoder));
        }
        assert_eq!(frames, vec![b"hello".to_vec(), vec![], b"world!".to_vec()]);
    }

    #[test]
    fn header_split_across_reads_waits_for_more() {
        let wire = encode_frame(b"abc", 64).unwrap();
        let mut decoder = FrameDecoder::new(64);
        decoder.push(&wire[..2]);
        assert_eq!(decoder.next_frame().unwrap(), None);
        decoder.push(&wire[2..5]);
        assert_eq!(decoder.next_frame().unwrap(), None);
        decoder.push(&wire[5..]);
        assert_eq!(decoder.next_frame().unwrap(), Some(&b"abc"[..]));
    }

    #[test]
    fn oversized_frame_is_refused_from_its_header() {
        let mut decoder = FrameDecoder::new(16);
        // Only the header: a 4 GiB announcement must fail without waiting for (or reserving) it.
        decoder.push(&u32::MAX.to_be_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge {
                len: u32::MAX as usize,
                max: 16
            })
        );
        assert_eq!(decoder.bytes_wanted(), 0);
        assert!(decoder.buf.len() <= READ_CHUNK);
    }

    #[test]
    fn encoder_refuses_oversized_payload() {
        assert_eq!(
            encode_frame(&[b'x'; 17], 16),
            Err(FrameError::TooLarge { len: 17, max: 16 })
        );
    }

    #[test]
    fn large_frame_reads_in_pieces() {
        let payload = vec![b'z'; 300_000];
        let wire = encode_frame(&payload, 1 << 20).unwrap();
        let mut reader = Trickle {
            data: &wire,
            step: 10_000,
        };
        let mut decoder = FrameDecoder::new(1 << 20);
        let mut frames = Vec::new();
        while decoder.read_from(&mut reader).unwrap() > 0 {
            frames.extend(frames_of(&mut decoder));
        }
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0], payload);
    }
}
