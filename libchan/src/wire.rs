//! The frame format (see PROTOCOL.md). Pure functions over bytes, no I/O,
//! so the decoder can be fuzzed and unit-tested on its own.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{Error, Result};

/// Size of the fixed frame header.
pub const HEADER_LEN: usize = 16;
/// Size of one channel announcement at the end of a MSG body.
pub const ANN_LEN: usize = 13;
/// Most fds one frame may carry (the kernel's SCM_MAX_FD).
pub const MAX_FDS_PER_FRAME: usize = 253;
/// Protocol magic at the start of HELLO.
pub const MAGIC: &[u8; 4] = b"LCHN";
/// Wire protocol version spoken by this crate.
pub const VERSION: u16 = 1;
/// Credit window of the two root channels (ids 0 and 1).
pub const ROOT_WINDOW: u32 = 256;
/// Root channel whose receiver is on the server (client → server).
pub const ROOT_TO_SERVER: u64 = 0;
/// Root channel whose receiver is on the client (server → client).
pub const ROOT_TO_CLIENT: u64 = 1;

/// Frame kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Version and limits; the first frame each side sends.
    Hello = 0,
    /// A message on a channel.
    Msg = 1,
    /// The receiver grants the sender more messages.
    Credit = 2,
    /// One side of a channel is gone.
    Close = 3,
    /// The sender is about to drop the connection because of an error.
    Error = 4,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0 => Kind::Hello,
            1 => Kind::Msg,
            2 => Kind::Credit,
            3 => Kind::Close,
            4 => Kind::Error,
            _ => return None,
        })
    }
}

/// What a channel announcement hands to the receiver of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AnnKind {
    /// The peer receives a `Sender`: it will send MSG on this id.
    Sender = 1,
    /// The peer receives a `Receiver`: MSG frames on this id flow to it.
    Receiver = 2,
}

/// A new channel introduced by a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    /// Channel id, allocated by the sender of the message.
    pub id: u64,
    /// Which half the message carries.
    pub kind: AnnKind,
    /// Initial credit: how many messages may be sent before a CREDIT.
    pub window: u32,
}

/// One decoded frame header with its body.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Frame kind.
    pub kind: Kind,
    /// Number of fds that travel with this frame.
    pub nfds: u8,
    /// Number of channel announcements at the end of the body.
    pub nann: u16,
    /// Channel id the frame is about (0 for HELLO and ERROR).
    pub chan: u64,
    /// The body (without the header).
    pub body: Bytes,
}

/// Contents of a HELLO frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version.
    pub version: u16,
    /// True if the sender can pass fds on this transport.
    pub fds: bool,
    /// True if the sender accepts CLOSE frames with a reason (flag bit 1).
    pub close_reasons: bool,
    /// Largest frame body the sender accepts.
    pub max_frame_size: u32,
}

/// Longest reason carried by a CLOSE or ERROR frame.
pub const MAX_REASON: usize = 1024;

/// Encodes a frame header.
pub fn header(kind: Kind, nfds: u8, nann: u16, chan: u64, body_len: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&body_len.to_le_bytes());
    h[4] = kind as u8;
    h[5] = nfds;
    h[6..8].copy_from_slice(&nann.to_le_bytes());
    h[8..16].copy_from_slice(&chan.to_le_bytes());
    h
}

/// Appends a frame header.
pub fn put_header(out: &mut Vec<u8>, kind: Kind, nfds: u8, nann: u16, chan: u64, body_len: u32) {
    out.extend_from_slice(&header(kind, nfds, nann, chan, body_len));
}

/// Writes one announcement.
pub fn put_announcement(out: &mut Vec<u8>, a: &Announcement) {
    out.extend_from_slice(&a.id.to_le_bytes());
    out.push(a.kind as u8);
    out.extend_from_slice(&a.window.to_le_bytes());
}

/// Encodes a complete HELLO frame.
pub fn hello_frame(h: &Hello) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 12);
    put_header(&mut out, Kind::Hello, 0, 0, 0, 12);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&h.version.to_le_bytes());
    let flags = u16::from(h.fds) | (u16::from(h.close_reasons) << 1);
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&h.max_frame_size.to_le_bytes());
    out
}

/// Splits complete frames off a receive buffer.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_size: usize,
}

impl FrameDecoder {
    /// A decoder rejecting bodies longer than `max_frame_size`.
    pub fn new(max_frame_size: usize) -> Self {
        FrameDecoder { max_frame_size }
    }

    /// Bytes still needed before the next frame is complete (at least 1),
    /// or 0 if `buf` already holds one.
    pub fn missing(&self, buf: &[u8]) -> usize {
        if buf.len() < HEADER_LEN {
            return HEADER_LEN - buf.len();
        }
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        (HEADER_LEN + len).saturating_sub(buf.len())
    }

