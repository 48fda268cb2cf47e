//! Aligned columns for people, with colour only on a terminal that wants it.

use std::io::IsTerminal;

use comfy_table::{Attribute, CellAlignment, Color, ContentArrangement};

use loop_core::RunStatus;
use loop_core::event::StepStatus;

/// A colour or weight for a piece of text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paint {
    Bold,
    Dim,
    Green,
    Red,
    Yellow,
    Cyan,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Bold => "1",
            Paint::Dim => "2",
            Paint::Green => "32",
            Paint::Red => "31",
            Paint::Yellow => "33",
            Paint::Cyan => "36",
        }
    }

    pub fn of_status(status: RunStatus) -> Paint {
        match status {
            RunStatus::Completed => Paint::Green,
            RunStatus::Failed => Paint::Red,
            RunStatus::Running => Paint::Cyan,
            RunStatus::Paused => Paint::Yellow,
            RunStatus::Pending | RunStatus::Canceled => Paint::Dim,
        }
    }

    pub fn of_step(status: StepStatus) -> Paint {
        match status {
            StepStatus::Succeeded => Paint::Green,
            StepStatus::Failed => Paint::Red,
            StepStatus::InProgress => Paint::Cyan,
            StepStatus::Interrupted => Paint::Yellow,
            StepStatus::Queued | StepStatus::Canceled => Paint::Dim,
        }
    }
}

/// Whether to colour: a terminal, and `NO_COLOR` unset (<https://no-color.org>).
#[derive(Clone, Copy, Debug)]
pub struct Colour(bool);

impl Colour {
    pub fn stdout() -> Colour {
        Colour(std::io::stdout().is_terminal() && Colour::wanted())
    }

    pub fn stderr() -> Colour {
        Colour(std::io::stderr().is_terminal() && Colour::wanted())
    }

    fn wanted() -> bool {
        std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    }

    pub fn paint(self, paint: Paint, text: &str) -> String {
        if self.0 && !text.is_empty() {
            format!("\x1b[{}m{text}\x1b[0m", paint.code())
        } else {
            text.to_owned()
        }
    }
}

/// One cell: its text and how to paint it.
#[derive(Clone, Debug)]
pub struct Cell {
    text: String,
    paint: Option<Paint>,
}

impl Cell {
    pub fn painted(text: impl Into<String>, paint: Paint) -> Cell {
        Cell {
            text: text.into(),
            paint: Some(paint),
        }
    }

    fn styled(&self) -> comfy_table::Cell {
        let cell = comfy_table::Cell::new(&self.text);
        match self.paint {
            None => cell,
            Some(Paint::Bold) => cell.add_attribute(Attribute::Bold),
            Some(Paint::Dim) => cell.add_attribute(Attribute::Dim),
            Some(Paint::Green) => cell.fg(Color::DarkGreen),
            Some(Paint::Red) => cell.fg(Color::DarkRed),
            Some(Paint::Yellow) => cell.fg(Color::DarkYellow),
            Some(Paint::Cyan) => cell.fg(Color::DarkCyan),
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell { text, paint: None }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_owned())
    }
}

/// Rows under a header, each column as wide as its widest cell, two spaces apart, no borders;
/// numbers to the right.
#[derive(Debug)]
pub struct Table {
    header: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// Columns named in `header`; a name starting with `>` is right-aligned (the `>` is dropped).
    pub fn new(header: &[&'static str]) -> Table {
        Table {
            right: header.iter().map(|h| h.starts_with('>')).collect(),
            header: header.iter().map(|h| h.trim_start_matches('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// The lines of the table, trailing spaces trimmed.
    pub fn lines(&self, colour: Colour) -> Vec<String> {
        let mut table = comfy_table::Table::new();
        table
            .load_preset(comfy_table::presets::NOTHING)
            // Never wrapped to the terminal's width: a long path stays one line to copy.
            .set_content_arrangement(ContentArrangement::Disabled);
        if colour.0 {
            table.enforce_styling();
        } else {
            table.force_no_tty();
        }
        table.set_header(
            self.header
                .iter()
                .map(|h| Cell::painted(*h, Paint::Bold).styled()),
        );
        for row in &self.rows {
            table.add_row(row.iter().take(self.header.len()).map(Cell::styled));
        }
        for (column, right) in table.column_iter_mut().zip(&self.right) {
            column.set_padding((0, 2));
            if *right {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        table
            .lines()
            .map(|line| line.trim_end().to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_numbers_go_right() {
        let mut table = Table::new(&["NAME", ">COST"]);
        table.row(vec!["a".into(), "$0.25".into()]);
        table.row(vec!["longer-name".into(), "$12.50".into()]);
        assert_eq!(
            table.lines(Colour(false)),
            vec![
                "NAME           COST",
                "a             $0.25",
                "longer-name  $12.50",
            ]
        );
    }

    #[test]
    fn colour_only_when_asked() {
        assert_eq!(Colour(false).paint(Paint::Red, "FAILED"), "FAILED");
        assert_eq!(
            Colour(true).paint(Paint::Red, "FAILED"),
            "\x1b[31mFAILED\x1b[0m"
        );
    }
}
