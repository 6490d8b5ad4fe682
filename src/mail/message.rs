//! The emails the server sends, each written once as a list of blocks and rendered twice:
//! plain text and HTML alternatives of the same content.
//!
//! Stance: everything interpolated into HTML is escaped, and text that comes from an agent
//! (a proposal's messages) is quoted as the agent's words, never rendered as markup or put in
//! a subject line. A message body may hold a secret (a verification code, an invite token), so
//! bodies live in zeroizing strings and `Debug` shows only the kind and the recipient.

use std::fmt;

use lettre::Address;
use lettre::message::{Mailbox, MultiPart};
use zeroize::Zeroizing;

use super::MailError;
use crate::crypto::SecretString;

/// What a message is for; named in logs and in the delivery status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    VerificationCode,
    Invite,
    ProposalNotice,
    Test,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerificationCode => "verification code",
            Self::Invite => "invite",
            Self::ProposalNotice => "proposal notice",
            Self::Test => "test email",
        }
    }
}

/// A message ready to send: one recipient, a subject, text and HTML bodies.
pub struct Email {
    pub kind: Kind,
    pub to: Address,
    subject: String,
    text: Zeroizing<String>,
    html: Zeroizing<String>,
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("kind", &self.kind)
            .field("to", &self.to.to_string())
            .finish_non_exhaustive()
    }
}

impl Email {
    fn new(kind: Kind, to: &str, subject: String, blocks: &[Block]) -> Result<Self, MailError> {
        let to = parse_address(to)?;
        Ok(Self {
            kind,
            to,
            subject,
            text: Zeroizing::new(render_text(blocks)),
            html: Zeroizing::new(render_html(blocks)),
        })
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The MIME message, from `from`.
    pub(super) fn to_lettre(&self, from: &Mailbox) -> Result<lettre::Message, MailError> {
        lettre::Message::builder()
            .from(from.clone())
            .to(Mailbox::new(None, self.to.clone()))
            .subject(self.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                self.text.to_string(),
                self.html.to_string(),
            ))
            .map_err(|e| MailError::Build(e.to_string()))
    }

    #[cfg(test)]
    pub(super) fn bodies(&self) -> (&str, &str) {
        (&self.text, &self.html)
    }
}

/// Checks an address the way the SMTP library will use it.
pub fn parse_address(text: &str) -> Result<Address, MailError> {
    text.trim()
        .parse::<Address>()
        .map_err(|e| MailError::BadAddress {
            address: text.to_owned(),
            reason: e.to_string(),
        })
}

/// One piece of a message.
enum Block {
    /// A paragraph of our own words.
    Text(String),
    /// Something to copy exactly: a code, a command.
    Verbatim(String),
    /// A link to follow.
    Link(String),
    /// Words written by someone else (an agent), shown as a quotation.
    Quote { label: String, text: String },
    /// `label: a, b, c`.
    List { label: String, items: Vec<String> },
}

