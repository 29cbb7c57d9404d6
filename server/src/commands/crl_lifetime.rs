//! `--crl-lifetime`: how long the CRLs a command writes stay valid (their nextUpdate).
//! Every command that writes CRLs takes it, with the same variable and default, so
//! `serve` and the admin's commands agree.

use clap::Args;

/// The `--crl-lifetime` option, flattened into each command that writes CRLs.
#[derive(Debug, Clone, Copy, Args)]
pub struct CrlLifetimeArg {
    /// How long a CRL stays valid (its nextUpdate): seconds, or a number with s, m, h or
    /// d (`90s`, `12h`, `7d`). `serve` writes a new one at half this lifetime.
    #[arg(
        long = "crl-lifetime",
        env = "PROVISIONER_CRL_LIFETIME",
        default_value = "7d",
        value_name = "DURATION",
        value_parser = parse_lifetime
    )]
    pub secs: i64,
}

/// The longest lifetime accepted: a CRL that outlives its CA's need is never refreshed
/// for nothing, but a mistyped unit (`7000d`) should be caught.
const MAX_SECS: i64 = 366 * 24 * 60 * 60;

/// Parses `N`, `Ns`, `Nm`, `Nh` or `Nd` into seconds (1 s up to 366 days). Four suffixes
/// do not justify a dependency.
pub fn parse_lifetime(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_lowercase()),
        _ => (text, 's'),
    };
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 60 * 60,
        'd' => 24 * 60 * 60,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use s, m, h or d (e.g. 7d)"
            ))
        }
    };
    let value: i64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: write e.g. 7d, 12h, 90s"))?;
    let secs = value.saturating_mul(scale);
    if !(1..=MAX_SECS).contains(&secs) {
        return Err(format!(
            "{text:?} is out of range: a CRL lifetime is from 1 s to 366 d"
        ));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_and_without_a_unit() {
        assert_eq!(parse_lifetime("7d"), Ok(7 * 86_400));
        assert_eq!(parse_lifetime("12h"), Ok(43_200));
        assert_eq!(parse_lifetime("5m"), Ok(300));
        assert_eq!(parse_lifetime("90s"), Ok(90));
        assert_eq!(parse_lifetime("4"), Ok(4));
        assert_eq!(parse_lifetime(" 2D "), Ok(172_800));
    }

    #[test]
    fn bad_durations_say_what_to_write() {
        assert!(parse_lifetime("7w")
            .unwrap_err()
            .contains("use s, m, h or d"));
        assert!(parse_lifetime("d").unwrap_err().contains("not a duration"));
        assert!(parse_lifetime("0s").unwrap_err().contains("out of range"));
        assert!(parse_lifetime("400d").unwrap_err().contains("out of range"));
        assert!(parse_lifetime("-5").unwrap_err().contains("out of range"));
    }
}
