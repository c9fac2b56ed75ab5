//! Newline-delimited streamed bodies (an agent's stream), read one line at a time.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::ClientError;

/// A newline-delimited body, read one line at a time.
#[derive(Debug)]
pub struct LineStream {
    pub(crate) body: Incoming,
    pub(crate) buf: BytesMut,
    /// How much of `buf` is known to hold no newline.
    pub(crate) scanned: usize,
    pub(crate) url: String,
}

impl LineStream {
    /// The next line without its newline, or `None` when the server closed the stream.
    pub async fn next_line(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            // Only the bytes not yet searched: a long line arriving in many frames is
            // scanned once, not once per frame.
            if let Some(pos) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let pos = self.scanned + pos;
                self.scanned = 0;
                let line = self.buf.split_to(pos + 1).freeze();
                return Ok(Some(line.slice(..pos)));
            }
            self.scanned = self.buf.len();
            match self.body.frame().await {
                None => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    self.scanned = 0;
                    return Ok(Some(self.buf.split().freeze()));
                }
                Some(Err(e)) => {
                    return Err(ClientError::Http {
                        url: self.url.clone(),
                        message: e.to_string(),
                    });
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}