fn render_text(blocks: &[Block]) -> String {
    let mut out = String::new();
    for block in blocks {
        match block {
            Block::Text(text) => out.push_str(text),
            Block::Verbatim(text) => {
                out.push_str("    ");
                out.push_str(text);
            }
            Block::Link(url) => out.push_str(url),
            Block::Quote { label, text } => {
                out.push_str(label);
                out.push('\n');
                for line in text.lines() {
                    out.push_str("> ");
                    out.push_str(line);
                    out.push('\n');
                }
                out.pop();
            }
            Block::List { label, items } => {
                out.push_str(label);
                out.push_str(": ");
                out.push_str(&items.join(", "));
            }
        }
        out.push_str("\n\n");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn render_html(blocks: &[Block]) -> String {
    let mut out = String::from(
        "<!doctype html><html><body style=\"font-family:system-ui,sans-serif;max-width:36rem\">",
    );
    for block in blocks {
        match block {
            Block::Text(text) => out.push_str(&format!("<p>{}</p>", escape(text))),
            Block::Verbatim(text) => out.push_str(&format!(
                "<p><code style=\"font-size:1.2em;background:#eee;padding:.2em .4em\">{}</code></p>",
                escape(text)
            )),
            Block::Link(url) => out.push_str(&format!(
                "<p><a href=\"{0}\">{0}</a></p>",
                escape(url)
            )),
            Block::Quote { label, text } => out.push_str(&format!(
                "<p>{}</p><blockquote style=\"white-space:pre-wrap;border-left:3px solid #ccc;margin-left:0;padding-left:1em\">{}</blockquote>",
                escape(label),
                escape(text)
            )),
            Block::List { label, items } => {
                let items: Vec<String> = items
                    .iter()
                    .map(|i| format!("<code>{}</code>", escape(i)))
                    .collect();
                out.push_str(&format!(
                    "<p>{}: {}</p>",
                    escape(label),
                    items.join(", ")
                ));
            }
        }
    }
    out.push_str("</body></html>");
    out
}

/// The 6-digit code for an account registered after the owner.
pub fn verification_code(
    to: &str,
    code: &SecretString,
    base_url: &str,
    valid_hours: i64,
) -> Result<Email, MailError> {
    let email = to.trim();
    Email::new(
        Kind::VerificationCode,
        to,
        "Verify your Agent Vault account".into(),
        &[
            Block::Text(format!(
                "Your verification code for Agent Vault at {base_url} is:"
            )),
            Block::Verbatim(code.expose().to_owned()),
            Block::Text(format!(
                "It is valid for {valid_hours} hours. Finish signing up from a terminal:"
            )),
            Block::Verbatim(format!(
                "agent-vault auth verify --address {base_url} --email {email} --code {}",
                code.expose()
            )),
            Block::Text(
                "If you did not sign up, ignore this email: the account stays inactive.".into(),
            ),
        ],
    )
}

/// What an invite email says about the invite.
pub struct Invite<'a> {
    pub link: &'a str,
    pub inviter: &'a str,
    pub role: &'a str,
    /// `(vault, role)` pre-assignments.
    pub vaults: Vec<(String, String)>,
    pub expires_at: &'a str,
    pub base_url: &'a str,
}

/// `user invite`: the acceptance link.
pub fn invite(to: &str, invite: &Invite<'_>) -> Result<Email, MailError> {
    let mut blocks = vec![Block::Text(format!(
        "{} invited you to Agent Vault at {} as {}.",
        invite.inviter, invite.base_url, invite.role
    ))];
    if !invite.vaults.is_empty() {
        blocks.push(Block::List {
            label: "Vaults".into(),
            items: invite
                .vaults
                .iter()
                .map(|(vault, role)| format!("{vault} ({role})"))
                .collect(),
        });
    }
    blocks.extend([
        Block::Text("Accept the invite in your browser:".into()),
        Block::Link(invite.link.to_owned()),
        Block::Text("or from a terminal:".into()),
        Block::Verbatim(format!("agent-vault auth accept-invite {}", invite.link)),
        Block::Text(format!(
            "The invite expires {}. If you did not expect it, ignore this email.",
            invite.expires_at
        )),
    ]);
    Email::new(
        Kind::Invite,
        to,
        format!(
            "{} invited you to Agent Vault",
            one_line(invite.inviter, 80)
        ),
        &blocks,
    )
}

/// What a vault admin is told about a new proposal.
pub struct ProposalNotice<'a> {
    pub vault: &'a str,
    pub number: i64,
    /// Who filed it, in words ("agent \"ci\"", an email).
    pub proposer: &'a str,
    pub approval_url: &'a str,
    pub message: Option<&'a str>,
    pub user_message: Option<&'a str>,
    pub services: Vec<String>,
    pub credentials: Vec<String>,
    pub base_url: &'a str,
}

