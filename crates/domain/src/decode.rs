//! Decoding of untrusted JSON request bodies into the types of [`crate::api`]: never a
//! panic, always a [`ModelError`] naming the field at fault.
//!
//! A number written with a zero fraction (`5.0`, `1e3`) is read as the integer it is:
//! JSON Schema counts it as an integer (JSON Schema Validation 2020-12, section 6.1.1),
//! so a client generated from the OpenAPI document may send one. The body is read
//! strictly first; only a body that fails is read again with such numbers made integers,
//! so well-formed bodies pay nothing.

use serde::de::DeserializeOwned;
use serde_json::{Number, Value};

use crate::validate::ModelError;

/// Decodes one JSON value filling the whole of `bytes` (whitespace aside).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ModelError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ModelError {
            field: None,
            ..ModelError::invalid("", "the request needs a JSON body")
        });
    }
    let first = match strict(bytes) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    if let Ok(mut value) = serde_json::from_slice::<Value>(bytes)
        && integral_numbers(&mut value)
        && let Ok(v) = serde_json::from_value(value)
    {
        return Ok(v);
    }
    Err(first)
}

fn strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ModelError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = useful_path(path);
        let what = if inner.is_syntax() || inner.is_eof() {
            "the request body is not valid JSON"
        } else {
            "the request body does not match the expected fields"
        };
        let mut msg = format!("{what}: {inner}");
        if let Some(f) = &field {
            msg = format!("{msg} (field `{f}`)");
        }
        ModelError {
            field,
            ..ModelError::invalid("", msg)
        }
    })?;
    de.end().map_err(|e| ModelError {
        field: None,
        ..ModelError::invalid(
            "",
            format!("the request body has more than one JSON value: {e}"),
        )
    })?;
    Ok(value)
}

/// The path serde reports, unless it names no field (`.` for the root, `?` when unknown).
pub fn useful_path(path: String) -> Option<String> {
    (!path.is_empty() && path != "." && !path.contains('?')).then_some(path)
}

/// Turns every float with a zero fraction that fits a 64-bit integer into that integer;
/// says whether any changed.
fn integral_numbers(v: &mut Value) -> bool {
    match v {
        Value::Number(n) => {
            let Some(f) = n.as_f64().filter(|_| n.is_f64()) else {
                return false;
            };
            // 2^64 and -2^63 are exact in f64; the bounds keep the casts exact.
            let int = if f.fract() != 0.0 {
                None
            } else if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                Some(Number::from(f as u64))
            } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                Some(Number::from(f as i64))
            } else {
                None
            };
            match int {
                Some(i) => {
                    *n = i;
                    true
                }
                None => false,
            }
        }
        Value::Array(a) => a.iter_mut().fold(false, |c, x| integral_numbers(x) | c),
        Value::Object(o) => o.values_mut().fold(false, |c, x| integral_numbers(x) | c),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DomainSpec, Heartbeat};

    #[test]
    fn integral_floats_are_integers_and_fractions_are_not() {
        let hb: Heartbeat = decode(br#"{"session": 89268.0}"#).unwrap();
        assert_eq!(hb.session, 89_268);
        let hb: Heartbeat = decode(br#"{"session": 1e3}"#).unwrap();
        assert_eq!(hb.session, 1_000);
        let e = decode::<Heartbeat>(br#"{"session": 1.5}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("session"));
        assert!(decode::<Heartbeat>(br#"{"session": -1.0}"#).is_err());
        assert!(decode::<Heartbeat>(br#"{"session": 1e300}"#).is_err());
    }

    #[test]
    fn refusals_name_the_field_and_trailing_bytes_are_refused() {
        let e = decode::<DomainSpec>(br#"{"name": "x", "vni": "7"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("vni"));
        assert!(decode::<DomainSpec>(br#"{"name": "x"} {"name": "y"}"#).is_err());
        assert!(decode::<DomainSpec>(b"  ").unwrap_err().field.is_none());
        assert!(decode::<DomainSpec>(br#"{"name": "x"}  "#).is_ok());
    }
}
