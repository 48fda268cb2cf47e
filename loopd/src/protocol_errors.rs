//! JSON bodies for the errors hyper answers by itself.
//!
//! A request hyper cannot parse (a header block over the limit, a URI too long, a malformed
//! header such as two different `Content-Length`s) never reaches a handler: hyper writes a bare
//! `400`, `414` or `431` head with an empty body and closes the connection. The API promises
//! `{"error","code"}` everywhere, so [`JsonErrors`] wraps a connection's socket and gives such an
//! automatic answer a JSON body on its way out.
//!
//! An automatic answer is recognised by its shape: a whole head (ending in the blank line) with
//! one of those statuses, `content-length: 0` and no `content-type`. Every answer of ours carries
//! a content type, so nothing the handlers write is ever touched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection's socket whose automatic error answers get a JSON body.
#[derive(Debug)]
pub struct JsonErrors<IO> {
    inner: IO,
    /// A rewritten answer still to be written, and how much of it is.
    pending: Vec<u8>,
    written: usize,
}

impl<IO> JsonErrors<IO> {
    pub fn new(inner: IO) -> JsonErrors<IO> {
        JsonErrors {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

/// Longer than any head hyper writes by itself (a status line, `content-length: 0`, a date).
const AUTOMATIC_HEAD_MAX: usize = 512;

/// The JSON answer that replaces `head`, when `head` is one of hyper's automatic ones.
pub fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    // Every write of every answer passes here, streams of agent output included: what cannot be
    // an automatic error head is let through on its first bytes and its length, unread.
    if head.len() > AUTOMATIC_HEAD_MAX || !head.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let (head, rest) = text.split_once("\r\n\r\n")?;
    if !rest.is_empty() {
        return None;
    }
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let (code, message) = match status {
        400 => ("bad_request", "the request could not be parsed as HTTP/1.1"),
        414 => ("uri_too_long", "the request's URI is too long"),
        431 => (
            "headers_too_large",
            "the request's header block is too large",
        ),
        _ => return None,
    };
    let mut empty = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-type")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            return None;
        }
        if name.eq_ignore_ascii_case("content-length") {
            empty = value.trim() == "0";
        }
    }
    if !empty {
        return None;
    }
    let body = serde_json::json!({"error": message, "code": code}).to_string();
    Some(
        format!(
            "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<IO: AsyncWrite + Unpin> JsonErrors<IO> {
    /// Writes what is left of a rewritten answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for JsonErrors<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for JsonErrors<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(answer) = rewrite(buf) {
            self.pending = answer;
            // The original bytes are taken in full; the answer goes out now or at the flush.
            if let Poll::Ready(Err(error)) = self.poll_pending(cx) {
                return Poll::Ready(Err(error));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn hypers_bare_errors_get_a_json_body() {
        for (status, code) in [
            ("400 Bad Request", "bad_request"),
            ("414 URI Too Long", "uri_too_long"),
            ("431 Request Header Fields Too Large", "headers_too_large"),
        ] {
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 17:00:00 GMT\r\n\r\n"
            );
            let answer = String::from_utf8(rewrite(head.as_bytes()).expect(status)).unwrap();
            let (head, body) = answer.split_once("\r\n\r\n").unwrap();
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{head}"
            );
            assert!(head.contains("content-type: application/json"), "{head}");
            assert!(
                head.contains(&format!("content-length: {}", body.len())),
                "{head}"
            );
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(json["code"], code);
        }
    }

    #[test]
    fn answers_of_our_own_are_left_alone() {
        for head in [
            // A JSON error of a handler.
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n",
            // Not an error.
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            // A head followed by body bytes.
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nx",
            // Not a whole head.
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            // A body of its own.
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 5\r\n\r\n",
        ] {
            assert_eq!(rewrite(head.as_bytes()), None, "{head:?}");
        }
        assert_eq!(rewrite(&[0xff, 0xfe]), None);
        // A long write is a body, whatever its first bytes say.
        let mut long = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n".to_vec();
        long.extend(std::iter::repeat_n(b'x', 1 << 20));
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(rewrite(&long), None);
    }

    proptest::proptest! {
        /// Any bytes at all: no panic, and only a whole short error head is ever replaced, by a
        /// head of the same status with a JSON body.
        #[test]
        fn only_a_whole_short_error_head_is_replaced(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            status in proptest::sample::select(vec!["400", "414", "431", "404", "500"]),
            header in "[a-zA-Z-]{1,16}: [ -~]{0,20}",
        ) {
            if let Some(answer) = rewrite(&bytes) {
                assert!(bytes.starts_with(b"HTTP/1.1 4") && bytes.ends_with(b"\r\n\r\n"));
                assert!(answer.starts_with(&bytes[..12]));
            }
            let head = format!("HTTP/1.1 {status} X\r\n{header}\r\ncontent-length: 0\r\n\r\n");
            let lower = header.to_ascii_lowercase();
            let replaced = ["400", "414", "431"].contains(&status)
                && !lower.starts_with("content-type:")
                && !lower.starts_with("transfer-encoding:");
            assert_eq!(rewrite(head.as_bytes()).is_some(), replaced, "{head:?}");
        }
    }
}
