//! Handling of frames from the peer.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::endpoint::{AnnIn, PendingRx, RawMsg, RemoteTx, WireReg};
use super::{ConnShared, Entry, Pending};
use crate::error::{Error, Result};
use crate::wire::{self, AnnKind, Frame, Kind};

impl ConnShared {
    /// Handles one frame from the peer.
    pub(super) fn dispatch(
        self: &Arc<Self>,
        frame: Frame,
        fds: &mut VecDeque<OwnedFd>,
        got_hello: &mut bool,
    ) -> Result<()> {
        if !*got_hello {
            if frame.kind != Kind::Hello {
                return Err(Error::Protocol(format!(
                    "first frame is {:?}, not HELLO",
                    frame.kind
                )));
            }
            let h = frame.hello()?;
            if h.version != wire::VERSION {
                return Err(Error::Protocol(format!(
                    "peer speaks protocol version {}, this side {}",
                    h.version,
                    wire::VERSION
                )));
            }
            self.peer_max_frame
                .store(h.max_frame_size as usize, Ordering::Relaxed);
            self.peer_close_reasons
                .store(h.close_reasons, Ordering::Release);
            *got_hello = true;
            return Ok(());
        }
        match frame.kind {
            Kind::Hello => Err(Error::Protocol("second HELLO".into())),
            Kind::Error => Err(Error::Disconnected(format!(
                "peer reported an error: {}",
                frame.error_reason()
            ))),
            Kind::Credit => {
                let n = frame.credit()?;
                let entry = match self.table().entries.get(&frame.chan) {
                    Some(Entry::Tx(w)) => w.upgrade(),
                    _ => None,
                };
                if let Some(tx) = entry {
                    let limit = tx.window;
                    if !tx.grant(n, limit) {
                        return Err(Error::Protocol(format!(
                            "CREDIT on channel {} exceeds its window",
                            frame.chan
                        )));
                    }
                }
                Ok(())
            }
            Kind::Close => {
                // A reason means the far side's sender failed (its own
                // upstream connection died): the receiver sees an error
                // after the queued messages, not a clean end of stream.
                let failed = frame
                    .close_reason()?
                    .map(|r| Error::Disconnected(format!("sender failed: {r}")));
                let mut t = self.table();
                let removed = match t.entries.get_mut(&frame.chan) {
                    Some(Entry::Pending(p)) => {
                        p.open = false;
                        p.err = failed.clone();
                        None
                    }
                    Some(_) => t.entries.remove(&frame.chan),
                    None => None,
                };
                let empty = t.entries.is_empty();
                drop(t);
                match removed {
                    Some(Entry::Sink { sink, reg }) => match failed {
                        Some(e) => sink.sender_failed(&reg, e),
                        None => sink.sender_closed(&reg),
                    },
                    Some(Entry::Tx(w)) => {
                        if let Some(tx) = w.upgrade() {
                            tx.mark_closed(Error::Closed("receiver dropped"));
                        }
                    }
                    _ => {}
                }
                if empty {
                    self.maybe_autoclose();
                }
                Ok(())
            }
            Kind::Msg => self.dispatch_msg(frame, fds),
        }
    }

    fn dispatch_msg(self: &Arc<Self>, frame: Frame, fds: &mut VecDeque<OwnedFd>) -> Result<()> {
        self.msgs_in.fetch_add(1, Ordering::Relaxed);
        let nfds = usize::from(frame.nfds);
        if nfds > fds.len() {
            return Err(Error::Protocol(format!(
                "MSG on channel {} declares {nfds} fds but {} arrived",
                frame.chan,
                fds.len()
            )));
        }
        let msg_fds: Vec<OwnedFd> = fds.drain(..nfds).collect();
        let (payload, anns) = frame.msg_parts()?;
        // Declared before the table guard so that, on any early return, the
        // guard is released first: dropping announced handles locks again.
        let mut anns_in = Vec::with_capacity(anns.len());
        let mut t = self.table();
        for a in &anns {
            let problem = if a.id & 1 == self.parity || a.id <= 1 {
                Some(format!(
                    "peer announced channel {} from this side's id space",
                    a.id
                ))
            } else if t.entries.contains_key(&a.id) {
                Some(format!("peer announced channel {} twice", a.id))
            } else if a.window > self.cfg.max_window {
                Some(format!(
                    "channel {} announced with window {} > max_window {}",
                    a.id, a.window, self.cfg.max_window
                ))
            } else if t.entries.len() >= self.cfg.max_channels {
                Some(format!(
                    "peer exceeded the open-channel limit of {}",
                    self.cfg.max_channels
                ))
            } else {
                None
            };
            if let Some(p) = problem {
                drop(t);
                return Err(Error::Protocol(p));
            }
            t.peer_max = t.peer_max.max(a.id);
            match a.kind {
                AnnKind::Sender => {
                    let tx = RemoteTx::new(self.clone(), a.id, a.window);
                    t.entries.insert(a.id, Entry::Tx(Arc::downgrade(&tx)));
                    anns_in.push(AnnIn::Tx(tx));
                }
                AnnKind::Receiver => {
                    t.entries.insert(
                        a.id,
                        Entry::Pending(Pending {
                            reg: WireReg::new(self, a.id, a.window),
                            items: VecDeque::new(),
                            open: true,
                            err: None,
                        }),
                    );
                    anns_in.push(AnnIn::Rx(PendingRx {
                        conn: self.clone(),
                        id: a.id,
                        claimed: false,
                    }));
                }
            }
        }
        let chan = frame.chan;
        let raw = |reg: Arc<WireReg>, anns: Vec<AnnIn>| RawMsg {
            reg,
            conn: self.clone(),
            payload,
            anns,
            fds: msg_fds,
        };
        match t.entries.get_mut(&chan) {
            Some(Entry::Sink { sink, reg }) => {
                let (sink, reg) = (sink.clone(), reg.clone());
                drop(t);
                if !reg.arrived() {
                    return Err(Error::Protocol(format!(
                        "peer exceeded its credit on channel {chan}"
                    )));
                }
                if !sink.push_raw(raw(reg.clone(), anns_in)) {
                    // Receiver gone and the peer has not seen a CLOSE yet.
                    tracing::trace!(chan, "message for a dropped receiver discarded");
                    reg.close_from_receiver();
                }
                Ok(())
            }
            Some(Entry::Pending(p)) => {
                if !p.reg.arrived() {
                    drop(t);
                    return Err(Error::Protocol(format!(
                        "peer exceeded its credit on channel {chan}"
                    )));
                }
                let msg = raw(p.reg.clone(), anns_in);
                p.items.push_back(msg);
                Ok(())
            }
            Some(Entry::Tx(_)) => {
                drop(t);
                Err(Error::Protocol(format!(
                    "MSG on channel {chan}, on which this side is the sender"
                )))
            }
            None => {
                let known = self.known_closed(&t, chan);
                drop(t);
                // Drop the message (closing its fds and channels) unlocked.
                drop(raw(Arc::new(WireReg::detached(chan)), anns_in));
                if known {
                    Ok(())
                } else {
                    Err(Error::Protocol(format!("MSG on unknown channel id {chan}")))
                }
            }
        }
    }
}