/// A new proposal, to one admin of its vault.
pub fn proposal_notice(to: &str, notice: &ProposalNotice<'_>) -> Result<Email, MailError> {
    let mut blocks = vec![Block::Text(format!(
        "{} filed proposal #{} in vault \"{}\" on Agent Vault at {}.",
        notice.proposer, notice.number, notice.vault, notice.base_url
    ))];
    if let Some(text) = notice.user_message {
        blocks.push(Block::Quote {
            label: "The agent's message to you:".into(),
            text: text.to_owned(),
        });
    }
    if let Some(text) = notice.message {
        blocks.push(Block::Quote {
            label: "The agent's note for the reviewer:".into(),
            text: text.to_owned(),
        });
    }
    if !notice.services.is_empty() {
        blocks.push(Block::List {
            label: "Services it asks for".into(),
            items: notice.services.clone(),
        });
    }
    if !notice.credentials.is_empty() {
        blocks.push(Block::List {
            label: "Credentials it asks you to supply".into(),
            items: notice.credentials.clone(),
        });
    }
    blocks.extend([
        Block::Text(
            "Review it in your browser (approving or rejecting asks for your email and password; the link works for 7 days):"
                .into(),
        ),
        Block::Link(notice.approval_url.to_owned()),
        Block::Text("or from a terminal:".into()),
        Block::Verbatim(format!(
            "agent-vault vault proposal review --vault {}",
            notice.vault
        )),
    ]);
    Email::new(
        Kind::ProposalNotice,
        to,
        format!(
            "Proposal #{} in vault {} needs your review",
            notice.number,
            one_line(notice.vault, 80)
        ),
        &blocks,
    )
}

/// `owner email test`.
pub fn test(to: &str, sender: &str, base_url: &str) -> Result<Email, MailError> {
    Email::new(
        Kind::Test,
        to,
        "Agent Vault test email".into(),
        &[
            Block::Text(format!(
                "This is a test email from Agent Vault at {base_url}, sent by {sender} with `agent-vault owner email test`."
            )),
            Block::Text(
                "It arrived, so the server's SMTP settings work: verification codes, invites and proposal notices will reach their recipients."
                    .into(),
            ),
        ],
    )
}

/// Text fit for a header: one line, at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut short: String = flat.chars().take(max).collect();
    if flat.chars().count() > max {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_and_agent_words_are_quoted() {
        let notice = ProposalNotice {
            vault: "team",
            number: 3,
            proposer: "agent \"ci\"",
            approval_url: "http://127.0.0.1:1/approve/team/3?token=av_appr_x&y=1",
            message: Some("short <b>note</b>"),
            user_message: Some("line one\n<script>alert(1)</script>"),
            services: vec!["api.stripe.com".into()],
            credentials: vec!["STRIPE_KEY".into()],
            base_url: "http://127.0.0.1:1",
        };
        let email = proposal_notice("admin@example.com", &notice).unwrap();
        let (text, html) = email.bodies();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("token=av_appr_x&amp;y=1"), "{html}");
        assert!(
            text.contains("> line one\n> <script>alert(1)</script>"),
            "{text}"
        );
        assert!(text.contains(notice.approval_url), "{text}");
        assert!(text.contains("STRIPE_KEY") && text.contains("api.stripe.com"));
        assert_eq!(
            email.subject(),
            "Proposal #3 in vault team needs your review"
        );
    }

    #[test]
    fn the_code_is_in_the_body_not_the_subject_or_debug() {
        let code = SecretString::new("493817".into());
        let email = verification_code("bob@example.com", &code, "https://v.example", 24).unwrap();
        let (text, html) = email.bodies();
        assert!(text.contains("    493817\n"), "{text}");
        assert!(html.contains("493817"));
        assert!(!email.subject().contains("493817"));
        assert!(!format!("{email:?}").contains("493817"));
    }

    #[test]
    fn bad_recipients_are_refused() {
        assert!(matches!(
            test("not an address", "o@example.com", "http://x"),
            Err(MailError::BadAddress { .. })
        ));
    }

    #[test]
    fn subjects_stay_on_one_line() {
        assert_eq!(one_line("a\r\nb", 10), "a  b");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }

    #[test]
    fn a_message_builds_as_mime_alternatives() {
        let email = invite(
            "carol@example.com",
            &Invite {
                link: "http://127.0.0.1:1/invite/av_uinv_abc",
                inviter: "owner@example.com",
                role: "member",
                vaults: vec![("default".into(), "admin".into())],
                expires_at: "2030-01-01T00:00:00Z",
                base_url: "http://127.0.0.1:1",
            },
        )
        .unwrap();
        let from: Mailbox = "Agent Vault <av@example.com>".parse().unwrap();
        let raw = String::from_utf8(email.to_lettre(&from).unwrap().formatted()).unwrap();
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(
            raw.contains("text/plain") && raw.contains("text/html"),
            "{raw}"
        );
        assert!(raw.contains("To: carol@example.com"), "{raw}");
    }
}
