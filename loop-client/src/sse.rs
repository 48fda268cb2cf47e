//! Server-sent event frames read from the bytes of a `text/event-stream` answer, as the WHATWG
//! HTML standard's "interpreting an event stream" reads them: lines end in CRLF, LF or CR; a
//! blank line dispatches the frame; `:` starts a comment; `data` lines join with `\n`; the last
//! `id` holds until another replaces it; a leading byte-order mark is dropped.
//!
//! Written here rather than taken from `eventsource-stream` (which this crate used before): that
//! parser starts over on a line that arrives in several reads, walks it a `char` at a time, and
//! copies what is left of its buffer after each line. A step's output comes as one JSON line of
//! about 64 KiB per frame, in several reads each, and the parser was the client's largest cost in
//! `loopd_load output` (6 % of the whole machine's samples, more than decoding the JSON). This
//! one remembers how far it has searched, finds line ends with `memchr` and
//! consumes the buffer once per read.

use std::time::Duration;

use futures_util::{Stream, StreamExt};

/// One dispatched frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    /// The `event:` field; `message` when the frame named none.
    pub event: String,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
    /// The last `id:` seen on the stream so far (it carries over frames that name none).
    pub id: String,
    /// A `retry:` the frame asked for.
    pub retry: Option<Duration>,
}

/// Reads frames out of bytes fed in pieces of any size.
#[derive(Debug, Default)]
pub struct Parser {
    buffer: Vec<u8>,
    /// Where the unread part of `buffer` starts.
    start: usize,
    /// How far past `start` a line end was already looked for, without one found.
    searched: usize,
    /// The byte-order mark is only looked for once, at the very start.
    started: bool,
    /// The last line ended in `\r`: a `\n` that comes next belongs to it.
    after_cr: bool,
    frame: Pending,
}

/// The frame being read, and the id that carries over.
#[derive(Debug, Default)]
struct Pending {
    event: String,
    data: String,
    has_data: bool,
    retry: Option<Duration>,
    last_id: String,
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Adds bytes read from the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame in what was fed, if there is one yet.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if !self.started {
                if self.buffer.len() - self.start < 3 && b"\xEF\xBB\xBF".starts_with(self.unread())
                {
                    return None;
                }
                self.started = true;
                if self.unread().starts_with(b"\xEF\xBB\xBF") {
                    self.start += 3;
                }
            }
            if self.after_cr && self.start < self.buffer.len() {
                if self.buffer[self.start] == b'\n' {
                    self.start += 1;
                }
                self.after_cr = false;
            }
            let unread = self.unread();
            let Some(end) = memchr::memchr2(b'\n', b'\r', &unread[self.searched..])
                .map(|at| at + self.searched)
            else {
                self.searched = unread.len();
                self.compact();
                return None;
            };
            self.after_cr = unread[end] == b'\r';
            let line_start = self.start;
            self.start += end + 1;
            self.searched = 0;
            let line = &self.buffer[line_start..line_start + end];
            if line.is_empty() {
                if let Some(frame) = self.frame.dispatch() {
                    return Some(frame);
                }
                continue;
            }
            self.frame.field(line);
        }
    }

    fn unread(&self) -> &[u8] {
        &self.buffer[self.start..]
    }

    /// Drops what was read once it is most of the buffer, so a long stream keeps one buffer
    /// about a frame long and every byte moves at most once or twice.
    fn compact(&mut self) {
        if self.start > 0 && self.start >= self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
    }
}

impl Pending {
    fn field(&mut self, line: &[u8]) {
        if line[0] == b':' {
            return;
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"event" => self.event = text(value),
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&text(value));
                self.has_data = true;
            }
            b"id" if !value.contains(&0) => self.last_id = text(value),
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry = std::str::from_utf8(value)
                    .ok()
                    .and_then(|digits| digits.parse().ok())
                    .map(Duration::from_millis);
            }
            _ => {}
        }
    }

    /// The frame a blank line ends; none when it had no data.
    fn dispatch(&mut self) -> Option<Frame> {
        let event = std::mem::take(&mut self.event);
        let retry = self.retry.take();
        if !std::mem::take(&mut self.has_data) {
            self.data.clear();
            return None;
        }
        Some(Frame {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
            retry,
        })
    }
}

