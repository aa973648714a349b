//! Small helpers shared by the adapters: ids, timestamps, signal names.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

/// A random 64-hex-digit id, like Docker's container and network ids.
pub fn random_id() -> String {
    let mut rng = rand::rng();
    let mut s = String::with_capacity(64);
    for _ in 0..4 {
        s.push_str(&format!("{:016x}", rng.random::<u64>()));
    }
    s
}

/// The short form of an id as Docker prints it: without an algorithm
/// prefix (`sha256:`), at most 12 characters. Never panics on short ids.
///
/// ```
/// use libswarm::util::short_id;
/// assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
/// assert_eq!(short_id("abc"), "abc");
/// ```
pub fn short_id(id: &str) -> &str {
    let id = id.split_once(':').map_or(id, |(_, rest)| rest);
    id.char_indices().nth(12).map_or(id, |(i, _)| &id[..i])
}

/// Nanoseconds since the UNIX epoch.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Formats UNIX nanoseconds as RFC 3339 in UTC with nanoseconds
/// (`2026-11-22T11:19:21.123456789Z`), the way the Docker API writes times.
pub fn rfc3339(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        tod / 3600,
        (tod / 60) % 60,
        tod % 60
    )
}

/// The zero time Go writes for "never".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses a signal given as a name (`SIGTERM`, `term`) or a number.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "CHLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "WINCH" => 28,
        _ => return None,
    };
    Some(n)
}

/// Is `name` a valid container name (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`)?
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    name.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        // 2024-02-29T12:34:56.5Z
        assert_eq!(
            rfc3339(1_709_210_096_500_000_000),
            "2024-02-29T12:34:56.500000000Z"
        );
    }

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("SIGKILL"), Some(9));
        assert_eq!(parse_signal("term"), Some(15));
        assert_eq!(parse_signal("10"), Some(10));
        assert_eq!(parse_signal("SIGNOPE"), None);
        assert_eq!(parse_signal("99"), None);
    }

    #[test]
    fn names_follow_docker_rules() {
        assert!(valid_name("web-1"));
        assert!(valid_name("a.b_c"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a"));
        assert!(!valid_name("a/b"));
        assert_eq!(random_id().len(), 64);
    }
}
