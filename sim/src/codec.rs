//! A forgiving line codec for client input.
//!
//! IRC lines end in CRLF but may arrive split over many reads (or several per read). Unlike
//! `LinesCodec`, a too-long line or invalid UTF-8 is not an error that ends the stream: it
//! becomes a [`ClientLine::Malformed`] item the connection counts and skips, so one bad client
//! line never takes the connection (or the sim) down. Buffered bytes are bounded by `max_len`.

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

/// One unit of client input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientLine {
    /// A complete line without its CR/LF.
    Text(String),
    /// A line that was too long or not UTF-8; what is left says why.
    Malformed(&'static str),
}

/// Splits client input into lines of at most `max_len` bytes.
#[derive(Debug)]
pub struct ClientLineCodec {
    max_len: usize,
    /// Dropping the rest of an overlong line until the next LF.
    discarding: bool,
}

impl ClientLineCodec {
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len,
            discarding: false,
        }
    }
}

impl Decoder for ClientLineCodec {
    type Item = ClientLine;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ClientLine>, std::io::Error> {
        loop {
            let newline = buf.iter().position(|b| *b == b'\n');
            match (newline, self.discarding) {
                (Some(at), true) => {
                    buf.advance(at + 1);
                    self.discarding = false;
                }
                (None, true) => {
                    buf.clear();
                    return Ok(None);
                }
                (Some(at), false) => {
                    let line = buf.split_to(at + 1);
                    return Ok(Some(line_from_bytes(&line[..at])));
                }
                (None, false) if buf.len() > self.max_len => {
                    buf.clear();
                    self.discarding = true;
                    return Ok(Some(ClientLine::Malformed("line too long")));
                }
                (None, false) => return Ok(None),
            }
        }
    }
}

/// Turns the bytes of one line (LF removed) into a [`ClientLine`].
fn line_from_bytes(bytes: &[u8]) -> ClientLine {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => ClientLine::Text(text.to_string()),
        Err(_) => ClientLine::Malformed("invalid utf-8"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut ClientLineCodec, chunks: &[&[u8]]) -> Vec<ClientLine> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(line) = codec.decode(&mut buf).expect("never errors") {
                out.push(line);
            }
        }
        out
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        let mut codec = ClientLineCodec::new(64);
        let lines = decode_all(
            &mut codec,
            &[b"PI", b"NG :a\r", b"\nNICK x\r\nJO", b"IN #c\n"],
        );
        assert_eq!(
            lines,
            vec![
                ClientLine::Text("PING :a".into()),
                ClientLine::Text("NICK x".into()),
                ClientLine::Text("JOIN #c".into()),
            ]
        );
    }

    #[test]
    fn overlong_and_invalid_lines_are_reported_and_skipped() {
        let mut codec = ClientLineCodec::new(8);
        let lines = decode_all(
            &mut codec,
            &[b"0123456789", b"abcdef\r\nok\r\n", b"\xff\xfe\r\nPING\r\n"],
        );
        assert_eq!(
            lines,
            vec![
                ClientLine::Malformed("line too long"),
                ClientLine::Text("ok".into()),
                ClientLine::Malformed("invalid utf-8"),
                ClientLine::Text("PING".into()),
            ]
        );
    }
}
