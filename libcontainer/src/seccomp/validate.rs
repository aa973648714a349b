//! Field-by-field checks of a raw `linux.seccomp` object, for a clear error
//! naming the field when typed parsing (oci-spec) rejects a config.

use std::str::FromStr;

use oci_spec::runtime::{Arch, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator};
use serde_json::Value;

use super::SeccompError;

/// Checks the `linux.seccomp` object of a raw config.json and names the
/// first bad field: an unknown action, operator, architecture or flag, a
/// missing `names`, an argument index past 5. `config` is the whole
/// config.json; a config without `linux.seccomp` is fine.
///
/// The core calls this when `Spec` parsing fails, to turn serde's message
/// into one that names the field:
///
/// ```
/// let config = serde_json::json!({"linux": {"seccomp": {
///     "defaultAction": "SCMP_ACT_ALLOW",
///     "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_EXPLODE"}]}}});
/// let err = libcontainer::seccomp::validate_raw(&config).unwrap_err();
/// assert!(err.to_string().starts_with("linux.seccomp.syscalls[0].action"));
/// ```
pub fn validate_raw(config: &Value) -> Result<(), SeccompError> {
    let Some(seccomp) = config.pointer("/linux/seccomp") else {
        return Ok(());
    };
    let base = "linux.seccomp";
    if !seccomp.is_object() {
        return Err(SeccompError::invalid(base, "must be an object"));
    }
    match seccomp.get("defaultAction") {
        None => {
            return Err(SeccompError::invalid(
                format!("{base}.defaultAction"),
                "missing",
            ))
        }
        Some(v) => known::<LinuxSeccompAction>(v, &format!("{base}.defaultAction"), "action")?,
    }
    for (i, v) in list(seccomp, "architectures", base)? {
        known::<Arch>(v, &format!("{base}.architectures[{i}]"), "architecture")?;
    }
    for (i, v) in list(seccomp, "flags", base)? {
        known::<LinuxSeccompFilterFlag>(v, &format!("{base}.flags[{i}]"), "filter flag")?;
    }
    for (i, rule) in list(seccomp, "syscalls", base)? {
        let field = format!("{base}.syscalls[{i}]");
        match rule.get("names") {
            Some(Value::Array(names)) if !names.is_empty() => {
                if let Some(k) = names.iter().position(|n| !n.is_string()) {
                    return Err(SeccompError::invalid(
                        format!("{field}.names[{k}]"),
                        "must be a string",
                    ));
                }
            }
            _ => {
                return Err(SeccompError::invalid(
                    format!("{field}.names"),
                    "must be a non-empty list of syscall names",
                ))
            }
        }
        match rule.get("action") {
            None => return Err(SeccompError::invalid(format!("{field}.action"), "missing")),
            Some(v) => known::<LinuxSeccompAction>(v, &format!("{field}.action"), "action")?,
        }
        for (j, arg) in list(rule, "args", &field)? {
            let af = format!("{field}.args[{j}]");
            match arg.get("index").and_then(Value::as_u64) {
                Some(n) if n <= 5 => {}
                Some(n) => {
                    return Err(SeccompError::invalid(
                        format!("{af}.index"),
                        format!("{n} is out of range: syscalls have arguments 0 to 5"),
                    ))
                }
                None => {
                    return Err(SeccompError::invalid(
                        format!("{af}.index"),
                        "missing or not a number",
                    ))
                }
            }
            if arg.get("value").and_then(Value::as_u64).is_none() {
                return Err(SeccompError::invalid(
                    format!("{af}.value"),
                    "missing or not an unsigned 64-bit number",
                ));
            }
            match arg.get("op") {
                None => return Err(SeccompError::invalid(format!("{af}.op"), "missing")),
                Some(v) => known::<LinuxSeccompOperator>(v, &format!("{af}.op"), "operator")?,
            }
        }
    }
    Ok(())
}

fn list<'a>(
    obj: &'a Value,
    key: &str,
    base: &str,
) -> Result<impl Iterator<Item = (usize, &'a Value)>, SeccompError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok([].iter().enumerate()),
        Some(Value::Array(items)) => Ok(items.iter().enumerate()),
        Some(_) => Err(SeccompError::invalid(
            format!("{base}.{key}"),
            "must be a list",
        )),
    }
}

fn known<T: FromStr>(v: &Value, field: &str, what: &str) -> Result<(), SeccompError> {
    match v.as_str() {
        Some(s) if T::from_str(s).is_ok() => Ok(()),
        Some(s) => Err(SeccompError::invalid(
            field,
            format!("unknown seccomp {what} {s:?}"),
        )),
        None => Err(SeccompError::invalid(field, "must be a string")),
    }
}
