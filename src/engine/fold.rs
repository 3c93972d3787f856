//! Text folding for matching: what a moderator means by "the same word".
//!
//! [`fold`] lower-cases, decomposes (NFKD: full-width, math-bold and ligature letters become
//! plain ones), drops combining marks (accents and zalgo stacks), drops invisible characters
//! (zero-width joiners, the U+E0000 tag block chat clients append to dodge duplicate checks),
//! and maps common look-alike letters (Cyrillic, Greek) to their Latin twins. Banned phrases,
//! nukes and link detection all match on folded text, and their patterns are folded the same way.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Folds `text` for case-, accent-, zalgo- and look-alike-insensitive matching.
pub fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(text.len());
    let lowered = text.chars().map(confusable).flat_map(char::to_lowercase);
    for c in lowered.nfkd() {
        if is_combining_mark(c) || is_invisible(c) {
            continue;
        }
        out.extend(confusable(c).to_lowercase());
    }
    out
}

/// Number of combining marks in `text` (a zalgo stack is dozens on one letter).
pub fn combining_marks(text: &str) -> usize {
    text.chars().filter(|c| is_combining_mark(*c)).count()
}

/// Whether `c` is invisible: a Unicode default-ignorable code point (soft hyphen, combining
/// grapheme joiner, zero-width space/joiners, bidi marks and embeddings, word joiner and the
/// invisible operators, variation selectors, Hangul fillers, BOM, the U+E0000 tag block and
/// the rest of DerivedCoreProperties' `Default_Ignorable_Code_Point`), plus the interlinear
/// annotation controls. Chat clients render none of them, so folding drops them and
/// [`crate::engine::outgoing`] treats them as blank.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// The Latin letter a look-alike character imitates, or the character itself.
fn confusable(c: char) -> char {
    match c {
        'а' | 'А' | 'α' | 'Α' => 'a',
        'в' | 'В' | 'β' | 'Β' => 'b',
        'с' | 'С' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'Е' | 'ε' | 'Ε' | 'ё' => 'e',
        'һ' | 'Н' | 'Η' => 'h',
        'і' | 'І' | 'ι' | 'Ι' | 'ӏ' => 'i',
        'ј' | 'Ј' => 'j',
        'к' | 'К' | 'κ' | 'Κ' => 'k',
        'м' | 'М' | 'Μ' => 'm',
        'п' | 'η' | 'Ν' => 'n',
        'о' | 'О' | 'ο' | 'Ο' | 'σ' => 'o',
        'р' | 'Р' | 'ρ' | 'Ρ' => 'p',
        'ԛ' => 'q',
        'г' => 'r',
        'ѕ' | 'Ѕ' => 's',
        'т' | 'Т' | 'τ' | 'Τ' => 't',
        'υ' | 'ц' => 'u',
        'ν' | 'ѵ' => 'v',
        'ѡ' | 'ω' | 'ш' => 'w',
        'х' | 'Х' | 'χ' | 'Χ' => 'x',
        'у' | 'У' | 'γ' | 'Υ' => 'y',
        'Ζ' => 'z',
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_accents_zalgo_width_invisibles_and_lookalikes() {
        let table = [
            ("Hello", "hello"),
            ("Ćrème BRÛLÉE", "creme brulee"),
            ("h\u{0336}\u{0337}\u{0338}e\u{030A}\u{0301}\u{0302}y", "hey"),
            ("ＦＵＬＬ ｗｉｄｔｈ", "full width"),
            ("𝐛𝐨𝐥𝐝", "bold"),
            ("sp\u{200B}am\u{E0000}", "spam"),
            ("s\u{202E}p\u{2066}a\u{FE0F}m\u{3164}\u{E0101}", "spam"),
            ("раураl", "paypal"),
            ("ΡΑΥΡΑL", "paypal"),
            ("yоutubе․com", "youtube.com"),
        ];
        for (input, want) in table {
            assert_eq!(fold(input), want, "{input}");
        }
        assert_eq!(combining_marks("h\u{0336}\u{0337}i"), 2);
        assert_eq!(
            fold("İSTANBUL"),
            "istanbul",
            "lower-casing adds no combining mark"
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn fold_never_panics_and_lowercases_ascii(text in "\\PC{0,80}") {
            let folded = fold(&text);
            prop_assert_eq!(combining_marks(&folded), 0);
            if text.is_ascii() {
                prop_assert_eq!(folded, text.to_ascii_lowercase());
            }
        }
    }
}

/// Property code shared by the `fold` fuzz target and the suite's smoke test.
#[doc(hidden)]
pub mod fuzzing {
    use super::{combining_marks, fold};

    /// Folding never panics, and folds ASCII to its lower case.
    pub fn check(data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let folded = fold(&text);
        if text.is_ascii() {
            assert_eq!(folded, text.to_ascii_lowercase());
        }
        let _ = combining_marks(&text);
    }
}
