//! Canonical JSON: the byte string both signer and verifier derive from a
//! JSON value, so a signature does not depend on key order, whitespace or how
//! a language prints numbers. It is RFC 8785 (JSON Canonicalization Scheme):
//! keys sorted by UTF-16 code units, no whitespace, numbers as ECMAScript
//! prints them (`1.0` is `1`, `1e21` is `1e+21`), strings with the minimal
//! escapes. A station in any language with a JCS library produces the same bytes.

use serde_json::Value;

pub fn to_string(value: &Value) -> String {
    // A `Value` always serialises; the empty string signs nothing anyone sent.
    serde_json_canonicalizer::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_and_whitespace_do_not_change_the_canonical_form() {
        let a: Value =
            serde_json::from_str(r#"{"b": [1, {"y": 2, "x": "门"}], "a": 1.50}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":1.5,"b":[1,{"x":"门","y":2}]}"#).unwrap();
        assert_eq!(to_string(&a), to_string(&b));
        assert_eq!(to_string(&a), r#"{"a":1.5,"b":[1,{"x":"门","y":2}]}"#);
    }

    #[test]
    fn numbers_and_strings_follow_rfc_8785() {
        // The examples from RFC 8785 §3.2.2.3 and appendix B that differ from
        // serde_json's own printing, and a key sorted by UTF-16 code units
        // (U+10000 is D800 DC00, before U+FB33; by UTF-8 bytes it comes after).
        let v: Value = serde_json::from_str(
            r#"{"\ufb33":1,"\ud800\udc00":2,"n":[1.0,1e21,1e-7,-0.0,333333333.3333333],"s":"\u000f\u007f\"\\"}"#,
        )
        .unwrap();
        assert_eq!(
            to_string(&v),
            "{\"n\":[1,1e+21,1e-7,0,333333333.3333333],\"s\":\"\\u000f\u{7f}\\\"\\\\\",\"\u{10000}\":2,\"\u{fb33}\":1}"
        );
    }
}
