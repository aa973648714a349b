//! Docker's multiplexed stream format: every chunk of a non-TTY attach,
//! exec or log stream is framed with an 8-byte header
//! `[stream, 0, 0, 0, len (u32 big endian)]`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::types::{OutputChunk, StreamKind};
use crate::{Error, Result};

/// Frames `chunk` (a `tty` stream is raw: no header).
pub fn encode(chunk: &OutputChunk, tty: bool) -> Bytes {
    if tty {
        return chunk.data.clone();
    }
    let mut buf = BytesMut::with_capacity(8 + chunk.data.len());
    buf.put_u8(chunk.stream as u8);
    buf.put_bytes(0, 3);
    buf.put_u32(chunk.data.len() as u32);
    buf.extend_from_slice(&chunk.data);
    buf.freeze()
}

/// Splits a byte stream back into chunks.
#[derive(Debug, Default)]
pub struct Demuxer {
    buf: BytesMut,
    tty: bool,
}

impl Demuxer {
    /// A demuxer for a multiplexed (`tty == false`) or raw stream.
    pub fn new(tty: bool) -> Demuxer {
        Demuxer {
            buf: BytesMut::new(),
            tty,
        }
    }

    /// Feeds bytes; returns the complete chunks now available.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<OutputChunk>> {
        if self.tty {
            return Ok(vec![OutputChunk::stdout(Bytes::copy_from_slice(data))]);
        }
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while self.buf.len() >= 8 {
            let stream = match self.buf[0] {
                0 => StreamKind::Stdin,
                1 => StreamKind::Stdout,
                2 => StreamKind::Stderr,
                other => {
                    return Err(Error::internal(format!(
                        "multiplexed stream: bad stream id {other}"
                    )))
                }
            };
            let len =
                u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
            if self.buf.len() < 8 + len {
                break;
            }
            self.buf.advance(8);
            let data = self.buf.split_to(len).freeze();
            out.push(OutputChunk { stream, data });
        }
        Ok(out)
    }

    /// Bytes left over that do not make a whole frame (non-empty at EOF
    /// means a truncated stream).
    pub fn leftover(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_across_arbitrary_splits() {
        let chunks = vec![
            OutputChunk::stdout("hello\n"),
            OutputChunk::stderr("err"),
            OutputChunk::stdout(""),
        ];
        let wire: Vec<u8> = chunks
            .iter()
            .flat_map(|c| encode(c, false).to_vec())
            .collect();
        assert_eq!(&wire[..8], &[1, 0, 0, 0, 0, 0, 0, 6]);
        for split in 0..wire.len() {
            let mut d = Demuxer::new(false);
            let mut got = d.push(&wire[..split]).unwrap();
            got.extend(d.push(&wire[split..]).unwrap());
            assert_eq!(got, chunks);
            assert_eq!(d.leftover(), 0);
        }
        assert!(Demuxer::new(false).push(&[9, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert_eq!(encode(&OutputChunk::stderr("x"), true), Bytes::from("x"));
    }
}
