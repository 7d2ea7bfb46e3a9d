//! User input quoted back in messages. A client can send megabytes where a symbol or a price is
//! expected; an error message names the problem with a short prefix of what was sent, never the
//! whole of it.

use std::borrow::Cow;

/// How many characters of an input an error message quotes at most.
pub const QUOTED_INPUT_CHARS: usize = 32;

/// `text` itself when it is short, else its first [`QUOTED_INPUT_CHARS`] characters followed by
/// `…` and how many characters there were.
pub fn abbreviate(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(QUOTED_INPUT_CHARS) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!(
            "{}… ({} characters)",
            &text[..end],
            text.chars().count()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_long_text_is_cut_on_a_character_boundary() {
        assert_eq!(abbreviate("005930"), "005930");
        let long = "삼".repeat(1000);
        let cut = abbreviate(&long);
        assert!(cut.starts_with(&"삼".repeat(QUOTED_INPUT_CHARS)));
        assert!(cut.ends_with("… (1000 characters)"), "{cut}");
    }
}
