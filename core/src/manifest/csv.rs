//! CSV manifests: `device_id,public_key` rows (RFC 4180 quoting).

use super::*;

/// RFC 4180 rows over the whole file, one row per call.
#[derive(Debug)]
pub(super) struct CsvRows<'a> {
    text: &'a [u8],
    pos: usize,
    /// The 1-based line `pos` is on.
    line: usize,
    /// Whether a row has been read yet (only the first may be a header).
    started: bool,
}

/// What ended a field.
enum FieldEnd {
    Comma,
    Row,
}

impl<'a> CsvRows<'a> {
    pub(super) fn new(text: &'a [u8]) -> Self {
        Self {
            text,
            pos: 0,
            line: 1,
            started: false,
        }
    }

    pub(super) fn next(&mut self) -> Option<Result<ManifestRecord, ManifestEntryError>> {
        loop {
            if self.pos >= self.text.len() {
                return None;
            }
            if self.skip_blank_line() {
                continue;
            }
            let line = self.line;
            let first_row = !std::mem::replace(&mut self.started, true);
            let fields = match self.row() {
                Ok(fields) => fields,
                Err(message) => {
                    let error = ManifestError::InvalidRow(message);
                    return Some(Err(ManifestEntryError::new(line, None, &error)));
                }
            };
            let device_id = match utf8_field(line, &fields[0]) {
                Ok(id) => id.trim(),
                Err(error) => return Some(Err(error)),
            };
            if first_row && is_header(device_id) {
                continue;
            }
            if fields.len() != 2 {
                let error = ManifestError::InvalidRow(format!(
                    "the row has {} field(s); expected 2: device_id,public_key (quote a field that holds a comma)",
                    fields.len()
                ));
                let id = Some(device_id).filter(|id| !id.is_empty());
                return Some(Err(ManifestEntryError::new(line, id, &error)));
            }
            return Some(utf8_field(line, &fields[1]).and_then(|key| record(line, device_id, key)));
        }
    }

    /// Consumes a line holding only whitespace, if `pos` starts one.
    fn skip_blank_line(&mut self) -> bool {
        let rest = &self.text[self.pos..];
        let blank = rest
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\r'))
            .count();
        match rest.get(blank) {
            None => {
                self.pos = self.text.len();
                true
            }
            Some(b'\n') => {
                self.pos += blank + 1;
                self.line += 1;
                true
            }
            Some(_) => false,
        }
    }

    /// The fields of the row at `pos`, which is consumed with its line end even when
    /// it is malformed.
    fn row(&mut self) -> Result<Vec<Cow<'a, [u8]>>, String> {
        let mut fields = Vec::with_capacity(2);
        loop {
            match self.field() {
                Ok((field, end)) => {
                    fields.push(field);
                    if let FieldEnd::Row = end {
                        return Ok(fields);
                    }
                }
                Err(message) => {
                    self.skip_line();
                    return Err(message);
                }
            }
        }
    }

    fn field(&mut self) -> Result<(Cow<'a, [u8]>, FieldEnd), String> {
        let text = self.text;
        let content = self.pos
            + text[self.pos..]
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count();
        if text.get(content) == Some(&b'"') {
            return self.quoted(content + 1);
        }
        let end = self.pos
            + text[self.pos..]
                .iter()
                .position(|&b| b == b',' || b == b'\n')
                .unwrap_or(text.len() - self.pos);
        let value = &text[self.pos..end];
        Ok((Cow::Borrowed(value), self.consume_separator(end)))
    }

    /// A quoted field whose content starts at `open` (just after the quote).
    fn quoted(&mut self, open: usize) -> Result<(Cow<'a, [u8]>, FieldEnd), String> {
        let text = self.text;
        let first_line = self.line;
        // Owned only once an escaped quote (`""`) has been seen.
        let mut unescaped: Option<Vec<u8>> = None;
        let mut chunk = open;
        let close = loop {
            let Some(quote) = text[chunk..].iter().position(|&b| b == b'"') else {
                self.line += count_newlines(&text[chunk..]);
                self.pos = text.len();
                return Err(format!(
                    "the quoted field opened on line {first_line} is never closed"
                ));
            };
            let quote = chunk + quote;
            self.line += count_newlines(&text[chunk..quote]);
            if text.get(quote + 1) != Some(&b'"') {
                break quote;
            }
            unescaped
                .get_or_insert_with(Vec::new)
                .extend_from_slice(&text[chunk..=quote]);
            chunk = quote + 2;
        };
        let value = match unescaped {
            None => Cow::Borrowed(&text[open..close]),
            Some(mut value) => {
                value.extend_from_slice(&text[chunk..close]);
                Cow::Owned(value)
            }
        };
        let after = close
            + 1
            + text[close + 1..]
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t' | b'\r'))
                .count();
        match text.get(after) {
            None | Some(b',' | b'\n') => Ok((value, self.consume_separator(after))),
            Some(_) => {
                self.pos = after;
                Err(format!(
                    "text follows the closing quote of a field on line {}: quote the whole field and double any quote inside it",
                    self.line
                ))
            }
        }
    }

    /// Moves past the separator at `at` (a comma, a newline or the end of the text).
    fn consume_separator(&mut self, at: usize) -> FieldEnd {
        match self.text.get(at) {
            Some(b',') => {
                self.pos = at + 1;
                FieldEnd::Comma
            }
            Some(_) => {
                self.pos = at + 1;
                self.line += 1;
                FieldEnd::Row
            }
            None => {
                self.pos = at;
                FieldEnd::Row
            }
        }
    }

    /// Moves past the end of the current line.
    fn skip_line(&mut self) {
        match self.text[self.pos..].iter().position(|&b| b == b'\n') {
            Some(newline) => {
                self.pos += newline + 1;
                self.line += 1;
            }
            None => self.pos = self.text.len(),
        }
    }
}

fn utf8_field(line: usize, field: &[u8]) -> Result<&str, ManifestEntryError> {
    std::str::from_utf8(field).map_err(|_| {
        let error = ManifestError::InvalidRow("the row is not UTF-8 text".into());
        ManifestEntryError::new(line, None, &error)
    })
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

fn is_header(first_field: &str) -> bool {
    ["device_id", "deviceid", "id"]
        .iter()
        .any(|name| first_field.eq_ignore_ascii_case(name))
}