    /// Takes the next complete frame off `buf`; `Ok(None)` if more bytes are
    /// needed. Errors on an unknown kind or an oversized length before the
    /// body is buffered, so a hostile length never makes us allocate.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len > self.max_frame_size {
            return Err(Error::Protocol(format!(
                "frame length {len} exceeds max_frame_size {}",
                self.max_frame_size
            )));
        }
        let kind = Kind::from_u8(buf[4])
            .ok_or_else(|| Error::Protocol(format!("unknown frame kind {}", buf[4])))?;
        let nfds = buf[5];
        let nann = u16::from_le_bytes([buf[6], buf[7]]);
        if usize::from(nfds) > MAX_FDS_PER_FRAME {
            return Err(Error::Protocol(format!(
                "frame declares {nfds} fds, more than {MAX_FDS_PER_FRAME}"
            )));
        }
        if kind != Kind::Msg && (nfds != 0 || nann != 0) {
            return Err(Error::Protocol(format!(
                "{kind:?} frame carries fds or announcements"
            )));
        }
        if usize::from(nann) * ANN_LEN > len {
            return Err(Error::Protocol(format!(
                "frame declares {nann} announcements but its body is only {len} bytes"
            )));
        }
        if buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let mut frame = buf.split_to(HEADER_LEN + len);
        let mut head = frame.split_to(HEADER_LEN);
        head.advance(8);
        let chan = head.get_u64_le();
        Ok(Some(Frame {
            kind,
            nfds,
            nann,
            chan,
            body: frame.freeze(),
        }))
    }
}

impl Frame {
    /// Splits a MSG body into payload and announcements.
    pub fn msg_parts(&self) -> Result<(Bytes, Vec<Announcement>)> {
        let ann_bytes = usize::from(self.nann) * ANN_LEN;
        let split = self
            .body
            .len()
            .checked_sub(ann_bytes)
            .ok_or_else(|| Error::Protocol("announcements longer than the body".into()))?;
        let payload = self.body.slice(..split);
        let mut rest = &self.body[split..];
        let mut anns = Vec::with_capacity(usize::from(self.nann));
        for _ in 0..self.nann {
            let id = rest.get_u64_le();
            let kind = match rest.get_u8() {
                1 => AnnKind::Sender,
                2 => AnnKind::Receiver,
                k => {
                    return Err(Error::Protocol(format!(
                        "unknown announcement kind {k} for channel {id}"
                    )))
                }
            };
            let window = rest.get_u32_le();
            if window == 0 {
                return Err(Error::Protocol(format!(
                    "channel {id} announced with a zero window"
                )));
            }
            anns.push(Announcement { id, kind, window });
        }
        Ok((payload, anns))
    }

    /// Reads a CREDIT body.
    pub fn credit(&self) -> Result<u32> {
        match self.body.as_ref() {
            [a, b, c, d] => Ok(u32::from_le_bytes([*a, *b, *c, *d])),
            _ => Err(Error::Protocol(format!(
                "CREDIT body of {} bytes, expected 4",
                self.body.len()
            ))),
        }
    }

    /// Reads a HELLO body.
    pub fn hello(&self) -> Result<Hello> {
        let b = self.body.as_ref();
        if b.len() != 12 || &b[..4] != MAGIC {
            return Err(Error::Protocol(
                "peer does not speak libchan (bad HELLO)".into(),
            ));
        }
        let flags = u16::from_le_bytes([b[6], b[7]]);
        Ok(Hello {
            version: u16::from_le_bytes([b[4], b[5]]),
            fds: flags & 1 == 1,
            close_reasons: flags & 2 == 2,
            max_frame_size: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        })
    }

    /// Reads a CLOSE body: `None` for a plain close, or the reason the
    /// sending side failed (lossily as UTF-8).
    pub fn close_reason(&self) -> Result<Option<String>> {
        match self.body.len() {
            0 => Ok(None),
            n if n > MAX_REASON => Err(Error::Protocol(format!(
                "CLOSE reason of {n} bytes (at most {MAX_REASON})"
            ))),
            _ => Ok(Some(String::from_utf8_lossy(&self.body).into_owned())),
        }
    }

