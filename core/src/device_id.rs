//! The device id rule: what a CSR's common name must look like.

use crate::error::CsrError;

/// The longest device id an IoT Core thing name allows.
pub const MAX_DEVICE_ID_LEN: usize = 128;

/// Which common names are device ids: `[A-Za-z0-9:_-]{1,max_len}`, optionally with a
/// required prefix. The default is what an AWS IoT Core thing name allows; an issuance
/// profile may narrow it, never widen it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdRule {
    max_len: usize,
    prefix: Option<String>,
}

impl Default for DeviceIdRule {
    fn default() -> Self {
        Self {
            max_len: MAX_DEVICE_ID_LEN,
            prefix: None,
        }
    }
}

impl DeviceIdRule {
    /// Narrows the maximum length (values above 128 are capped at 128).
    pub fn with_max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len.clamp(1, MAX_DEVICE_ID_LEN);
        self
    }

    /// Requires every device id to start with `prefix`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Checks a candidate device id.
    ///
    /// # Errors
    /// [`CsrError::InvalidDeviceId`], naming the first offending character or the length.
    pub fn check(&self, id: &str) -> Result<(), CsrError> {
        if id.is_empty() {
            return Err(CsrError::InvalidDeviceId(
                "the common name is empty; it must be the device id".into(),
            ));
        }
        let length = id.chars().count();
        if length > self.max_len {
            return Err(CsrError::InvalidDeviceId(format!(
                "the device id is {length} characters; at most {} are allowed",
                self.max_len
            )));
        }
        if let Some((position, c)) = id.chars().enumerate().find(|(_, c)| !is_id_char(*c)) {
            return Err(CsrError::InvalidDeviceId(format!(
                "the device id has {} at position {position}; only letters, digits, ':', '_' and '-' are allowed",
                describe(c)
            )));
        }
        if let Some(prefix) = &self.prefix {
            if !id.starts_with(prefix.as_str()) {
                return Err(CsrError::InvalidDeviceId(format!(
                    "the device id must start with {prefix:?}"
                )));
            }
        }
        Ok(())
    }
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')
}

/// A character as a person reading an error can see it (NUL and controls are invisible).
fn describe(c: char) -> String {
    if c.is_control() || c == ' ' {
        format!("the character U+{:04X}", u32::from(c))
    } else {
        format!("{c:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_a_thing_name_allows_pass() {
        let rule = DeviceIdRule::default();
        for id in ["a", "0123A1B2C3D4E5F6EE", "dev:01_ab-CD", &"x".repeat(128)] {
            assert_eq!(rule.check(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn nul_slash_dot_space_and_overlong_ids_are_refused() {
        let rule = DeviceIdRule::default();
        for id in ["", "a\0b", "a/b", "a.b", "a b", "é", &"x".repeat(129)] {
            assert!(rule.check(id).is_err(), "{id:?}");
        }
    }

    #[test]
    fn a_narrowed_rule_enforces_prefix_and_length() {
        let rule = DeviceIdRule::default().with_max_len(8).with_prefix("sn-");
        assert_eq!(rule.check("sn-1234"), Ok(()));
        assert!(rule.check("sn-123456").is_err());
        assert!(rule.check("xx-1234").is_err());
    }

    #[test]
    fn the_message_makes_nul_visible() {
        let err = DeviceIdRule::default().check("ab\0").unwrap_err();
        assert!(err.to_string().contains("U+0000"), "{err}");
    }
}
