//! `host:port` keys, as Ansible splits them: `badwolf.example.com:5309` is
//! the host `badwolf.example.com` with `ansible_port: 5309`, and
//! `[2001:db8::1]:2222` the host `2001:db8::1` on port 2222. A bare IPv6
//! address has no port. A key whose host part is not a host name, an IPv4 or
//! an IPv6 address (ranges allowed in each) is kept whole, port and all, as
//! Ansible keeps it.

use std::net::Ipv6Addr;

/// A host key split into its host part (perhaps with ranges) and its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address<'k> {
    pub host: &'k str,
    /// The port's digits, when the key names one.
    pub port: Option<&'k str>,
}

/// Splits `key` as Ansible's `parse_address(key, allow_ranges=True)` does,
/// falling back to the whole key without a port.
pub fn split(key: &str) -> Address<'_> {
    parse(key).unwrap_or(Address {
        host: key,
        port: None,
    })
}

fn parse(key: &str) -> Option<Address<'_>> {
    let mut host = key;
    let mut port = None;
    if let Some((inner, digits)) = bracketed(host) {
        (host, port) = (inner, Some(digits));
    }
    if let Some((inner, digits)) = with_port(host) {
        (host, port) = (inner, Some(digits));
    }
    (is_hostname(host) || is_ipv6(host)).then_some(Address { host, port })
}

fn is_port(digits: &str) -> bool {
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `[anything]:digits`
fn bracketed(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix('[')?;
    let (inner, digits) = rest.rsplit_once(':')?;
    let inner = inner.strip_suffix(']')?;
    (!inner.is_empty() && is_port(digits)).then_some((inner, digits))
}

/// `host:digits`, where the host has no `:`, `[` or `]` outside complete
/// bracketed expressions.
fn with_port(key: &str) -> Option<(&str, &str)> {
    let bytes = key.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'[' => at += key[at..].find(']')? + 1,
            b']' => return None,
            b':' => {
                let digits = &key[at + 1..];
                return is_port(digits).then_some((&key[..at], digits));
            }
            _ => at += 1,
        }
    }
    None
}

/// A range as a host name may hold one: `[a:z]` (either case) or `[0:9]`,
/// with an optional numeric step.
fn range_len(text: &str) -> Option<usize> {
    let close = text.find(']')?;
    let inner = text.strip_prefix('[')?.get(..close - 1)?;
    let mut parts = inner.split(':');
    let (start, end, step) = (parts.next()?, parts.next()?, parts.next());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let letter = |s: &str| s.len() == 1 && s.bytes().all(|b| b.is_ascii_alphabetic());
    let bounds = (digits(start) && digits(end)) || (letter(start) && letter(end));
    (bounds && step.is_none_or(digits) && parts.next().is_none()).then_some(close + 1)
}

/// Ansible's host name: dot-separated labels of word characters, `-` and
/// ranges, each starting with a word character or a range and not ending
/// with `-` or `_`. IPv4 addresses are host names too.
fn is_hostname(host: &str) -> bool {
    !host.is_empty() && split_labels(host).is_some_and(|labels| labels.iter().all(|l| is_label(l)))
}

/// Splits at dots outside brackets.
fn split_labels(host: &str) -> Option<Vec<&str>> {
    let mut labels = Vec::new();
    let (mut start, mut depth) = (0, 0usize);
    for (i, c) in host.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.checked_sub(1)?,
            '.' if depth == 0 => {
                labels.push(&host[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    labels.push(&host[start..]);
    Some(labels)
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_label(label: &str) -> bool {
    let mut at = 0;
    let mut last = None;
    while at < label.len() {
        let rest = &label[at..];
        if rest.starts_with('[') {
            let Some(len) = range_len(rest) else {
                return false;
            };
            at += len;
            last = Some(']');
            continue;
        }
        let Some(c) = rest.chars().next() else {
            return false;
        };
        let allowed = is_word(c) || (c == '-' && at > 0);
        if !allowed {
            return false;
        }
        at += c.len_utf8();
        last = Some(c);
    }
    last.is_some_and(|c| c != '-' && c != '_')
}

/// An IPv6 address, hexadecimal ranges (`[0:f]`) allowed in place of a part.
fn is_ipv6(host: &str) -> bool {
    let mut plain = String::new();
    let mut rest = host;
    while let Some(open) = rest.find('[') {
        plain.push_str(&rest[..open]);
        let Some(close) = rest[open..].find(']').map(|i| open + i) else {
            return false;
        };
        let mut parts = rest[open + 1..close].split(':');
        let hex = |s: Option<&str>| {
            s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
        };
        let (start, end, step) = (parts.next(), parts.next(), parts.next());
        let step_ok = step.is_none_or(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        if !(hex(start) && hex(end) && step_ok && parts.next().is_none()) {
            return false;
        }
        plain.push('0');
        rest = &rest[close + 1..];
    }
    plain.push_str(rest);
    !plain.contains('%') && plain.contains(':') && plain.parse::<Ipv6Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(key: &str) -> (&str, Option<&str>) {
        let address = split(key);
        (address.host, address.port)
    }

    #[test]
    fn a_port_after_a_host_name_or_ipv4_is_split_off() {
        assert_eq!(
            parts("badwolf.example.com:5309"),
            ("badwolf.example.com", Some("5309"))
        );
        assert_eq!(parts("10.0.0.1:22"), ("10.0.0.1", Some("22")));
        assert_eq!(parts("web[01:03]:2222"), ("web[01:03]", Some("2222")));
        assert_eq!(parts("db-[a:C].dc:22"), ("db-[a:C].dc", Some("22")));
        assert_eq!(parts("plain"), ("plain", None));
    }

    #[test]
    fn ipv6_takes_a_port_only_in_brackets() {
        assert_eq!(parts("[2001:db8::1]:2222"), ("2001:db8::1", Some("2222")));
        assert_eq!(parts("2001:db8::1"), ("2001:db8::1", None));
        assert_eq!(parts("fe80::1:22"), ("fe80::1:22", None));
        assert_eq!(parts("::1"), ("::1", None));
        assert_eq!(
            parts("[host.example.com]:22"),
            ("host.example.com", Some("22"))
        );
        assert_eq!(parts("2001:db8::[1:3]"), ("2001:db8::[1:3]", None));
    }

    #[test]
    fn a_key_whose_host_part_is_no_host_stays_whole() {
        assert_eq!(parts("bad_:22"), ("bad_:22", None));
        assert_eq!(parts("-x:22"), ("-x:22", None));
        assert_eq!(parts("my host:22"), ("my host:22", None));
        assert_eq!(parts("a:b"), ("a:b", None));
        assert_eq!(parts("h:"), ("h:", None));
        assert_eq!(parts("h[1:x]:22"), ("h[1:x]:22", None));
        assert_eq!(parts("[2001:db8::1]"), ("[2001:db8::1]", None));
    }
}
