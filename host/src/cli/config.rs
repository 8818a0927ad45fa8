//! The optional `wasmq.toml`: settings below flags and environment variables.
//!
//! Each top-level key `name` stands for the environment variable `WASMQ_NAME` (e.g.
//! `database_url = "postgres://…"` for `WASMQ_DATABASE_URL`, `listen`, `url`, `key`).
//! [`load`] copies a key into the environment only where that variable is unset, before
//! the command line is parsed, so the precedence is flags > environment > file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The file used when `WASMQ_CONFIG` does not name one.
pub const DEFAULT_FILE: &str = "wasmq.toml";

/// The settings of `path` (or `WASMQ_CONFIG`, or `./wasmq.toml` if it exists) as
/// `(variable, value)` pairs for the variables not already set in the process's
/// environment.
pub fn settings(path: Option<&Path>) -> anyhow::Result<Vec<(String, String)>> {
    settings_in(path, |var| std::env::var_os(var))
}

/// [`settings`] against the environment `env` (a variable's value, if set), so that
/// what the caller's shell happens to export cannot change the answer.
pub fn settings_in(
    path: Option<&Path>,
    env: impl Fn(&str) -> Option<OsString>,
) -> anyhow::Result<Vec<(String, String)>> {
    let path: PathBuf = match path {
        Some(p) => p.to_owned(),
        None => match env("WASMQ_CONFIG") {
            Some(p) => PathBuf::from(p),
            None if Path::new(DEFAULT_FILE).exists() => PathBuf::from(DEFAULT_FILE),
            None => return Ok(Vec::new()),
        },
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut out = Vec::new();
    for (name, value) in table {
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => bail!(
                "{}: `{name}` must be a string, number or boolean, not {}",
                path.display(),
                other.type_str()
            ),
        };
        let var = format!("WASMQ_{}", name.to_ascii_uppercase().replace('-', "_"));
        if env(&var).is_none() {
            out.push((var, value));
        }
    }
    Ok(out)
}

/// Applies [`settings`] to the environment. Call before any thread starts.
pub fn load() -> anyhow::Result<()> {
    for (var, value) in settings(None)? {
        // SAFETY: called first thing in `main`, before any other thread exists, so no
        // thread can be reading the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var(var, value)
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment holding only `vars`.
    fn only(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |var| vars.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("wasmq.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn keys_become_unset_variables() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "listen = \"0.0.0.0:9000\"\nslots = 4\npath = \"x\"\n",
        );
        let got = settings_in(Some(&path), only(&[])).unwrap();
        assert!(got.contains(&("WASMQ_LISTEN".into(), "0.0.0.0:9000".into())));
        assert!(got.contains(&("WASMQ_SLOTS".into(), "4".into())));
        // PATH-like names are namespaced, never the real PATH.
        assert!(got.iter().all(|(k, _)| k.starts_with("WASMQ_")));
    }

    #[test]
    fn a_set_variable_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "listen = \"0.0.0.0:9000\"\nslots = 4\n");
        let got = settings_in(Some(&path), only(&[("WASMQ_LISTEN", "127.0.0.1:1")])).unwrap();
        assert_eq!(got, vec![("WASMQ_SLOTS".to_owned(), "4".to_owned())]);
    }

    #[test]
    fn wasmq_config_names_the_file_and_none_means_no_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "grace = \"5s\"\n");
        let named = only(&[("WASMQ_CONFIG", path.to_str().unwrap())]);
        assert_eq!(
            settings_in(None, named).unwrap(),
            vec![("WASMQ_GRACE".to_owned(), "5s".to_owned())]
        );
        let missing = only(&[("WASMQ_CONFIG", "/nonexistent/wasmq.toml")]);
        let err = settings_in(None, missing).unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/wasmq.toml"),
            "{err:#}"
        );
    }

    #[test]
    fn a_table_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "[server]\nlisten = \"x\"\n");
        let err = settings_in(Some(&path), only(&[])).unwrap_err();
        assert!(
            format!("{err:#}").contains("`server` must be a string"),
            "{err:#}"
        );
    }
}
