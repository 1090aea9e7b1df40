//! A client certificate's subject as the principal name, written as Java's
//! `X500Principal.getName()` writes it (RFC 2253: the most specific part first,
//! `CN=client,OU=eng,O=Acme,C=US`), which is what Kafka uses for SSL principals.

/// The subject of a DER certificate in RFC 2253 form; None if the certificate cannot be read.
pub fn rfc2253(certificate: &[u8]) -> Option<String> {
    let (certificate, _) = element(certificate, 0x30)?;
    let (mut tbs, _) = element(certificate, 0x30)?;
    if tbs.first() == Some(&0xa0) {
        tbs = skip(tbs)?; // [0] version
    }
    tbs = skip(tbs)?; // serialNumber
    tbs = skip(tbs)?; // signature algorithm
    tbs = skip(tbs)?; // issuer
    tbs = skip(tbs)?; // validity
    let (mut name, _) = element(tbs, 0x30)?;
    let mut rdns = Vec::new();
    while !name.is_empty() {
        let (mut set, rest) = element(name, 0x31)?;
        name = rest;
        let mut parts = Vec::new();
        while !set.is_empty() {
            let (attribute, rest) = element(set, 0x30)?;
            set = rest;
            let (oid, value) = element(attribute, 0x06)?;
            let (tag, text, _) = any(value)?;
            let name = attribute_name(oid);
            // Java writes the values of types it has no keyword for in hex, whatever they hold.
            let value = if name.starts_with(|c: char| c.is_ascii_digit()) { hex(tag, text) } else { escape(tag, text) };
            parts.push(format!("{name}={value}"));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// The content of the DER element at the start of `input` if it has `tag`, and what follows.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, content, rest) = any(input)?;
    (found == tag).then_some((content, rest))
}

fn skip(input: &[u8]) -> Option<&[u8]> {
    any(input).map(|(_, _, rest)| rest)
}

/// Tag, content and rest of the DER element at the start of `input`.
fn any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let bytes = usize::from(first & 0x7f);
        if bytes == 0 || bytes > 4 {
            return None;
        }
        let len = input.get(2..2 + bytes)?.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
        (len, 2 + bytes)
    };
    let content = input.get(header..header.checked_add(len)?)?;
    Some((tag, content, &input[header + len..]))
}

/// The short names Java gives attribute types; others as dotted OIDs.
fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x09] => "STREET".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID".into(),
        _ => dotted(oid),
    }
}

fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value = 0u64;
    for byte in oid {
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// A value as RFC 2253 writes it: strings escaped, anything else as `#` and its hex DER.
fn escape(tag: u8, text: &[u8]) -> String {
    // UTF8String, PrintableString, IA5String, TeletexString.
    let string = matches!(tag, 0x0c | 0x13 | 0x16 | 0x14).then(|| String::from_utf8_lossy(text).into_owned());
    let Some(string) = string else { return hex(tag, text) };
    let mut out = String::with_capacity(string.len());
    let last = string.chars().count().saturating_sub(1);
    for (i, c) in string.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `#` and the value's DER in hex.
fn hex(tag: u8, text: &[u8]) -> String {
    let mut out = format!("#{tag:02x}{:02x}", text.len());
    out.extend(text.iter().map(|b| format!("{b:02x}")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag, content.len() as u8];
        out.extend_from_slice(content);
        out
    }

    fn attribute(oid: &[u8], value: &str) -> Vec<u8> {
        der(0x31, &der(0x30, &[der(0x06, oid), der(0x0c, value.as_bytes())].concat()))
    }

    #[test]
    fn subject_is_written_most_specific_first_with_escapes() {
        let subject = der(
            0x30,
            &[attribute(&[0x55, 4, 6], "US"), attribute(&[0x55, 4, 10], "Acme, Inc"), attribute(&[0x55, 4, 3], "client")].concat(),
        );
        let tbs = der(
            0x30,
            &[der(0xa0, &der(0x02, &[2])), der(0x02, &[1]), der(0x30, &[]), der(0x30, &[]), der(0x30, &[]), subject].concat(),
        );
        let certificate = der(0x30, &tbs);
        assert_eq!(rfc2253(&certificate).as_deref(), Some("CN=client,O=Acme\\, Inc,C=US"));
        assert_eq!(rfc2253(&certificate[..10]), None);
        assert_eq!(dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]), "1.2.840.113549.1.9.1");
    }
}
