//! Text that people read as identity or as instructions: characters that let it show as
//! something it is not. An address with a zero-width space, or a Cyrillic `а`, prints like
//! another person's; a right-to-left override reorders what a reviewer sees ("Trojan Source").

use unicode_security::{RestrictionLevel, RestrictionLevelDetection};

/// Bidirectional controls: they reorder how the text around them is displayed (with the
/// deprecated format characters beside them, U+206A–U+206F, which shape it).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{206F}')
}

/// Whether a character in text an agent chose would change how what is around it displays
/// (reordering, or a line break where none shows): a control, a bidirectional control, or a
/// line or paragraph separator.
pub fn disturbs_display(c: char) -> bool {
    c.is_control() || is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `text` with every character that [`disturbs_display`] as `?`: for agent-chosen text shown
/// in a row (a request's path in the log).
pub fn for_display(text: &str) -> std::borrow::Cow<'_, str> {
    match text.chars().any(disturbs_display) {
        false => std::borrow::Cow::Borrowed(text),
        true => text
            .chars()
            .map(|c| if disturbs_display(c) { '?' } else { c })
            .collect::<String>()
            .into(),
    }
}

/// Whether agent-written text (a description, a message, a name) holds a character that
/// would let it display otherwise than it reads: a control or a bidirectional control.
/// Line breaks and tabs are allowed where `multiline`.
pub fn misleads_display(text: &str, multiline: bool) -> bool {
    text.chars()
        .any(|c| (c.is_control() && !(multiline && matches!(c, '\n' | '\t'))) || is_bidi_control(c))
}

/// Whether an address could print like another: a character outside Unicode's profile for
/// identifiers (UTS #39: invisible and format characters, blanks, compatibility forms such as
/// `𝐚` or `ⅼ`), or letters of scripts mixed beyond "highly restrictive" (Latin with Cyrillic,
/// Greek or Armenian letters; Latin with Han, Kana or Hangul is ordinary and allowed). ASCII
/// punctuation (`@ . + - _ '`) is set aside first, as the profile does not cover it.
pub fn is_spoofable_address(address: &str) -> bool {
    if address.is_ascii() {
        return false;
    }
    let letters: String = address
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    if letters.as_str().detect_restriction_level() > RestrictionLevel::HighlyRestrictive {
        return true;
    }
    // Within one script: an address whose confusable skeleton (UTS #39, decomposed) is plain
    // ASCII only imitates one (`alıce`, `o’brien`, `first‐last`); and marks that add nothing
    // visible, a dot on a letter that has one or a mark repeated (`ali̇ce`), hide the same way.
    let skeleton: Vec<char> = unicode_security::skeleton(address).collect();
    skeleton.iter().all(char::is_ascii)
        || skeleton.windows(2).any(|pair| {
            let [before, mark] = [pair[0], pair[1]];
            is_combining_mark(mark)
                && (before == mark || (mark == '\u{0307}' && matches!(before, 'i' | 'j' | 'l')))
        })
}

/// The common blocks of combining marks (diacritics placed on the letter before them).
fn is_combining_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reordering_and_control_characters_mislead() {
        // A lone carriage return lets later text overwrite earlier text on a terminal.
        for text in [
            "a\u{202E}b",
            "a\u{2066}b",
            "a\u{200E}b",
            "a\u{1b}[2Jb",
            "evil\rsafe",
        ] {
            assert!(misleads_display(text, true), "{text:?}");
        }
        assert!(misleads_display("two\nlines", false));
        for text in ["two\nlines\ttabbed", "emoji 👩‍💻 joined", "ünïcödé"] {
            assert!(!misleads_display(text, true), "{text:?}");
        }
    }

    #[test]
    fn text_shown_in_a_row_keeps_its_order_and_line() {
        assert_eq!(for_display("/v1/files"), "/v1/files");
        assert_eq!(
            for_display("/a\u{202E}txt.exe\u{2066}/b\u{2028}c\u{1b}[2K"),
            "/a?txt.exe?/b?c?[2K"
        );
    }

    #[test]
    fn addresses_that_print_like_others_are_told_apart() {
        for spoof in [
            "\u{0430}lice@x.com",      // Cyrillic а
            "alice@\u{03BF}x.com",     // Greek ο
            "b\u{0585}b@x.com",        // Armenian օ
            "a\u{217C}ice@x.com",      // Roman numeral ⅼ
            "\u{1D41A}lice@x.com",     // mathematical bold 𝐚
            "alic\u{212F}@x.com",      // script ℯ
            "alice\u{200B}@x.com",     // zero-width space
            "alice\u{2800}@x.com",     // Braille blank
            "alice\u{FFF9}@x.com",     // interlinear annotation anchor
            "alice@x.com\u{202E}",     // right-to-left override
            "\u{13AA}lice@x.com",      // Cherokee Ꭺ
            "al\u{0131}ce@x.com",      // dotless ı
            "al\u{0269}ce@x.com",      // Latin iota ɩ
            "o\u{2019}brien@x.com",    // right single quote
            "first\u{2010}last@x.com", // hyphen
            "ali\u{0307}ce@x.com",     // i with a second dot
            "a\u{0300}\u{0300}@x.com", // a mark repeated
        ] {
            assert!(is_spoofable_address(spoof), "{spoof:?}");
        }
        for fine in [
            "first.last+tag@example.com",
            "o'brien@mail-1.example.org",
            "josé@bücher.example",
            "иван@пример.рф",
            "用户@example.com",
            "müller@x.de",
            "a\u{0300}@x.com",
        ] {
            assert!(!is_spoofable_address(fine), "{fine:?}");
        }
    }
}
