//! The rtnetlink socket: send requests, collect acks and dumps. Thin on purpose; every
//! message is built and parsed by the pure modules next to this one.

use std::time::Duration;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use socket2::SockRef;

use super::error::Error;
use super::nl::{
    self, Ack, MsgBuilder, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE,
    NLMSG_ERROR, NLMSG_NOOP, RawMsg,
};

/// Requests in flight per `sendmsg`: the acks of a larger batch could overflow the
/// socket's receive buffer (each costs an skb), which the kernel reports as ENOBUFS.
const BATCH: usize = 64;
/// Retries of a dump that the kernel marked inconsistent (the table changed under it).
const DUMP_RETRIES: usize = 5;
/// The kernel answers rtnetlink within microseconds; this only keeps a caller from
/// hanging forever if an answer is ever lost.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// One reply message, owned.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub msg_type: u16,
    pub payload: Vec<u8>,
}

/// An rtnetlink socket bound to the network namespace of the thread that opened it.
///
/// To work in another namespace, open it on a thread that has entered that namespace
/// (`setns`); the socket stays in that namespace wherever it is used afterwards.
#[derive(Debug)]
pub struct Netlink {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Opens a socket in the current thread's network namespace, with extended acks on
    /// so every refusal carries the kernel's own explanation.
    pub fn open() -> Result<Self, Error> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(Error::Socket)?;
        sock.bind_auto().map_err(Error::Socket)?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(Error::Socket)?;
        sock.set_ext_ack(true).map_err(Error::Socket)?;
        // Acks need not echo whole requests back.
        sock.set_cap_ack(true).map_err(Error::Socket)?;
        SockRef::from(&sock)
            .set_read_timeout(Some(RECV_TIMEOUT))
            .map_err(Error::Socket)?;
        Ok(Self {
            sock,
            seq: 1,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends one request with NLM_F_ACK and waits for its ack.
    pub(crate) fn request(&mut self, msg: &MsgBuilder, op: &str) -> Result<(), Error> {
        let mut results = self.batch(std::slice::from_ref(msg), &|_| op.to_string())?;
        results.pop().unwrap_or(Ok(()))
    }

    /// Sends many requests, [`BATCH`] per datagram, and returns one result per request in
    /// order. The outer error is for I/O failures that lose track of the whole batch.
    pub(crate) fn batch(
        &mut self,
        msgs: &[MsgBuilder],
        op: &dyn Fn(usize) -> String,
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let mut results: Vec<Result<(), Error>> = Vec::with_capacity(msgs.len());
        for (chunk_no, chunk) in msgs.chunks(BATCH).enumerate() {
            let base = chunk_no * BATCH;
            let first_seq = self.seq.wrapping_add(1);
            let mut datagram = Vec::new();
            for m in chunk {
                let seq = self.next_seq();
                datagram.extend_from_slice(&m.finish(seq));
            }
            // Every request of a batch carries REQUEST|ACK (set by the builders).
            self.send(&datagram, &op(base))?;
            let mut pending: Vec<Option<Result<(), Error>>> =
                (0..chunk.len()).map(|_| None).collect();
            let mut left = chunk.len();
            while left > 0 {
                self.recv(&op(base))?;
                let msgs = nl::split_messages(&self.buf)
                    .map_err(|detail| Error::malformed(op(base), detail))?;
                for m in msgs {
                    let Some(idx) = seq_index(first_seq, m.seq, chunk.len()) else {
                        continue; // a late reply to an earlier request
                    };
                    if m.msg_type != NLMSG_ERROR || pending[idx].is_some() {
                        continue;
                    }
                    let ack = nl::parse_error(m.payload, m.flags)
                        .map_err(|detail| Error::malformed(op(base + idx), detail))?;
                    pending[idx] = Some(ack_to_result(ack, &op(base + idx)));
                    left -= 1;
                }
            }
            results.extend(pending.into_iter().map(|r| r.unwrap_or(Ok(()))));
        }
        Ok(results)
    }

    /// Sends a request that answers with data (NLM_F_DUMP, or a GET of one object) and
    /// returns every reply message. Retries a dump the kernel marks inconsistent.
    pub(crate) fn dump(&mut self, msg: &MsgBuilder, op: &str) -> Result<Vec<Reply>, Error> {
        for _ in 0..DUMP_RETRIES {
            match self.dump_once(msg, op)? {
                Some(replies) => return Ok(replies),
                None => continue,
            }
        }
        Err(Error::DumpInterrupted { op: op.to_string() })
    }

    fn dump_once(&mut self, msg: &MsgBuilder, op: &str) -> Result<Option<Vec<Reply>>, Error> {
        let seq = self.next_seq();
        let bytes = msg.finish(seq);
        let is_dump = nl::read_u16(&bytes, 6).unwrap_or(0) & NLM_F_DUMP == NLM_F_DUMP;
        self.send(&bytes, op)?;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            self.recv(op)?;
            let msgs =
                nl::split_messages(&self.buf).map_err(|detail| Error::malformed(op, detail))?;
            for RawMsg {
                msg_type,
                flags,
                seq: s,
                payload,
            } in msgs
            {
                if s != seq {
                    continue;
                }
                if flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match msg_type {
                    NLMSG_NOOP => {}
                    NLMSG_DONE => {
                        let ack = nl::parse_done(payload, flags)
                            .map_err(|detail| Error::malformed(op, detail))?;
                        ack_to_result(ack, op)?;
                        return Ok(if interrupted { None } else { Some(out) });
                    }
                    NLMSG_ERROR => {
                        let ack = nl::parse_error(payload, flags)
                            .map_err(|detail| Error::malformed(op, detail))?;
                        ack_to_result(ack, op)?;
                        // A plain ack ends a non-dump GET sent with NLM_F_ACK.
                        return Ok(Some(out));
                    }
                    _ => {
                        out.push(Reply {
                            msg_type,
                            payload: payload.to_vec(),
                        });
                        // A GET of one object without NLM_F_ACK ends at its reply.
                        if !is_dump && nl::read_u16(&bytes, 6).unwrap_or(0) & NLM_F_ACK == 0 {
                            return Ok(Some(out));
                        }
                    }
                }
            }
        }
    }

    fn send(&mut self, bytes: &[u8], op: &str) -> Result<(), Error> {
        let n = self.sock.send(bytes, 0).map_err(|source| Error::Io {
            op: op.to_string(),
            source,
        })?;
        if n != bytes.len() {
            return Err(Error::Io {
                op: op.to_string(),
                source: std::io::Error::other(format!("sent {n} of {} bytes", bytes.len())),
            });
        }
        Ok(())
    }

    /// Receives one datagram into `self.buf`, growing it if the datagram is larger.
    fn recv(&mut self, op: &str) -> Result<(), Error> {
        let io = |source: std::io::Error| {
            let source = if matches!(
                source.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the kernel did not answer within {} s",
                        RECV_TIMEOUT.as_secs()
                    ),
                )
            } else {
                source
            };
            Error::Io {
                op: op.to_string(),
                source,
            }
        };
        self.buf.clear();
        let want = self
            .sock
            .recv(&mut self.buf, libc::MSG_PEEK | libc::MSG_TRUNC)
            .map_err(io)?;
        self.buf.clear();
        self.buf.reserve(want);
        let n = self.sock.recv(&mut self.buf, 0).map_err(io)?;
        self.buf.truncate(n);
        Ok(())
    }
}

fn seq_index(first: u32, seq: u32, len: usize) -> Option<usize> {
    let idx = seq.wrapping_sub(first) as usize;
    (idx < len).then_some(idx)
}

fn ack_to_result(ack: Ack, op: &str) -> Result<(), Error> {
    if ack.errno == 0 {
        return Ok(());
    }
    let mut message = ack.message;
    if message.is_none()
        && let Some(t) = ack.missing_attr
    {
        message = Some(format!("missing required attribute type {t}"));
    }
    Err(Error::Kernel {
        op: op.to_string(),
        errno: ack.errno,
        message,
    })
}

/// Flags for a request that changes something and wants its ack.
pub(crate) const REQ_ACK: u16 = NLM_F_REQUEST | NLM_F_ACK;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_index_handles_wraparound() {
        assert_eq!(seq_index(10, 10, 3), Some(0));
        assert_eq!(seq_index(10, 12, 3), Some(2));
        assert_eq!(seq_index(10, 13, 3), None);
        assert_eq!(seq_index(10, 9, 3), None);
        assert_eq!(seq_index(u32::MAX, 0, 3), Some(1));
    }
}
