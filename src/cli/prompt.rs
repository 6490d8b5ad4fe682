//! Terminal prompts and stdin input. Hidden input for secrets; plain lines otherwise.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use zeroize::Zeroizing;

use crate::api::validate_password;
use crate::crypto::SecretString;

pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

/// Reads one line of stdin (without its line ending) as a secret.
pub fn stdin_secret_line(what: &str) -> anyhow::Result<SecretString> {
    let mut line = Zeroizing::new(String::new());
    let read = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what} from stdin"))?;
    if read == 0 {
        bail!("stdin ended before the {what} was given; pipe it in, one per line");
    }
    Ok(SecretString::new(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

/// Prompts for a secret on the terminal, without echo.
pub fn hidden(prompt: &str) -> anyhow::Result<SecretString> {
    rpassword::prompt_password(prompt)
        .map(SecretString::new)
        .context("cannot read from the terminal")
}

/// Prompts twice for a new password and checks the length rule.
pub fn new_password(label: &str) -> anyhow::Result<SecretString> {
    let first = hidden(&format!("{label}: "))?;
    validate_password(first.expose()).map_err(anyhow::Error::msg)?;
    let again = hidden(&format!("Confirm {}: ", label.to_lowercase()))?;
    if again != first {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

/// Prompts for a visible line on the terminal (prompt on stderr).
pub fn line(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read from the terminal")?;
    Ok(line.trim().to_owned())
}
