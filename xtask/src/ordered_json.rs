//! A JSON object that keeps its keys in file order (for package.json, which people read).
//! Nested values are plain `serde_json::Value`s.

use anyhow::{Context, Result};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::Path;

/// A top-level JSON object with its keys in their original order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Object(pub Vec<(String, serde_json::Value)>);

impl Object {
    /// Parses `text` (the contents of `path`, named in errors) as a JSON object.
    pub fn parse(text: &str, path: &Path) -> Result<Object> {
        serde_json::from_str(text)
            .with_context(|| format!("{} is not a JSON object; fix its syntax", path.display()))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key` in place, or appends it at the end.
    pub fn set(&mut self, key: &str, value: serde_json::Value) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    /// Pretty-printed (two spaces, as npm writes package.json) with a trailing newline.
    pub fn to_pretty(&self) -> Result<Vec<u8>> {
        let mut out = serde_json::to_vec_pretty(self).context("cannot render JSON")?;
        out.push(b'\n');
        Ok(out)
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Object, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Object;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Object, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, serde_json::Value>()? {
                    out.retain(|(key, _): &(String, serde_json::Value)| *key != k);
                    out.push((k, v));
                }
                Ok(Object(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_round_trips_package_json() {
        let path = crate::project_root().join("npm-package/package.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let obj = Object::parse(&text, &path).unwrap();
        assert_eq!(obj.0[0].0, "name");
        assert_eq!(obj.0[1].0, "version");
        let mut o = Object::parse("{\"b\": 1, \"a\": 2}", &path).unwrap();
        o.set("b", serde_json::json!(3));
        o.set("c", serde_json::json!(4));
        assert_eq!(
            String::from_utf8(o.to_pretty().unwrap()).unwrap(),
            "{\n  \"b\": 3,\n  \"a\": 2,\n  \"c\": 4\n}\n"
        );
        assert!(Object::parse("[1]", &path).is_err());
    }
}
