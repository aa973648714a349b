//! Query-string parsing with Docker's conventions (`1`/`true` booleans,
//! JSON `filters` in either of its two shapes, repeated keys).

use crate::types::Filters;
use crate::{Error, Result};

pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Result<Query> {
        let pairs = match raw {
            None | Some("") => Vec::new(),
            Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .map_err(|e| Error::bad_request(format!("invalid query string: {e}")))?,
        };
        Ok(Query { pairs })
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn get_all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub(crate) fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("1" | "true" | "True" | "TRUE" | "yes"))
    }

    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                Error::bad_request(format!("query parameter {key}: not an integer: {v:?}"))
            }),
        }
    }

    /// A UNIX time in seconds; accepts `1700000000.123456789`.
    pub(crate) fn time(&self, key: &str) -> Result<Option<i64>> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => {
                let secs = v.split('.').next().unwrap_or(v);
                secs.parse().map(Some).map_err(|_| {
                    Error::bad_request(format!("query parameter {key}: not a UNIX time: {v:?}"))
                })
            }
        }
    }

    pub(crate) fn filters(&self) -> Result<Filters> {
        let Some(raw) = self.get("filters").filter(|f| !f.is_empty()) else {
            return Ok(Filters::new());
        };
        parse_filters(raw)
    }
}

/// `{"label":["a=b"]}` or the older `{"label":{"a=b":true}}`.
pub(crate) fn parse_filters(raw: &str) -> Result<Filters> {
    let value: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| Error::bad_request(format!("invalid filters JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| Error::bad_request("invalid filters: want a JSON object"))?;
    let mut filters = Filters::new();
    for (k, v) in obj {
        let values = match v {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            serde_json::Value::Object(m) => m
                .iter()
                .filter(|(_, on)| on.as_bool().unwrap_or(false))
                .map(|(k, _)| k.clone())
                .collect(),
            _ => {
                return Err(Error::bad_request(format!(
                    "invalid filter {k:?}: want a list or a map"
                )))
            }
        };
        filters.insert(k.clone(), values);
    }
    Ok(filters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_with_docker_conventions() {
        let q = Query::parse(Some(
            "all=1&changes=CMD+x&changes=ENV+a%3Db&since=1700000000.5&n=x",
        ))
        .unwrap();
        assert!(q.flag("all"));
        assert!(!q.flag("force"));
        assert_eq!(q.get_all("changes"), vec!["CMD x", "ENV a=b"]);
        assert_eq!(q.time("since").unwrap(), Some(1_700_000_000));
        let err = q.int("n").unwrap_err();
        assert!(err.message.contains("n"));
    }

    #[test]
    fn both_filter_shapes_parse() {
        let a = parse_filters(r#"{"label":["a=b"]}"#).unwrap();
        let b = parse_filters(r#"{"label":{"a=b":true}}"#).unwrap();
        assert_eq!(a, b);
        assert!(parse_filters("[1]").is_err());
        assert!(parse_filters("{").is_err());
    }
}
