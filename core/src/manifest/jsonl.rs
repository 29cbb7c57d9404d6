//! JSON-lines manifests: one `{"deviceId", "publicKey"}` object per line.

use super::*;

#[derive(Debug)]
pub(super) struct JsonLines<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
}

#[derive(serde::Deserialize)]
struct JsonLine {
    #[serde(rename = "deviceId", alias = "device_id")]
    device_id: Option<serde_json::Value>,
    #[serde(rename = "publicKey", alias = "public_key")]
    public_key: Option<serde_json::Value>,
}

impl<'a> JsonLines<'a> {
    pub(super) fn new(text: &'a [u8]) -> Self {
        Self {
            text,
            pos: 0,
            line: 1,
        }
    }

    pub(super) fn next(&mut self) -> Option<Result<ManifestRecord, ManifestEntryError>> {
        while self.pos < self.text.len() {
            let rest = &self.text[self.pos..];
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let line = self.line;
            self.pos += end + 1;
            self.line += 1;
            let content = &rest[..end];
            if content.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(json_line(line, content));
        }
        None
    }
}

fn json_line(line: usize, content: &[u8]) -> Result<ManifestRecord, ManifestEntryError> {
    let invalid = |id: Option<&str>, message: String| {
        ManifestEntryError::new(line, id, &ManifestError::InvalidRow(message))
    };
    let parsed: JsonLine = serde_json::from_slice(content).map_err(|e| {
        invalid(
            None,
            format!("the line is not a JSON object {{\"deviceId\", \"publicKey\"}}: {e}"),
        )
    })?;
    let device_id = match parsed.device_id {
        Some(serde_json::Value::String(id)) => id,
        Some(_) => return Err(invalid(None, "deviceId must be a string".into())),
        None => return Err(invalid(None, "the line has no deviceId".into())),
    };
    let key = match parsed.public_key {
        Some(serde_json::Value::String(key)) => key,
        Some(jwk @ serde_json::Value::Object(_)) => jwk.to_string(),
        Some(_) => {
            return Err(invalid(
                Some(&device_id),
                "publicKey must be a string or a JWK object".into(),
            ))
        }
        None => {
            return Err(invalid(
                Some(&device_id),
                "the line has no publicKey".into(),
            ))
        }
    };
    record(line, &device_id, &key)
}
