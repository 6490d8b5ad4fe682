//! Records encoded back to back in one buffer: how the data path hands them to the writer.
//! Each record's values are copied in on the worker that served the request, and nothing is
//! allocated per record, so handing thousands over costs one buffer swap rather than
//! thousands of allocations freed on another thread a gather later (that hand-over, not the
//! SQL, was most of the log's cost under load; docs/proxy.md).
//!
//! Layout per record: every field is a native-endian `usize` word — a number, or the length of
//! the text that follows it ([`ABSENT`] for a missing optional one). The buffer never leaves
//! the process, so its layout is free to change.

use super::Record;

/// The length word of an optional field that has no value.
const ABSENT: usize = usize::MAX;
const WORD: usize = size_of::<usize>();

#[derive(Debug, Default)]
pub struct Batch {
    bytes: Vec<u8>,
    records: usize,
}

/// One record read back from a [`Batch`], borrowing its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub vault_id: &'a str,
    pub actor_type: Option<&'a str>,
    pub actor_id: Option<&'a str>,
    pub ingress: &'a str,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub service: Option<&'a str>,
    /// The key names as the JSON array the column holds.
    pub credential_keys: &'a str,
    pub status: u16,
    pub duration_ms: i64,
    pub error_code: Option<&'a str>,
    pub created_at: i64,
}

impl Batch {
    pub fn push(&mut self, r: &Record) {
        self.text(&r.vault_id);
        self.optional(r.actor_type);
        self.optional(r.actor_id.as_deref());
        self.text(r.ingress);
        self.text(&r.method);
        self.text(&r.host);
        self.text(&r.path);
        self.optional(r.service.as_deref());
        self.keys_json(&r.credential_keys);
        self.word(usize::from(r.status));
        self.word(usize::try_from(r.duration_ms).unwrap_or(usize::MAX));
        self.bytes.extend_from_slice(&r.created_at.to_ne_bytes());
        self.optional(r.error_code);
        self.records += 1;
    }

    pub fn len(&self) -> usize {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Bytes held, for the writer's bound on memory.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// Empties the batch, keeping up to `keep_bytes` of its room for the next one.
    pub fn clear(&mut self, keep_bytes: usize) {
        self.bytes.clear();
        self.bytes.shrink_to(keep_bytes);
        self.records = 0;
    }

    pub fn entries(&self) -> Entries<'_> {
        Entries { rest: &self.bytes }
    }

    fn word(&mut self, word: usize) {
        self.bytes.extend_from_slice(&word.to_ne_bytes());
    }

    fn text(&mut self, text: &str) {
        self.word(text.len());
        self.bytes.extend_from_slice(text.as_bytes());
    }

    fn optional(&mut self, text: Option<&str>) {
        match text {
            Some(text) => self.text(text),
            None => self.word(ABSENT),
        }
    }

    /// Written in place: no string per record.
    fn keys_json(&mut self, keys: &[String]) {
        let at = self.bytes.len();
        self.word(0);
        if serde_json::to_writer(&mut self.bytes, keys).is_err() {
            self.bytes.truncate(at + WORD);
            self.bytes.extend_from_slice(b"[]");
        }
        let len = self.bytes.len() - at - WORD;
        if let Some(word) = self.bytes.get_mut(at..at + WORD) {
            word.copy_from_slice(&len.to_ne_bytes());
        }
    }
}

impl<'r> FromIterator<&'r Record> for Batch {
    fn from_iter<I: IntoIterator<Item = &'r Record>>(records: I) -> Self {
        let mut batch = Batch::default();
        records.into_iter().for_each(|r| batch.push(r));
        batch
    }
}

pub struct Entries<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        // In the order `Batch::push` wrote them. A batch only this module writes cannot be
        // malformed; were it, reading stops rather than panics.
        let entry = Entry {
            vault_id: self.text()?,
            actor_type: self.optional()?,
            actor_id: self.optional()?,
            ingress: self.text()?,
            method: self.text()?,
            host: self.text()?,
            path: self.text()?,
            service: self.optional()?,
            credential_keys: self.text()?,
            status: u16::try_from(self.word()?).ok()?,
            duration_ms: i64::try_from(self.word()?).unwrap_or(i64::MAX),
            created_at: i64::from_ne_bytes(self.take_word()?),
            error_code: self.optional()?,
        };
        Some(entry)
    }
}

impl<'a> Entries<'a> {
    fn take_word(&mut self) -> Option<[u8; WORD]> {
        let (word, rest) = self.rest.split_first_chunk::<WORD>()?;
        self.rest = rest;
        Some(*word)
    }

    fn word(&mut self) -> Option<usize> {
        self.take_word().map(usize::from_ne_bytes)
    }

    fn optional(&mut self) -> Option<Option<&'a str>> {
        let len = self.word()?;
        if len == ABSENT {
            return Some(None);
        }
        let (text, rest) = self.rest.split_at_checked(len)?;
        self.rest = rest;
        std::str::from_utf8(text).ok().map(Some)
    }

    fn text(&mut self) -> Option<&'a str> {
        self.optional().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::request_log::tests::record;

    #[test]
    fn records_read_back_as_they_were_pushed() {
        let mut plain = record("vault-a", 1_700_000_000);
        plain.actor_id = Some("agent \u{e9}".into());
        plain.credential_keys = vec!["A".to_owned(), "QUOTE\"D".to_owned()].into();
        let mut refused = record("vault-b", -5);
        refused.actor_type = None;
        refused.service = None;
        refused.credential_keys = Vec::new().into();
        refused.path = String::new();
        refused.status = 0;
        refused.duration_ms = u64::MAX;
        refused.error_code = Some("rate_limited");
        let batch: Batch = [&plain, &refused].into_iter().collect();
        assert_eq!(batch.len(), 2);

        let entries: Vec<Entry> = batch.entries().collect();
        assert_eq!(
            entries,
            [
                Entry {
                    vault_id: "vault-a",
                    actor_type: Some("scoped"),
                    actor_id: Some("agent \u{e9}"),
                    ingress: "mitm",
                    method: "GET",
                    host: "api.example.com",
                    path: "/v1",
                    service: Some("api.example.com"),
                    credential_keys: r#"["A","QUOTE\"D"]"#,
                    status: 200,
                    duration_ms: 3,
                    error_code: None,
                    created_at: 1_700_000_000,
                },
                Entry {
                    vault_id: "vault-b",
                    actor_type: None,
                    actor_id: None,
                    ingress: "mitm",
                    method: "GET",
                    host: "api.example.com",
                    path: "",
                    service: None,
                    credential_keys: "[]",
                    status: 0,
                    duration_ms: i64::MAX,
                    error_code: Some("rate_limited"),
                    created_at: -5,
                },
            ]
        );
    }

    #[test]
    fn a_cleared_batch_is_empty_and_reusable() {
        let mut batch: Batch = [&record("v", 1)].into_iter().collect();
        batch.clear(1 << 20);
        assert!(batch.is_empty() && batch.size() == 0 && batch.entries().next().is_none());
        batch.push(&record("w", 2));
        assert_eq!(
            batch.entries().map(|e| e.vault_id).collect::<Vec<_>>(),
            ["w"]
        );
    }
}
