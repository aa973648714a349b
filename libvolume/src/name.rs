//! Docker's volume name rules and generated names.

use crate::error::{Error, Result};

/// Checks a volume name against Docker's pattern `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
///
/// The rule keeps names usable as a single path component under the
/// driver's root: no slashes, no leading dot or dash.
///
/// ```
/// assert!(libvolume::validate_name("data_1.v2").is_ok());
/// assert!(libvolume::validate_name("../etc").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest: Vec<char> = chars.collect();
    let rest_ok = !rest.is_empty()
        && rest
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: name.to_string(),
        })
    }
}

/// A random 64 hex digit name, as Docker gives anonymous volumes.
pub fn generate_name() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        Error::sys(
            "reading random bytes for a volume name",
            "getrandom",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_docker_names() {
        for ok in ["ab", "a1", "data", "my-vol_1.2", "0abc", "A.b"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_names_with_docker_message() {
        for bad in [
            "", "a", "-ab", ".ab", "_ab", "a/b", "../x", "a b", "vol:1", "é1",
        ] {
            let err = validate_name(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{bad}");
            assert!(
                err.to_string().contains("includes invalid characters"),
                "{err}"
            );
        }
    }

    #[test]
    fn generated_names_are_valid_and_distinct() {
        let a = generate_name().unwrap();
        let b = generate_name().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        validate_name(&a).unwrap();
    }
}
