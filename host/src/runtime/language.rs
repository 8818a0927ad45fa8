//! Which language a component's task is written in, read from its custom sections: an
//! interpreter spends far more fuel per line than compiled code, so a Python or
//! JavaScript task gets a larger maximum and default fuel (`Runtime::max_limits_for`).

/// The custom section a guest SDK's build appends to name the task's language:
/// `python` or `javascript`.
pub const LANGUAGE_SECTION: &str = "wasmq-task-language";

/// How a task's code runs inside its component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Compiled to Wasm (Rust, C, Go…), or not recognised.
    Compiled,
    /// CPython, built by componentize-py.
    Python,
    /// StarlingMonkey, built by ComponentizeJS.
    JavaScript,
}

impl Language {
    /// Reads the component's sections, its nested modules' too: the section
    /// [`LANGUAGE_SECTION`] that `wasmq-task build` (Python) appends, or a `producers`
    /// section whose `processed-by` names componentize-py or ComponentizeJS (which
    /// records itself). Anything else, unparseable bytes included, is `Compiled`.
    pub fn of(bytes: &[u8]) -> Language {
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            let Ok(wasmparser::Payload::CustomSection(section)) = payload else {
                if payload.is_err() {
                    break;
                }
                continue;
            };
            if section.name() == LANGUAGE_SECTION {
                match section.data() {
                    b"python" => return Language::Python,
                    b"javascript" => return Language::JavaScript,
                    _ => continue,
                }
            }
            let wasmparser::KnownCustom::Producers(reader) = section.as_known() else {
                continue;
            };
            for field in reader.into_iter().flatten() {
                if field.name != "processed-by" {
                    continue;
                }
                for value in field.values.into_iter().flatten() {
                    match value.name {
                        "componentize-py" => return Language::Python,
                        "ComponentizeJS" | "componentize-js" => return Language::JavaScript,
                        _ => {}
                    }
                }
            }
        }
        Language::Compiled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(wat: &str) -> Language {
        Language::of(&wat::parse_str(wat).unwrap())
    }

    #[test]
    fn the_sdk_section_and_the_builders_name_the_language() {
        assert_eq!(
            of(r#"(module (@custom "wasmq-task-language" "python"))"#),
            Language::Python
        );
        assert_eq!(
            of(r#"(module (@producers (processed-by "ComponentizeJS" "0.23.0")))"#),
            Language::JavaScript
        );
        assert_eq!(
            of(
                r#"(component (core module (@producers (processed-by "componentize-py" "0.25.1"))))"#
            ),
            Language::Python
        );
    }

    #[test]
    fn anything_else_is_compiled() {
        assert_eq!(of("(module)"), Language::Compiled);
        assert_eq!(
            of(r#"(module (@producers (language "Rust" "") (processed-by "rustc" "1.95.0")))"#),
            Language::Compiled
        );
        assert_eq!(
            of(r#"(module (@custom "wasmq-task-language" "cobol"))"#),
            Language::Compiled
        );
        assert_eq!(
            Language::of(b"\0asm\x0d\0\x01\0garbage"),
            Language::Compiled
        );
    }
}
