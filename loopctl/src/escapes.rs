//! Agent text made safe for a terminal: what an agent (or a tool it ran) prints reaches the
//! person's terminal through `tail`, `run --follow`, `exec` and `analyze`, and a terminal obeys
//! escape sequences in it. An agent could move the cursor over lines already shown, clear the
//! screen, retitle the window, write to the clipboard (OSC 52) or, on some terminals, have
//! text typed back as input, so what the person sees would not be what the log holds.
//!
//! [`Sanitizer`] removes every escape sequence (ESC and the C1 introducers: CSI, OSC, DCS, SOS,
//! PM, APC, with their parameters and strings) and every other control character but tab and
//! newline; a carriage return becomes a newline (`\r\n` one newline), so a line written over
//! another is shown as a line of its own. Text arrives in chunks that may split a sequence
//! anywhere, so the state is kept between chunks of one stream. A run's output is one stream
//! per step ([`ByStep`]): a sequence one step left unfinished must not swallow the start of the
//! next step's text, whatever order a live view receives the chunks and the step's end in.
//! `--raw` skips all this.

use loop_core::StepId;

/// The longest control string (OSC, DCS, …) dropped while waiting for its end: past it the
/// sequence is taken to be unterminated and the text after it is shown, not swallowed.
const MAX_STRING: usize = 4096;

const ESC: char = '\u{1b}';
const BEL: char = '\u{07}';

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Plain text.
    Ground,
    /// After a carriage return, already shown as a newline: a `\n` here is the same line end.
    AfterCr,
    /// After ESC.
    Escape,
    /// After ESC and intermediate bytes (`ESC ( B`): up to the final byte.
    Intermediate,
    /// Inside a control sequence (`ESC [` or CSI): parameters up to the final byte.
    Csi,
    /// Inside a control string (OSC, DCS, SOS, PM, APC): up to BEL or ST, of this many chars.
    String(usize),
    /// ESC inside a control string: `\` ends it (ST).
    StringEscape(usize),
}

/// Removes terminal escapes from a stream of text given in pieces (see the module's doc).
#[derive(Debug)]
pub struct Sanitizer {
    state: State,
}

impl Default for Sanitizer {
    fn default() -> Self {
        Sanitizer {
            state: State::Ground,
        }
    }
}

impl Sanitizer {
    /// The next piece of the stream, with what a terminal would act on removed.
    pub fn clean(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            self.state = self.step(c, &mut out);
        }
        out
    }

    fn step(&self, c: char, out: &mut String) -> State {
        match self.state {
            State::Ground | State::AfterCr => ground(c, self.state == State::AfterCr, out),
            State::Escape => match c {
                '[' => State::Csi,
                ']' | 'P' | 'X' | '^' | '_' => State::String(0),
                '\u{20}'..='\u{2f}' => State::Intermediate,
                // A two-character sequence (`ESC 7`, `ESC c`, …) ends with its second one.
                '\u{30}'..='\u{7e}' => State::Ground,
                // ESC ESC: the second one starts again.
                ESC => State::Escape,
                // Anything else ends the sequence and is taken as text.
                _ => ground(c, false, out),
            },
            State::Intermediate => match c {
                '\u{20}'..='\u{2f}' => State::Intermediate,
                '\u{30}'..='\u{7e}' => State::Ground,
                _ => ground(c, false, out),
            },
            State::Csi => match c {
                // Parameters and intermediates.
                '\u{20}'..='\u{3f}' => State::Csi,
                // The final byte.
                '\u{40}'..='\u{7e}' => State::Ground,
                // Controls inside a sequence are dropped with it.
                '\u{0}'..='\u{1a}' | '\u{1c}'..='\u{1f}' | '\u{7f}' => State::Csi,
                // Not part of any sequence: the sequence is over, the character is text.
                _ => ground(c, false, out),
            },
            State::String(length) | State::StringEscape(length) if length >= MAX_STRING => {
                ground(c, false, out)
            }
            State::String(length) => match c {
                BEL | '\u{9c}' => State::Ground,
                ESC => State::StringEscape(length + 1),
                _ => State::String(length + 1),
            },
            State::StringEscape(length) => match c {
                '\\' => State::Ground,
                ESC => State::StringEscape(length + 1),
                _ => State::String(length + 1),
            },
        }
    }
}

