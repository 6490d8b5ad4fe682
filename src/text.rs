//! Text that people read as identity or as instructions: characters that let it show as
//! something it is not. An address with a zero-width space prints like another person's; a
//! right-to-left override reorders what a reviewer sees ("Trojan Source").

/// Bidirectional controls: they reorder how the text around them is displayed.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that print as nothing (zero-width spaces and joiners, soft hyphens, variation
/// selectors, tag characters, fillers), bidirectional controls included.
pub fn is_invisible(c: char) -> bool {
    is_bidi_control(c)
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200D}'
                | '\u{2060}'..='\u{2065}'
                | '\u{206A}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// The scripts whose letters look alike (`а` is Cyrillic, `ο` Greek): text mixing two of them
/// is how a name is made to look like another.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LookalikeScript {
    Latin,
    Greek,
    Cyrillic,
}

fn lookalike_script(c: char) -> Option<LookalikeScript> {
    match c {
        'a'..='z' | 'A'..='Z' | '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}' => {
            Some(LookalikeScript::Latin)
        }
        '\u{0370}'..='\u{03FF}' | '\u{1F00}'..='\u{1FFF}' => Some(LookalikeScript::Greek),
        '\u{0400}'..='\u{052F}'
        | '\u{1C80}'..='\u{1C8F}'
        | '\u{2DE0}'..='\u{2DFF}'
        | '\u{A640}'..='\u{A69F}' => Some(LookalikeScript::Cyrillic),
        _ => None,
    }
}

/// Whether `text` has letters of more than one of Latin, Greek and Cyrillic.
pub fn mixes_lookalike_scripts(text: &str) -> bool {
    let mut scripts = text.chars().filter_map(lookalike_script);
    let Some(first) = scripts.next() else {
        return false;
    };
    scripts.any(|script| script != first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_reordering_characters_are_named() {
        for c in [
            '\u{200B}',
            '\u{202E}',
            '\u{2066}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{E0041}',
        ] {
            assert!(is_invisible(c), "{:04X}", c as u32);
        }
        assert!(is_bidi_control('\u{202E}') && !is_bidi_control('\u{200B}'));
        for c in ['a', 'é', 'ж', ' ', '-', '😀'] {
            assert!(!is_invisible(c), "{c}");
        }
    }

    #[test]
    fn lookalike_scripts_are_told_apart() {
        assert!(mixes_lookalike_scripts("\u{0430}lice@x.com"));
        assert!(mixes_lookalike_scripts("alice@\u{03BF}x.com"));
        assert!(!mixes_lookalike_scripts("josé@bücher.example"));
        assert!(!mixes_lookalike_scripts("иван@пример.рф"));
        assert!(!mixes_lookalike_scripts("用户@example.com"));
        assert!(!mixes_lookalike_scripts("1234@5678"));
    }
}
