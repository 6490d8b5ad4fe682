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
    eprintln!("{label} {err:#}");
}