/// How many steps' streams [`ByStep`] keeps: the step under way and a few before it whose
/// last chunks may still be on their way.
const STEP_STREAMS: usize = 4;

/// A run's agent text, each step's output a stream of its own with its own [`Sanitizer`].
#[derive(Debug, Default)]
pub struct ByStep {
    /// The most recent step last.
    streams: Vec<(StepId, Sanitizer)>,
}

impl ByStep {
    /// The next piece of `step`'s output, cleaned in that step's stream.
    pub fn clean(&mut self, step: StepId, text: &str) -> String {
        let at = match self.streams.iter().position(|(id, _)| *id == step) {
            Some(at) => at,
            None => {
                if self.streams.len() >= STEP_STREAMS {
                    self.streams.remove(0);
                }
                self.streams.push((step, Sanitizer::default()));
                self.streams.len() - 1
            }
        };
        self.streams[at].1.clean(text)
    }

    /// `step`'s output is over: an unfinished sequence of it is dropped.
    pub fn end(&mut self, step: StepId) {
        self.streams.retain(|(id, _)| *id != step);
    }
}

/// A character of plain text: shown, dropped, or the start of a sequence.
fn ground(c: char, after_cr: bool, out: &mut String) -> State {
    match c {
        '\n' if after_cr => State::Ground,
        '\n' | '\t' => {
            out.push(c);
            State::Ground
        }
        '\r' => {
            out.push('\n');
            State::AfterCr
        }
        ESC => State::Escape,
        '\u{9b}' => State::Csi,
        '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => State::String(0),
        c if c.is_control() => State::Ground,
        c => {
            out.push(c);
            State::Ground
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn clean(text: &str) -> String {
        Sanitizer::default().clean(text)
    }

    #[test]
    fn escapes_and_controls_are_removed_and_text_is_kept() {
        let cases = [
            ("plain text\n", "plain text\n"),
            (
                "\u{1b}[31mred\u{1b}[0m and \u{1b}[1;32mgreen\u{1b}[m",
                "red and green",
            ),
            // Cursor up and erase line: a shown line cannot be overwritten.
            ("ok\n\u{1b}[1A\u{1b}[2Kfake", "ok\nfake"),
            // A window title, by BEL and by ST.
            ("\u{1b}]0;pwned\u{7}after", "after"),
            ("\u{1b}]2;pwned\u{1b}\\after", "after"),
            // The clipboard (OSC 52).
            ("a\u{1b}]52;c;cm0gLXJmIH4=\u{7}b", "ab"),
            // A hyperlink keeps its text, not its target.
            (
                "\u{1b}]8;;http://evil\u{1b}\\link\u{1b}]8;;\u{1b}\\",
                "link",
            ),
            // DCS, charset selection, a two-character sequence, full reset.
            ("\u{1b}Pq#0;2;0;0;0\u{1b}\\x", "x"),
            ("\u{1b}(Bx\u{1b}7y\u{1b}cz", "xyz"),
            // C1 introducers as characters.
            ("\u{9b}31mred\u{9d}0;t\u{9c}!", "red!"),
            // Carriage returns: a progress bar's updates each on a line; CRLF one line end.
            ("10%\r50%\r100%\r\n", "10%\n50%\n100%\n"),
            ("a\r\nb\r\n", "a\nb\n"),
            // Backspace, bell, DEL and other C0 controls.
            ("ab\u{8}\u{8}cd\u{7}\u{7f}\u{0}e\tf", "abcde\tf"),
            // Not ASCII, kept whole.
            ("naïve — 日本 ✓", "naïve — 日本 ✓"),
            // Not a sequence: the character after a lone ESC is text again.
            ("\u{1b}é", "é"),
        ];
        for (input, expected) in cases {
            assert_eq!(clean(input), expected, "{input:?}");
        }
    }

    #[test]
    fn an_unterminated_control_string_does_not_swallow_the_rest() {
        let text = format!("\u{1b}]0;{}shown", "x".repeat(MAX_STRING));
        assert!(clean(&text).ends_with("shown"), "{:?}", clean(&text));
    }

    #[test]
    fn a_sequence_split_between_pieces_is_still_removed() {
        let mut sanitizer = Sanitizer::default();
        assert_eq!(sanitizer.clean("a\u{1b}"), "a");
        assert_eq!(sanitizer.clean("[3"), "");
        assert_eq!(sanitizer.clean("1mb\r"), "b\n");
        assert_eq!(sanitizer.clean("\nc\u{1b}]0;"), "c");
        assert_eq!(sanitizer.clean("title\u{7}d"), "d");
    }

    fn step(n: u8) -> StepId {
        StepId::from_parts(u64::from(n), [n; 10])
    }

    /// `loopctl exec` kept one state for the whole run: a window title an agent left
    /// unfinished at the end of one step's output swallowed the next step's text, up to 4 KiB of
    /// it, when the next step's output reached the view before the first step's end did.
    #[test]
    fn a_sequence_one_step_leaves_unfinished_does_not_swallow_the_next_step_s_text() {
        let mut text = ByStep::default();
        assert_eq!(text.clean(step(1), "done\u{1b}]0;tit"), "done");
        assert_eq!(text.clean(step(2), "second step\n"), "second step\n");
        // The first step's late pieces go on in its own stream.
        assert_eq!(text.clean(step(1), "le\u{7}after\n"), "after\n");
        assert_eq!(text.clean(step(2), "\u{1b}[3"), "");
        text.end(step(2));
        assert_eq!(text.clean(step(2), "1mshown"), "1mshown");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the agent prints, nothing a terminal acts on is left but tab and newline.
        #[test]
        fn nothing_but_tab_and_newline_controls_survive(text in "(?s).{0,200}|[\u{0}-\u{3f}\u{1b}\u{9b}\u{9c}\u{9d}\\[\\]a-z;]{0,200}") {
            let cleaned = clean(&text);
            prop_assert!(
                cleaned.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'),
                "{cleaned:?}"
            );
        }

        /// Text without control characters passes as it is.
        #[test]
        fn plain_text_is_unchanged(text in "[^\u{0}-\u{1f}\u{7f}-\u{9f}]{0,200}") {
            prop_assert_eq!(clean(&text), text);
        }

        /// Whatever one step printed, and however it stopped, the next step's plain text is
        /// shown whole; and each step's pieces show what its output shows as one stream.
        #[test]
        fn each_step_is_a_stream_of_its_own(
            first in "[\u{0}-\u{3f}\u{1b}\u{9b}\u{9d}\\[\\]\\\\a-z;]{0,80}",
            second in "[^\u{0}-\u{1f}\u{7f}-\u{9f}]{0,80}",
            cut in 0usize..80,
        ) {
            let mut text = ByStep::default();
            let chars: Vec<char> = first.chars().collect();
            let cut = cut.min(chars.len());
            let (head, tail): (String, String) =
                (chars[..cut].iter().collect(), chars[cut..].iter().collect());
            let mut shown = text.clean(step(1), &head);
            prop_assert_eq!(text.clean(step(2), &second), second);
            shown.push_str(&text.clean(step(1), &tail));
            prop_assert_eq!(shown, clean(&first));
        }

        /// Where the stream is cut into pieces does not change what is shown.
        #[test]
        fn pieces_show_what_the_whole_shows(
            text in "[\u{0}-\u{3f}\u{1b}\u{9b}\u{9d}\\[\\]\\\\a-z;é\r\n]{0,120}",
            cuts in proptest::collection::vec(0usize..120, 0..6),
        ) {
            let chars: Vec<char> = text.chars().collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut.min(chars.len())).collect();
            cuts.sort_unstable();
            let mut sanitizer = Sanitizer::default();
            let mut shown = String::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([chars.len()]) {
                let piece: String = chars[from..cut].iter().collect();
                shown.push_str(&sanitizer.clean(&piece));
                from = cut;
            }
            prop_assert_eq!(shown, clean(&text));
        }
    }
}
