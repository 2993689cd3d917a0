//! For tests of this store and of what runs on it: the PostgreSQL server named by
//! `SIP_SETTINGS_TEST_PG_URL`. Without the variable the PostgreSQL tests skip, saying so, except
//! in CI (`CI=true`): there a run without the server fails instead of passing untested.

/// The environment variable naming the PostgreSQL server for tests.
pub const PG_URL_VAR: &str = "SIP_SETTINGS_TEST_PG_URL";

/// The URL of the PostgreSQL server for tests, or `None` after saying that `what` skips.
///
/// # Panics
///
/// When the variable is unset (or empty) and `CI` is `true`.
pub fn test_server_url(what: &str) -> Option<String> {
    let ci = std::env::var("CI").ok();
    match server_url(std::env::var(PG_URL_VAR).ok(), ci.as_deref()) {
        Ok(Some(url)) => Some(url),
        Ok(None) => {
            eprintln!("{PG_URL_VAR} not set: skipping {what}");
            None
        }
        Err(message) => panic!("{message}"),
    }
}

/// The server's URL from the variable's value `url` and `CI`'s value `ci`: `None` to skip, an
/// error when skipping is not allowed.
fn server_url(url: Option<String>, ci: Option<&str>) -> Result<Option<String>, String> {
    match url.filter(|u| !u.is_empty()) {
        Some(url) => Ok(Some(url)),
        None if ci.is_some_and(|ci| ci.eq_ignore_ascii_case("true")) => Err(format!(
            "CI=true but {PG_URL_VAR} is not set: in CI the PostgreSQL tests must run, not skip \
             (set {PG_URL_VAR} to a server where the tests may create databases, e.g. \
             postgres://postgres@127.0.0.1:5432/postgres)"
        )),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::server_url;

    #[test]
    fn without_a_server_the_tests_skip_except_in_ci() {
        let url = || Some("postgres://postgres@127.0.0.1/postgres".to_owned());
        for ci in [None, Some("true"), Some("false"), Some("")] {
            assert_eq!(server_url(url(), ci), Ok(url()), "{ci:?}");
        }
        for ci in [None, Some("false"), Some("0"), Some("")] {
            assert_eq!(server_url(None, ci), Ok(None), "{ci:?}");
            assert_eq!(server_url(Some(String::new()), ci), Ok(None), "{ci:?}");
        }
        for ci in ["true", "TRUE", "True"] {
            let message = server_url(None, Some(ci)).unwrap_err();
            assert!(message.contains("SIP_SETTINGS_TEST_PG_URL"), "{message}");
            assert!(server_url(Some(String::new()), Some(ci)).is_err());
        }
    }
}
