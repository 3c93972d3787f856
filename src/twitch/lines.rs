//! Framing the chat connection's bytes into IRC lines, bounded, and never ending the stream
//! over one bad line.
//!
//! [`LineCodec`] splits on CR or LF (empty lines between a CR and its LF are skipped) with
//! at most `max_line_bytes` per line. A line that is too long, or that is not UTF-8, is a
//! [`Line::Skipped`] item, not an error: `FramedRead` ends its stream after any decoder
//! error, which the client would read as "server closed" and reconnect (rejoining every
//! channel); a server repeating the line would loop forever. The bytes of an over-long line
//! are discarded as they arrive, up to its end, so memory stays bounded by the limit
//! however long the line is, and it is reported once. Only I/O errors end the stream.

use bytes::BytesMut;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, Decoder};

/// One framed item of the chat connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line (never empty, without its CR/LF).
    Text(String),
    /// A line that was dropped; the reader counts it as malformed.
    Skipped(SkipReason),
}

/// Why a line was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Longer than `twitch.max_line_bytes` (its bytes are discarded up to its end).
    TooLong,
    /// Not valid UTF-8 (Twitch sends UTF-8 only: the line is corrupt).
    InvalidUtf8,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::TooLong => "too_long",
            SkipReason::InvalidUtf8 => "invalid_utf8",
        }
    }
}

/// The chat connection's line decoder (see the module docs).
#[derive(Debug)]
pub struct LineCodec {
    inner: AnyDelimiterCodec,
}

impl LineCodec {
    pub fn new(max_line_bytes: usize) -> LineCodec {
        LineCodec {
            inner: AnyDelimiterCodec::new_with_max_length(
                b"\r\n".to_vec(),
                Vec::new(),
                max_line_bytes,
            ),
        }
    }

    fn framed(
        &mut self,
        result: Result<Option<bytes::Bytes>, AnyDelimiterCodecError>,
    ) -> Result<Option<Line>, std::io::Error> {
        match result {
            Ok(Some(chunk)) => Ok(Some(match String::from_utf8(chunk.to_vec()) {
                Ok(text) => Line::Text(text),
                Err(_) => Line::Skipped(SkipReason::InvalidUtf8),
            })),
            Ok(None) => Ok(None),
            // The inner codec now discards up to the line's end, on later calls.
            Err(AnyDelimiterCodecError::MaxChunkLengthExceeded) => {
                Ok(Some(Line::Skipped(SkipReason::TooLong)))
            }
            Err(AnyDelimiterCodecError::Io(e)) => Err(e),
        }
    }
}

impl Decoder for LineCodec {
    type Item = Line;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, std::io::Error> {
        loop {
            let result = self.inner.decode(buf);
            match self.framed(result)? {
                Some(Line::Text(text)) if text.is_empty() => continue,
                other => return Ok(other),
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, std::io::Error> {
        loop {
            let result = self.inner.decode_eof(buf);
            match self.framed(result)? {
                Some(Line::Text(text)) if text.is_empty() => continue,
                other => return Ok(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut LineCodec, buf: &mut BytesMut) -> Vec<Line> {
        let mut out = Vec::new();
        while let Some(line) = codec.decode(buf).expect("no I/O error") {
            out.push(line);
        }
        out
    }

    #[test]
    fn lines_split_on_crlf_and_empty_ones_are_skipped() {
        let mut codec = LineCodec::new(64);
        let mut buf = BytesMut::from(&b"PING :a\r\n\r\nPING :b\nPART"[..]);
        assert_eq!(
            decode_all(&mut codec, &mut buf),
            vec![Line::Text("PING :a".into()), Line::Text("PING :b".into())]
        );
        assert_eq!(&buf[..], b"PART", "an unfinished line waits for its end");
    }

    #[test]
    fn an_over_long_line_is_reported_once_and_the_next_line_is_read() {
        let mut codec = LineCodec::new(16);
        let mut buf = BytesMut::from(&[b'x'; 40][..]);
        assert_eq!(
            decode_all(&mut codec, &mut buf),
            vec![Line::Skipped(SkipReason::TooLong)]
        );
        // More of the same line, in later reads: discarded, not reported again.
        buf.extend_from_slice(&[b'y'; 100]);
        assert_eq!(decode_all(&mut codec, &mut buf), vec![]);
        assert!(buf.len() <= 17, "discarded bytes are not kept");
        buf.extend_from_slice(b"zzz\r\nPING :ok\r\n");
        assert_eq!(
            decode_all(&mut codec, &mut buf),
            vec![Line::Text("PING :ok".into())]
        );
    }

    #[test]
    fn invalid_utf8_is_skipped_and_the_stream_goes_on() {
        let mut codec = LineCodec::new(64);
        let mut buf = BytesMut::from(&b"PRIVMSG #a :\xff\xfe\r\nPING :ok\r\n"[..]);
        assert_eq!(
            decode_all(&mut codec, &mut buf),
            vec![
                Line::Skipped(SkipReason::InvalidUtf8),
                Line::Text("PING :ok".into())
            ]
        );
    }

    #[test]
    fn the_last_line_without_an_end_is_read_at_eof() {
        let mut codec = LineCodec::new(64);
        let mut buf = BytesMut::from(&b"PING :last"[..]);
        assert_eq!(codec.decode(&mut buf).expect("ok"), None);
        assert_eq!(
            codec.decode_eof(&mut buf).expect("ok"),
            Some(Line::Text("PING :last".into()))
        );
        assert_eq!(codec.decode_eof(&mut buf).expect("ok"), None);
    }
}
