//! Bounded text: every message that a guest or a store can make long (a trap with a
//! backtrace from the module's own name section, a `task-error` string) is cut to a
//! size that a row, a log line and an answer can always hold.

/// Most bytes of an error message kept, the note about the cut included.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// `text` if it fits in `max` bytes; otherwise its longest prefix that ends on a char
/// boundary and leaves room for a note saying how many bytes were cut.
pub fn cap(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let note_room = 48.min(max);
    let mut end = max - note_room;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    let mut out = String::with_capacity(max);
    out.push_str(&text[..end]);
    let note = format!("… [{cut} bytes cut]");
    if out.len() + note.len() <= max {
        out.push_str(&note);
    }
    out
}

/// [`cap`] at [`MAX_MESSAGE_BYTES`].
pub fn cap_message(text: String) -> String {
    cap(text, MAX_MESSAGE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_as_it_is() {
        assert_eq!(cap_message("trap".into()), "trap");
        let exact = "a".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(cap_message(exact.clone()), exact);
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary_with_a_note() {
        // Three-byte chars, so most cut points fall inside one.
        let long = "€".repeat(100_000);
        let capped = cap_message(long.clone());
        assert!(capped.len() <= MAX_MESSAGE_BYTES, "{}", capped.len());
        assert!(capped.starts_with("€€€"));
        let kept = capped.find('…').unwrap();
        assert!(capped[..kept].chars().all(|c| c == '€'));
        assert!(
            capped.ends_with(&format!("[{} bytes cut]", long.len() - kept)),
            "{}",
            &capped[kept..]
        );
    }

    #[test]
    fn a_tiny_cap_still_holds() {
        assert!(cap("x".repeat(100), 10).len() <= 10);
        assert_eq!(cap("x".repeat(100), 0), "");
    }
}
