//! Server-sent events read from a byte stream: `id:`, `event:` and `data:` fields, frames ended
//! by a blank line, comments (keep-alives) skipped.

use std::io::BufRead;

/// One SSE frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// The frames of a stream, in order.
pub struct Frames {
    reader: Box<dyn BufRead + Send>,
}

impl std::fmt::Debug for Frames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Frames")
    }
}

impl Frames {
    pub fn new(reader: impl BufRead + Send + 'static) -> Frames {
        Frames {
            reader: Box::new(reader),
        }
    }

    /// The next frame; `Ok(None)` when the stream ended cleanly, `Err` when it was cut off.
    pub fn next_frame(&mut self) -> std::io::Result<Option<Frame>> {
        let mut frame = Frame::default();
        let mut seen = false;
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                // A frame without its blank line was cut short: it is not delivered.
                return Ok(None);
            }
            let text = line.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                if seen {
                    return Ok(Some(frame));
                }
                continue;
            }
            if text.starts_with(':') {
                continue;
            }
            let (field, value) = match text.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (text, ""),
            };
            match field {
                "id" => frame.id = Some(value.to_owned()),
                "event" => frame.event = Some(value.to_owned()),
                "data" => {
                    if seen && !frame.data.is_empty() {
                        frame.data.push('\n');
                    }
                    frame.data.push_str(value);
                }
                _ => continue,
            }
            seen = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(text: &'static str) -> Vec<Frame> {
        let mut reader = Frames::new(text.as_bytes());
        let mut all = Vec::new();
        while let Some(frame) = reader.next_frame().expect("read") {
            all.push(frame);
        }
        all
    }

    #[test]
    fn reads_frames_and_skips_comments() {
        let got = frames(
            ": keep-alive\n\nid: 7\nevent: RUN_STARTED\ndata: {\"seq\":7}\n\n\
             event: output\nid: s:10\ndata: {\"a\":1}\ndata: {\"b\":2}\n\nid: 9\ndata: cut",
        );
        assert_eq!(
            got,
            vec![
                Frame {
                    id: Some("7".into()),
                    event: Some("RUN_STARTED".into()),
                    data: "{\"seq\":7}".into(),
                },
                Frame {
                    id: Some("s:10".into()),
                    event: Some("output".into()),
                    data: "{\"a\":1}\n{\"b\":2}".into(),
                },
            ]
        );
    }
}
