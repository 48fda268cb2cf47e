//! The page's own `text/event-stream` reader (`ui/sse.js`), run in the browser against
//! generated streams cut at random places: every frame comes out whole, once, in order, however
//! the network splits the bytes.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use super::browser::{Browser, needs_browser};
use crate::support::start_daemon;

/// A frame as the page should see it, and how it is written on the wire.
#[derive(Clone, Debug)]
struct Frame {
    id: Option<String>,
    event: Option<String>,
    data: Vec<String>,
    /// `data:x` rather than `data: x` (both are the same field).
    tight: bool,
    crlf: bool,
    comment: bool,
}

impl Frame {
    fn wire(&self) -> String {
        let end = if self.crlf { "\r\n" } else { "\n" };
        let mut text = String::new();
        if self.comment {
            text.push_str(&format!(": keep-alive{end}"));
        }
        if let Some(id) = &self.id {
            text.push_str(&format!("id: {id}{end}"));
        }
        if let Some(event) = &self.event {
            text.push_str(&format!("event: {event}{end}"));
        }
        for line in &self.data {
            let gap = if self.tight && !line.starts_with(' ') {
                ""
            } else {
                " "
            };
            text.push_str(&format!("data:{gap}{line}{end}"));
        }
        text.push_str(end);
        text
    }

    fn seen(&self) -> Value {
        json!({
            "id": self.id,
            "event": self.event.as_deref().unwrap_or("message"),
            "data": self.data.join("\n"),
        })
    }
}

fn frame() -> impl Strategy<Value = Frame> {
    let text = "[a-z0-9:{}\" é→]{0,12}";
    (
        proptest::option::of("[0-9a-f-]{1,8}(:[0-9]{1,4})?"),
        proptest::option::of("[A-Z_]{1,10}"),
        vec(text, 1..4),
        any::<(bool, bool, bool)>(),
    )
        .prop_map(|(id, event, data, (tight, crlf, comment))| Frame {
            id,
            event,
            data,
            tight,
            crlf,
            comment,
        })
}

#[test]
fn the_page_s_stream_reader_keeps_every_frame_whole_however_the_bytes_are_cut() {
    if !needs_browser("the_page_s_stream_reader_keeps_every_frame_whole_however_the_bytes_are_cut")
    {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let browser = Browser::start();
    browser.goto(&daemon.url("/login"));
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let cases = (vec(frame(), 0..6), vec(any::<prop::sample::Index>(), 0..16));
    runner
        .run(&cases, |(frames, cuts)| {
            let text: String = frames.iter().map(Frame::wire).collect();
            let chars: Vec<char> = text.chars().collect();
            let mut at: Vec<usize> = cuts.iter().map(|cut| cut.index(chars.len() + 1)).collect();
            at.sort_unstable();
            at.dedup();
            let mut pieces = Vec::new();
            let mut from = 0;
            for to in at.into_iter().chain([chars.len()]) {
                pieces.push(chars[from..to].iter().collect::<String>());
                from = to;
            }
            let script = format!(
                "const {{ EventStreamParser }} = await import('/ui/sse.js');
                 const frames = [];
                 const parser = new EventStreamParser((frame) => frames.push(frame));
                 for (const piece of {}) parser.push(piece);
                 return frames;",
                json!(pieces)
            );
            let seen = browser.js(&script);
            let wanted: Vec<Value> = frames.iter().map(Frame::seen).collect();
            prop_assert_eq!(seen, json!(wanted), "pieces: {:?}", pieces);
            Ok(())
        })
        .expect("every frame whole, once, in order");
}
