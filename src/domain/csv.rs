//! The structure of a CSV file (RFC 4180): its records and their fields, or the place where it is not certain.
//!
//! The whole file is split before any record is used, so that a quote that never closes, or one where no field can
//! hold it, refuses the file instead of letting a record swallow the lines of the ones after it.

use std::ops::Range;

/// One record: its fields, unquoted, and where it stands in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The physical line (1-based) the record starts on.
    pub line: u32,
    /// The bytes of the record in the file, without its line end.
    pub span: Range<usize>,
    /// Whether a quoted field holds a line end, so that the record covers more than one line.
    pub multi_line: bool,
    pub fields: Vec<Vec<u8>>,
}

/// Where and why the records of a file cannot be told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The record (0-based: the header of a batch file is record 0, so the others count as rows do).
    pub record: u32,
    /// The physical line (1-based) of the quote or character at fault.
    pub line: u32,
    pub reason: String,
}

/// Splits `bytes` into records of fields separated by `delimiter`. A record ends at CRLF, LF or CR outside quotes;
/// empty lines are skipped. A field that starts with `"` is quoted up to the next `"` not doubled, and must end
/// there; a `"` anywhere else is refused, as is a quote that never closes.
pub fn records(bytes: &[u8], delimiter: u8) -> Result<Vec<Record>, Malformed> {
    let mut records = Vec::new();
    let mut at = 0;
    let mut line: u32 = 1;
    while at < bytes.len() {
        if let Some(end) = line_end(bytes, at) {
            at += end;
            line += 1;
            continue;
        }
        let record_number = u32::try_from(records.len()).unwrap_or(u32::MAX);
        let start = at;
        let first_line = line;
        let mut fields = Vec::new();
        let mut multi_line = false;
        loop {
            let mut field = Vec::new();
            if bytes.get(at) == Some(&b'"') {
                let opened = line;
                at += 1;
                loop {
                    match bytes.get(at) {
                        None => {
                            return Err(Malformed {
                                record: record_number,
                                line: opened,
                                reason: format!(
                                    "the quote that opens a field on line {opened} is never closed, so where \
                                     this record ends is not known; close it, or double a quote inside a field"
                                ),
                            });
                        }
                        Some(b'"') if bytes.get(at + 1) == Some(&b'"') => {
                            field.push(b'"');
                            at += 2;
                        }
                        Some(b'"') => {
                            at += 1;
                            break;
                        }
                        Some(&byte) => {
                            if let Some(end) = line_end(bytes, at) {
                                field.extend_from_slice(&bytes[at..at + end]);
                                at += end;
                                line += 1;
                                multi_line = true;
                            } else {
                                field.push(byte);
                                at += 1;
                            }
                        }
                    }
                }
                match bytes.get(at) {
                    None => {}
                    Some(&byte) if byte == delimiter || line_end(bytes, at).is_some() => {}
                    Some(_) => {
                        return Err(Malformed {
                            record: record_number,
                            line: opened,
                            reason: format!(
                                "a field quoted from line {opened} is followed by more text on line {line}; \
                                 quote the whole field and double each quote inside it"
                            ),
                        });
                    }
                }
            } else {
                while let Some(&byte) = bytes.get(at) {
                    if byte == delimiter || line_end(bytes, at).is_some() {
                        break;
                    }
                    if byte == b'"' {
                        return Err(Malformed {
                            record: record_number,
                            line,
                            reason: format!(
                                "a quote on line {line} stands inside a field that is not quoted; quote the \
                                 whole field and double each quote inside it"
                            ),
                        });
                    }
                    field.push(byte);
                    at += 1;
                }
            }
            fields.push(field);
            if bytes.get(at) == Some(&delimiter) {
                at += 1;
            } else {
                break;
            }
        }
        records.push(Record {
            line: first_line,
            span: start..at,
            multi_line,
            fields,
        });
    }
    Ok(records)
}

/// The length of the line end at `at` (CRLF, LF or CR), if one is there.
fn line_end(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'\r' if bytes.get(at + 1) == Some(&b'\n') => Some(2),
        b'\r' | b'\n' => Some(1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn fields(text: &str) -> Vec<Vec<String>> {
        records(text.as_bytes(), b',')
            .unwrap()
            .into_iter()
            .map(|r| {
                r.fields
                    .into_iter()
                    .map(|f| String::from_utf8(f).unwrap())
                    .collect()
            })
            .collect()
    }

    /// A record written back: every field quoted, quotes doubled.
    fn write(fields: &[Vec<u8>], delimiter: u8) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                out.push(delimiter);
            }
            out.push(b'"');
            for &byte in field {
                if byte == b'"' {
                    out.push(b'"');
                }
                out.push(byte);
            }
            out.push(b'"');
        }
        out
    }

    #[test]
    fn quoted_fields_hold_delimiters_quotes_and_line_ends() {
        assert_eq!(
            fields("a,\"b,\"\"c\"\"\r\nd\",e\r\n\r\nf,\n"),
            [vec!["a", "b,\"c\"\r\nd", "e"], vec!["f", ""]]
        );
        let records = records(b"h\n\"x\ny\"\nz", b',').unwrap();
        let lines: Vec<_> = records.iter().map(|r| (r.line, r.multi_line)).collect();
        assert_eq!(lines, [(1, false), (2, true), (4, false)]);
    }

    #[test]
    fn a_quote_that_never_closes_names_where_it_opened() {
        let error = records(b"a,b\n1,\"Ann\n2,Bob\n3,Cy\n", b',').unwrap_err();
        assert_eq!((error.record, error.line), (1, 2));
        let error = records(b"a,b,c\n1,\"Ann,x\n2,\"Bob\",y\n", b',').unwrap_err();
        assert_eq!((error.record, error.line), (1, 2));
        let error = records(b"a,b\n1,An\"n\n", b',').unwrap_err();
        assert_eq!((error.record, error.line), (1, 2));
    }

    proptest! {
        #[test]
        fn any_input_is_refused_or_split_into_records_that_give_it_back(
            input in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b','), Just(b';'), Just(b'\r'), Just(b'\n'), Just(b'a'), any::<u8>()],
                0..64,
            ),
            delimiter in prop_oneof![Just(b','), Just(b';')],
        ) {
            let Ok(parsed) = records(&input, delimiter) else { return Ok(()) };
            let mut end = 0;
            for record in &parsed {
                // Records do not overlap, each starts on a line of its own, and only line ends are between them.
                prop_assert!(record.span.start >= end);
                prop_assert!(input[end..record.span.start].iter().all(|b| matches!(b, b'\r' | b'\n')));
                let before = &input[..record.span.start];
                let lines = before.iter().filter(|&&b| b == b'\n').count()
                    + before.windows(2).filter(|w| w[0] == b'\r' && w[1] != b'\n').count()
                    + usize::from(before.last() == Some(&b'\r'));
                prop_assert_eq!(record.line as usize, lines + 1);
                end = record.span.end;
                // The record alone is the same record, and re-quoted it gives back the same fields.
                let alone = records(&input[record.span.clone()], delimiter).unwrap();
                prop_assert_eq!(&alone[0].fields, &record.fields);
                let again = records(&write(&record.fields, delimiter), delimiter).unwrap();
                prop_assert_eq!(&again[0].fields, &record.fields);
            }
            prop_assert!(input[end..].iter().all(|b| matches!(b, b'\r' | b'\n')));
        }
    }
}
