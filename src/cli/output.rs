//! What the CLI prints: `✓` success lines on stdout, warnings and errors on stderr, colour
//! only on a terminal and never when `NO_COLOR` is set.

use std::io::IsTerminal;

fn colour(stream_is_tty: bool) -> bool {
    stream_is_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn paint(code: &str, text: &str, tty: bool) -> String {
    if colour(tty) {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

pub fn success(message: impl AsRef<str>) {
    let tick = paint("32", "✓", std::io::stdout().is_terminal());
    println!("{tick} {}", message.as_ref());
}

pub fn warn(message: impl AsRef<str>) {
    let label = paint("33", "warning:", std::io::stderr().is_terminal());
    eprintln!("{label} {}", message.as_ref());
}

pub fn error(err: &anyhow::Error) {
    let label = paint("31", "error:", std::io::stderr().is_terminal());
    eprintln!("{label} {}", shortened(&format!("{err:#}")));
}

/// Exits on a command-line error as clap does, but with any huge value it quotes cut short.
pub fn exit_on_usage_error(err: clap::Error) -> ! {
    let plain = err.render().to_string();
    if !err.use_stderr() || plain.lines().all(|l| l.chars().count() <= LONGEST_LINE) {
        err.exit()
    }
    eprintln!("{}", shortened(&plain));
    std::process::exit(err.exit_code())
}

/// Longer lines of an error are cut in the middle.
const LONGEST_LINE: usize = 600;

/// `message` with each line over [`LONGEST_LINE`] characters cut in its middle: a value of
/// tens of kilobytes quoted back would bury the advice after it.
fn shortened(message: &str) -> String {
    let keep = LONGEST_LINE / 2 - 20;
    let lines: Vec<String> = message
        .lines()
        .map(|line| {
            let count = line.chars().count();
            if count <= LONGEST_LINE {
                return line.to_owned();
            }
            let head: String = line.chars().take(keep).collect();
            let tail: String = line.chars().skip(count - keep).collect();
            format!("{head}…[{} characters]…{tail}", count - 2 * keep)
        })
        .collect();
    lines.join("\n")
}

/// Text from the server (an agent may have written it), safe for a terminal: control
/// characters other than line breaks become `?`, so no escape sequence reaches it, and so do
/// bidirectional controls and line separators, which would reorder or break what is shown.
pub fn terminal_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c != '\n' && crate::text::disturbs_display(c) {
            true => '?',
            false => c,
        })
        .collect()
}

/// Prints rows under upper-case headers, columns aligned with two spaces. Empty cells show
/// as `-` so columns stay parseable; a cell's line breaks become spaces and its other control
/// characters `?` (see [`terminal_safe`]).
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| terminal_safe(cell).replace('\n', " "))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            let width = if cell.is_empty() {
                1
            } else {
                cell.chars().count()
            };
            widths[i] = widths[i].max(width);
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let c = if c.is_empty() { "-" } else { c };
                if i == last {
                    c.to_owned()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", text.join("  "));
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints a secret value for piping: no trailing newline unless stdout is a terminal, so
/// `> file` stores exactly the value.
pub fn raw_value(value: &str) {
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = out.write_all(value.as_bytes());
    if out.is_terminal() {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_value_quoted_in_an_error_keeps_the_advice_after_it() {
        let message = format!(
            "\"{}\" is not a valid vault name; use lowercase letters\nsecond line",
            "x".repeat(70_000)
        );
        let short = shortened(&message);
        assert!(short.len() < LONGEST_LINE + 40, "{}", short.len());
        assert!(short.contains("…[69"), "{short}");
        assert!(
            short.ends_with("use lowercase letters\nsecond line"),
            "{short}"
        );
        assert_eq!(shortened("short\nlines"), "short\nlines");
    }

    #[test]
    fn server_text_cannot_send_escape_sequences() {
        assert_eq!(terminal_safe("a\u{1b}[2Jb\nc\rd"), "a?[2Jb\nc?d");
    }
}