    /// Reads an ERROR body (a reason, lossily as UTF-8).
    pub fn error_reason(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Runs every frame of `input` through the decoder and the body parsers,
/// as the connection's reader would, and reports the first protocol error.
/// The entry point of the fuzz target and of the corpus test.
pub fn decode_all(input: &[u8], max_frame_size: usize) -> Result<usize> {
    let dec = FrameDecoder::new(max_frame_size);
    let mut buf = BytesMut::from(input);
    let mut n = 0;
    while let Some(frame) = dec.decode(&mut buf)? {
        match frame.kind {
            Kind::Hello => {
                frame.hello()?;
            }
            Kind::Msg => {
                frame.msg_parts()?;
            }
            Kind::Credit => {
                frame.credit()?;
            }
            Kind::Close => {
                frame.close_reason()?;
            }
            Kind::Error => {
                frame.error_reason();
            }
        }
        n += 1;
    }
    if !buf.is_empty() {
        return Err(Error::Protocol(format!(
            "truncated frame: {} bytes left over",
            buf.len()
        )));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(chan: u64, payload: &[u8], anns: &[Announcement], nfds: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let body = payload.len() + anns.len() * ANN_LEN;
        put_header(
            &mut out,
            Kind::Msg,
            nfds,
            anns.len() as u16,
            chan,
            body as u32,
        );
        out.extend_from_slice(payload);
        for a in anns {
            put_announcement(&mut out, a);
        }
        out
    }

    #[test]
    fn round_trips_a_message_with_announcements() {
        let a = Announcement {
            id: 7,
            kind: AnnKind::Receiver,
            window: 9,
        };
        let bytes = msg(3, b"hi", &[a], 2);
        let mut buf = BytesMut::from(&bytes[..]);
        let f = FrameDecoder::new(1024).decode(&mut buf).unwrap().unwrap();
        assert_eq!((f.kind, f.nfds, f.nann, f.chan), (Kind::Msg, 2, 1, 3));
        let (payload, anns) = f.msg_parts().unwrap();
        assert_eq!(&payload[..], b"hi");
        assert_eq!(anns, vec![a]);
        assert!(buf.is_empty());
    }

    #[test]
    fn waits_for_a_partial_frame() {
        let bytes = msg(3, b"hello", &[], 0);
        let dec = FrameDecoder::new(1024);
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert!(dec.decode(&mut buf).unwrap().is_none(), "cut at {cut}");
            assert!(dec.missing(&buf) >= 1);
        }
        assert!(
            matches!(decode_all(&bytes[..bytes.len() - 1], 1024), Err(Error::Protocol(m)) if m.contains("truncated"))
        );
    }

    #[test]
    fn rejects_an_oversized_length_before_buffering() {
        let mut out = Vec::new();
        put_header(&mut out, Kind::Msg, 0, 0, 3, u32::MAX);
        let err = FrameDecoder::new(1 << 20)
            .decode(&mut BytesMut::from(&out[..]))
            .unwrap_err();
        assert!(err.to_string().contains("exceeds max_frame_size"), "{err}");
    }

    #[test]
    fn rejects_garbage_headers() {
        let mut out = Vec::new();
        put_header(&mut out, Kind::Msg, 0, 0, 3, 0);
        out[4] = 99;
        assert!(decode_all(&out, 1024)
            .unwrap_err()
            .to_string()
            .contains("unknown frame kind 99"));
        let mut out = Vec::new();
        put_header(&mut out, Kind::Msg, 0, 5, 3, 4);
        out.extend_from_slice(&[0; 4]);
        assert!(decode_all(&out, 1024)
            .unwrap_err()
            .to_string()
            .contains("announcements"));
        let mut out = Vec::new();
        put_header(&mut out, Kind::Credit, 0, 0, 3, 3);
        out.extend_from_slice(&[0; 3]);
        assert!(decode_all(&out, 1024)
            .unwrap_err()
            .to_string()
            .contains("CREDIT"));
        let mut out = Vec::new();
        put_header(&mut out, Kind::Close, 1, 0, 3, 0);
        assert!(decode_all(&out, 1024).is_err());
    }

    #[test]
    fn hello_round_trip() {
        for (fds, close_reasons) in [(true, false), (false, true), (true, true)] {
            let h = Hello {
                version: VERSION,
                fds,
                close_reasons,
                max_frame_size: 4096,
            };
            let mut buf = BytesMut::from(&hello_frame(&h)[..]);
            let f = FrameDecoder::new(1024).decode(&mut buf).unwrap().unwrap();
            assert_eq!(f.hello().unwrap(), h);
        }
    }

    #[test]
    fn close_reasons_are_bounded() {
        let frame = |body: &[u8]| {
            let mut out = Vec::new();
            put_header(&mut out, Kind::Close, 0, 0, 3, body.len() as u32);
            out.extend_from_slice(body);
            out
        };
        assert_eq!(decode_all(&frame(b""), 4096).unwrap(), 1);
        assert_eq!(decode_all(&frame(b"upstream died"), 4096).unwrap(), 1);
        assert!(decode_all(&frame(&[b'x'; MAX_REASON + 1]), 4096)
            .unwrap_err()
            .to_string()
            .contains("CLOSE reason"));
    }
}