/// Bytes as text, invalid UTF-8 replaced (the standard decodes the stream so).
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The frames of a stream of byte pieces; an error of the stream is passed on.
pub fn frames<S, B, E>(pieces: S) -> impl Stream<Item = Result<Frame, E>>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    futures_util::stream::unfold(
        (pieces, Parser::new(), false),
        |(mut pieces, mut parser, mut ended)| async move {
            loop {
                if let Some(frame) = parser.next_frame() {
                    return Some((Ok(frame), (pieces, parser, ended)));
                }
                if ended {
                    return None;
                }
                match pieces.next().await {
                    Some(Ok(bytes)) => parser.feed(bytes.as_ref()),
                    Some(Err(error)) => {
                        ended = true;
                        return Some((Err(error), (pieces, parser, ended)));
                    }
                    // A frame cut off by the end of the stream is not dispatched.
                    None => ended = true,
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::{Frame, Parser};
    use proptest::prelude::*;

    fn all(pieces: &[&[u8]]) -> Vec<Frame> {
        let mut parser = Parser::new();
        let mut frames = Vec::new();
        for piece in pieces {
            parser.feed(piece);
            while let Some(frame) = parser.next_frame() {
                frames.push(frame);
            }
        }
        frames
    }

    fn frame(event: &str, data: &str, id: &str) -> Frame {
        Frame {
            event: event.to_owned(),
            data: data.to_owned(),
            id: id.to_owned(),
            retry: None,
        }
    }

    #[test]
    fn the_standards_examples_read_as_it_says() {
        // Fields, comments, multi-line data, a field without a colon, a space kept after the
        // first one, an id that carries over.
        let stream = b": a comment\n\ndata: YHOO\ndata: +2\ndata: 10\n\nid: 7\nevent: add\ndata:x\n\ndata:  two spaces\n\ndata\n\n";
        assert_eq!(
            all(&[stream]),
            vec![
                frame("message", "YHOO\n+2\n10", ""),
                frame("add", "x", "7"),
                frame("message", " two spaces", "7"),
                frame("message", "", "7"),
            ]
        );
    }

    #[test]
    fn every_line_ending_and_a_byte_order_mark() {
        let frames = all(&[b"\xEF\xBB\xBFdata: a\r\n\r\ndata: b\r\rdata: c\n\n"]);
        assert_eq!(
            frames.iter().map(|f| f.data.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        // A CR at the end of one read and its LF at the start of the next are one line end.
        let frames = all(&[b"data: a\r", b"\n\r", b"\ndata: b\n\n"]);
        assert_eq!(
            frames.iter().map(|f| f.data.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn retry_ids_with_nul_and_frames_without_data() {
        let frames = all(&[b"id: 1\nretry: 250\ndata: a\n\nid: 2\x003\nevent: x\n\ndata: b\n\n"]);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].retry, Some(std::time::Duration::from_millis(250)));
        // The id with a NUL is ignored; the event of a frame without data is dropped with it.
        assert_eq!(frames[1], frame("message", "b", "1"));
    }

    #[test]
    fn a_frame_cut_off_by_the_end_is_not_dispatched() {
        let frames = all(&[b"data: a\n\ndata: b\n"]);
        assert_eq!(frames.len(), 1);
    }

    /// `bytes` cut at the given lengths, the rest as the last piece.
    fn cut<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        let mut rest = bytes;
        for &cut in cuts {
            let (piece, after) = rest.split_at(cut.min(rest.len()));
            pieces.push(piece);
            rest = after;
        }
        pieces.push(rest);
        pieces
    }

    fn encode(frames: &[(String, Vec<String>, Option<String>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (event, data, id) in frames {
            out.extend_from_slice(format!(": keep-alive\nevent: {event}\n").as_bytes());
            for line in data {
                out.extend_from_slice(format!("data: {line}\n").as_bytes());
            }
            if let Some(id) = id {
                out.extend_from_slice(format!("id: {id}\n").as_bytes());
            }
            out.extend_from_slice(b"\n");
        }
        out
    }

    proptest! {
        /// Frames written as a server writes them read back the same, however the bytes are
        /// cut into reads.
        #[test]
        fn frames_read_back_whatever_the_reads(
            written in proptest::collection::vec(
                ("[a-z]{1,8}", proptest::collection::vec("[^\r\n]{0,40}", 1..4), proptest::option::of("[0-9:]{1,10}")),
                0..8,
            ),
            cuts in proptest::collection::vec(0usize..64, 0..40),
        ) {
            let bytes = encode(&written);
            let read = all(&cut(&bytes, &cuts));
            let mut id = String::new();
            let expected: Vec<Frame> = written
                .iter()
                .map(|(event, data, new_id)| {
                    if let Some(new_id) = new_id {
                        id.clone_from(new_id);
                    }
                    frame(event, &data.join("\n"), &id)
                })
                .collect();
            prop_assert_eq!(read, expected);
        }

        /// Any bytes at all, in any pieces: no panic, and the same frames as one read gives.
        #[test]
        fn any_bytes_in_any_pieces_read_as_in_one(
            bytes in proptest::collection::vec(
                proptest::sample::select(b"data: \r\n:idevntry\xEF\xBB\xBF0x\x00".to_vec()), 0..200),
            cuts in proptest::collection::vec(0usize..16, 0..30),
        ) {
            let whole = all(&[&bytes]);
            prop_assert_eq!(all(&cut(&bytes, &cuts)), whole);
        }
    }
}
