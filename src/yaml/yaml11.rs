//! What a plain scalar means under YAML 1.1, as PyYAML (and so Ansible)
//! reads inventories: `yes`/`on`/`Off` are booleans, `0755` is octal,
//! `1_000` and `1:30` (base 60) are numbers, `2001-12-14` is a date, while
//! `1e3` (no dot) and `0o17` stay strings.
//!
//! Values a JSON number cannot hold keep the text Ansible shows for them:
//! integers past 64 bits become their decimal digits, `.inf`/`.nan` the text
//! `inf`, `-inf`, `nan` (what Ansible's templates render), and timestamps the
//! ISO 8601 text `ansible-inventory --list` prints.

use super::tree::CoreTag;

/// A plain scalar's meaning under YAML 1.1.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    /// A string that differs from the text as written (a date, a huge
    /// integer, infinity).
    Converted(String),
    /// The text as written.
    Text,
}

/// A plain scalar PyYAML refuses to read; Ansible then refuses the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

/// Resolves the plain scalar `text` as PyYAML's implicit resolvers do.
pub fn resolve(text: &str) -> Result<Scalar, Unreadable> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Scalar::Null),
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Ok(Scalar::Bool(true))
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Ok(Scalar::Bool(false))
        }
        "=" => {
            return Err(Unreadable(
                "a plain `=` is YAML 1.1's value key, which Ansible cannot read; quote it"
                    .to_string(),
            ))
        }
        _ => {}
    }
    if is_float(text) {
        return float(text);
    }
    if is_int(text) {
        return int(text);
    }
    if let Some(stamp) = timestamp(text) {
        return stamp.map(Scalar::Converted);
    }
    Ok(Scalar::Text)
}

/// The value a core tag (`!!int "12"`) builds from `text`, as PyYAML builds it.
pub fn construct(tag: CoreTag, text: &str) -> Result<Scalar, Unreadable> {
    match tag {
        CoreTag::Null => Ok(Scalar::Null),
        CoreTag::Int => int(text),
        CoreTag::Float => float(text),
        CoreTag::Bool => match text.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" => Ok(Scalar::Bool(true)),
            "no" | "false" | "off" => Ok(Scalar::Bool(false)),
            _ => Err(Unreadable(format!(
                "`{text}` is tagged `!!bool` but is none of yes, no, true, false, on, off"
            ))),
        },
    }
}

fn split_sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

fn all(text: &str, allowed: impl Fn(u8) -> bool) -> bool {
    text.bytes().all(allowed)
}

fn digit_or_underscore(b: u8) -> bool {
    b.is_ascii_digit() || b == b'_'
}

/// `(:[0-5]?[0-9])+`: the base-60 parts after the first.
fn sexagesimal_tail(parts: &[&str]) -> bool {
    !parts.is_empty()
        && parts.iter().all(|part| match part.as_bytes() {
            [d] => d.is_ascii_digit(),
            [t, d] => (b'0'..=b'5').contains(t) && d.is_ascii_digit(),
            _ => false,
        })
}

/// PyYAML's int pattern.
fn is_int(text: &str) -> bool {
    let (_, body) = split_sign(text);
    if let Some(bits) = body.strip_prefix("0b") {
        return !bits.is_empty() && all(bits, |b| matches!(b, b'0' | b'1' | b'_'));
    }
    if let Some(hex) = body.strip_prefix("0x") {
        return !hex.is_empty() && all(hex, |b| b.is_ascii_hexdigit() || b == b'_');
    }
    if let Some(octal) = body.strip_prefix('0') {
        return all(octal, |b| (b'0'..=b'7').contains(&b) || b == b'_');
    }
    let parts: Vec<&str> = body.split(':').collect();
    let first = parts[0];
    first.starts_with(|c: char| ('1'..='9').contains(&c))
        && all(first, digit_or_underscore)
        && (parts.len() == 1 || sexagesimal_tail(&parts[1..]))
}

/// PyYAML's float pattern (an exponent needs a dot and a signed power).
fn is_float(text: &str) -> bool {
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (_, body) = split_sign(text);
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    let mantissa_ok = |mantissa: &str, signed: bool| -> bool {
        match mantissa.split_once('.') {
            // `[0-9][0-9_]*\.[0-9_]*`
            Some((whole, fraction)) if !whole.is_empty() => {
                whole.starts_with(|c: char| c.is_ascii_digit())
                    && all(whole, digit_or_underscore)
                    && all(fraction, digit_or_underscore)
            }
            // `\.[0-9_]+`, never signed
            Some((_, fraction)) => {
                !signed && !fraction.is_empty() && all(fraction, digit_or_underscore)
            }
            None => false,
        }
    };
    let signed = body.len() != text.len();
    // Base 60: `[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*`
    if body.contains(':') {
        let parts: Vec<&str> = body.split(':').collect();
        let (last, middle) = parts[1..].split_last().unwrap_or((&"", &[]));
        let Some((seconds, fraction)) = last.split_once('.') else {
            return false;
        };
        let mut tail: Vec<&str> = middle.to_vec();
        tail.push(seconds);
        return parts[0].starts_with(|c: char| c.is_ascii_digit())
            && all(parts[0], digit_or_underscore)
            && sexagesimal_tail(&tail)
            && all(fraction, digit_or_underscore);
    }
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let exponent_ok = exponent.is_none_or(|power| {
        power.len() > 1 && power.starts_with(['+', '-']) && all(&power[1..], |b| b.is_ascii_digit())
    });
    mantissa_ok(mantissa, signed) && exponent_ok
}

fn float(text: &str) -> Result<Scalar, Unreadable> {
    let cleaned = text.replace('_', "").to_ascii_lowercase();
    let (negative, body) = split_sign(&cleaned);
    let sign = if negative { -1.0 } else { 1.0 };
    let value = match body {
        ".inf" => f64::INFINITY,
        ".nan" => f64::NAN,
        _ if body.contains(':') => {
            let mut value = 0.0;
            for part in body.split(':') {
                let part: f64 = part.parse().map_err(|_| not_a_number(text))?;
                value = value * 60.0 + part;
            }
            value
        }
        _ => body.parse().map_err(|_| not_a_number(text))?,
    };
    let value = sign * value;
    Ok(match value {
        v if v.is_nan() => Scalar::Converted("nan".to_string()),
        v if v.is_infinite() && v > 0.0 => Scalar::Converted("inf".to_string()),
        v if v.is_infinite() => Scalar::Converted("-inf".to_string()),
        v => Scalar::Float(v),
    })
}

fn not_a_number(text: &str) -> Unreadable {
    Unreadable(format!(
        "`{text}` reads as a number under YAML 1.1, as Ansible reads inventories, but is not one; quote it"
    ))
}

fn int(text: &str) -> Result<Scalar, Unreadable> {
    let cleaned = text.replace('_', "");
    let (negative, body) = split_sign(&cleaned);
    let mut value = Big::default();
    let digits = |value: &mut Big, digits: &str, radix: u32| -> Result<(), Unreadable> {
        if digits.is_empty() {
            return Err(not_a_number(text));
        }
        for c in digits.chars() {
            let digit = c.to_digit(radix).ok_or_else(|| not_a_number(text))?;
            value.mul_add(radix, digit);
        }
        Ok(())
    };
    if let Some(bits) = body.strip_prefix("0b") {
        digits(&mut value, bits, 2)?;
    } else if let Some(hex) = body.strip_prefix("0x") {
        digits(&mut value, hex, 16)?;
    } else if body.len() > 1 && body.starts_with('0') {
        digits(&mut value, body, 8)?;
    } else if body.contains(':') {
        for (i, part) in body.split(':').enumerate() {
            if i > 0 {
                value.mul_add(60, 0);
                let part: u32 = part.parse().map_err(|_| not_a_number(text))?;
                value.add(part);
            } else {
                digits(&mut value, part, 10)?;
            }
        }
    } else {
        digits(&mut value, body, 10)?;
    }
    Ok(value.into_scalar(negative))
}

/// An unsigned integer of any size, in base 10^9 limbs, lowest first.
#[derive(Default)]
struct Big(Vec<u32>);

const LIMB: u64 = 1_000_000_000;

impl Big {
    fn mul_add(&mut self, factor: u32, addend: u32) {
        let mut carry = u64::from(addend);
        for limb in &mut self.0 {
            let value = u64::from(*limb) * u64::from(factor) + carry;
            *limb = (value % LIMB) as u32;
            carry = value / LIMB;
        }
        while carry > 0 {
            self.0.push((carry % LIMB) as u32);
            carry /= LIMB;
        }
    }

    fn add(&mut self, addend: u32) {
        self.mul_add(1, addend);
    }

    fn decimal(&self) -> String {
        let mut limbs = self.0.iter().rev().skip_while(|&&limb| limb == 0);
        let Some(first) = limbs.next() else {
            return "0".to_string();
        };
        let mut text = first.to_string();
        for limb in limbs {
            text.push_str(&format!("{limb:09}"));
        }
        text
    }

    fn into_scalar(self, negative: bool) -> Scalar {
        let decimal = self.decimal();
        let parsed = decimal.parse::<u64>().ok();
        match (negative, parsed) {
            (false, Some(n)) => Scalar::Unsigned(n),
            (true, Some(0)) => Scalar::Unsigned(0),
            (true, Some(n)) if n <= i64::MAX as u64 + 1 => Scalar::Signed((-i128::from(n)) as i64),
            (false, None) => Scalar::Converted(decimal),
            (true, _) => Scalar::Converted(format!("-{decimal}")),
        }
    }
}

/// PyYAML's timestamp: `None` when `text` is not one, the ISO 8601 text
/// Python's `isoformat()` gives it otherwise.
fn timestamp(text: &str) -> Option<Result<String, Unreadable>> {
    let b = text.as_bytes();
    let digits = |from: usize, to: usize| {
        b.get(from..to)
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    if !(digits(0, 4) && b.get(4) == Some(&b'-')) {
        return None;
    }
    // Year-month-day; month and day take one or two digits only with a time.
    let mut at = 5;
    let number = |at: &mut usize, max: usize| -> Option<(u32, usize)> {
        let start = *at;
        while *at < b.len() && b[*at].is_ascii_digit() && *at - start < max {
            *at += 1;
        }
        (*at > start).then(|| (text[start..*at].parse().ok().unwrap_or(0), *at - start))
    };
    let year: i32 = text[..4].parse().ok()?;
    let (month, month_width) = number(&mut at, 2)?;
    if b.get(at) != Some(&b'-') {
        return None;
    }
    at += 1;
    let (day, day_width) = number(&mut at, 2)?;
    let short = month_width == 1 || day_width == 1;
    if at == b.len() {
        if short {
            return None;
        }
        return Some(date(text, year, month, day).map(|d| d.to_string()));
    }
    // The time: `T`, `t` or blanks, then H:MM:SS, a fraction, a zone.
    match b[at] {
        b'T' | b't' => at += 1,
        b' ' | b'\t' => {
            while at < b.len() && matches!(b[at], b' ' | b'\t') {
                at += 1;
            }
        }
        _ => return None,
    }
    let (hour, _) = number(&mut at, 2)?;
    let two = |at: &mut usize| -> Option<u32> {
        if b.get(*at) != Some(&b':') || !digits(*at + 1, *at + 3) {
            return None;
        }
        *at += 3;
        text[*at - 2..*at].parse().ok()
    };
    let minute = two(&mut at)?;
    let second = two(&mut at)?;
    let mut micros = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            at += 1;
        }
        let fraction: String = format!("{:0<6}", &text[start..at.min(start + 6)]);
        micros = fraction.parse().unwrap_or(0);
    }
    while at < b.len() && matches!(b[at], b' ' | b'\t') {
        at += 1;
    }
    let zone = match b.get(at) {
        None if text.ends_with([' ', '\t']) => return None,
        None => None,
        Some(b'Z') if at + 1 == b.len() => Some(0),
        Some(&sign @ (b'+' | b'-')) => {
            at += 1;
            let (hours, _) = number(&mut at, 2)?;
            let minutes = match b.get(at) {
                None => 0,
                Some(b':') if digits(at + 1, at + 3) && at + 3 == b.len() => {
                    text[at + 1..].parse::<i32>().ok()?
                }
                _ => return None,
            };
            if at < b.len() && b[at] != b':' {
                return None;
            }
            let offset = hours as i32 * 60 + minutes;
            Some(if sign == b'-' { -offset } else { offset })
        }
        _ => return None,
    };
    let day = match date(text, year, month, day) {
        Ok(day) => day,
        Err(error) => return Some(Err(error)),
    };
    if hour > 23 || minute > 59 || second > 59 {
        return Some(Err(bad_time(text)));
    }
    let mut iso = format!("{day}T{hour:02}:{minute:02}:{second:02}");
    if micros > 0 {
        iso.push_str(&format!(".{micros:06}"));
    }
    if let Some(offset) = zone {
        if offset.abs() >= 24 * 60 {
            return Some(Err(bad_time(text)));
        }
        let sign = if offset < 0 { '-' } else { '+' };
        let offset = offset.abs();
        iso.push_str(&format!("{sign}{:02}:{:02}", offset / 60, offset % 60));
    }
    Some(Ok(iso))
}

/// A calendar date, `YYYY-MM-DD`.
struct Date(i32, u32, u32);

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.0, self.1, self.2)
    }
}

fn date(text: &str, year: i32, month: u32, day: u32) -> Result<Date, Unreadable> {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    if year < 1 || day < 1 || day > days {
        return Err(Unreadable(format!(
            "`{text}` reads as a date under YAML 1.1, as Ansible reads inventories, but there is no such day; quote it"
        )));
    }
    Ok(Date(year, month, day))
}

fn bad_time(text: &str) -> Unreadable {
    Unreadable(format!(
        "`{text}` reads as a timestamp under YAML 1.1, as Ansible reads inventories, but is not a valid time; quote it"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Scalar {
        resolve(text).unwrap()
    }

    fn converted(text: &str) -> String {
        match read(text) {
            Scalar::Converted(s) => s,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn booleans_are_the_yaml_1_1_words() {
        for text in [
            "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE",
        ] {
            assert_eq!(read(text), Scalar::Bool(true), "{text}");
        }
        for text in [
            "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE",
        ] {
            assert_eq!(read(text), Scalar::Bool(false), "{text}");
        }
        for text in ["yEs", "y", "n", "oN", "tRUE"] {
            assert_eq!(read(text), Scalar::Text, "{text}");
        }
    }

    #[test]
    fn integers_in_every_base() {
        assert_eq!(read("0755"), Scalar::Unsigned(493));
        assert_eq!(read("0_7"), Scalar::Unsigned(7));
        assert_eq!(read("0x1F"), Scalar::Unsigned(31));
        assert_eq!(read("-0x1f"), Scalar::Signed(-31));
        assert_eq!(read("0b101"), Scalar::Unsigned(5));
        assert_eq!(read("1_000"), Scalar::Unsigned(1000));
        assert_eq!(read("1:30"), Scalar::Unsigned(90));
        assert_eq!(read("190:20:30"), Scalar::Unsigned(685_230));
        assert_eq!(read("+12"), Scalar::Unsigned(12));
        assert_eq!(read("-0"), Scalar::Unsigned(0));
        assert_eq!(read("0"), Scalar::Unsigned(0));
        assert_eq!(read("-9223372036854775808"), Scalar::Signed(i64::MIN));
        assert_eq!(read("18446744073709551615"), Scalar::Unsigned(u64::MAX));
        for text in ["0o17", "09", "1e3", "1.5e3", "1:60", "0x", "--1", "1_000x"] {
            assert_eq!(read(text), Scalar::Text, "{text}");
        }
    }

    #[test]
    fn integers_past_64_bits_keep_their_digits() {
        assert_eq!(
            converted("123456789012345678901234567890"),
            "123456789012345678901234567890"
        );
        assert_eq!(converted("-18446744073709551616"), "-18446744073709551616");
        assert_eq!(converted("0x1_0000_0000_0000_0000"), "18446744073709551616");
        assert_eq!(converted("-9223372036854775809"), "-9223372036854775809");
    }

    #[test]
    fn floats_need_a_dot_and_a_signed_exponent() {
        assert_eq!(read("1.5e+3"), Scalar::Float(1500.0));
        assert_eq!(read("1."), Scalar::Float(1.0));
        assert_eq!(read(".5"), Scalar::Float(0.5));
        assert_eq!(read("1_0.5"), Scalar::Float(10.5));
        assert_eq!(read("1:30.5"), Scalar::Float(90.5));
        assert_eq!(read("-1.25"), Scalar::Float(-1.25));
        for text in ["-.5", "1.5e3", "1e+3", ".", "1.5e+", "inf", "nan"] {
            assert_eq!(read(text), Scalar::Text, "{text}");
        }
        assert_eq!(converted(".inf"), "inf");
        assert_eq!(converted("+.Inf"), "inf");
        assert_eq!(converted("-.INF"), "-inf");
        assert_eq!(converted(".NaN"), "nan");
        assert_eq!(converted("1.0e+999"), "inf");
        assert_eq!(read("-.nan"), Scalar::Text);
    }

    #[test]
    fn timestamps_read_as_python_prints_them() {
        assert_eq!(converted("2001-12-14"), "2001-12-14");
        assert_eq!(
            converted("2001-12-14t21:59:43.10-05:00"),
            "2001-12-14T21:59:43.100000-05:00"
        );
        assert_eq!(
            converted("2001-12-14 21:59:43.10"),
            "2001-12-14T21:59:43.100000"
        );
        assert_eq!(
            converted("2002-12-14T21:59:43Z"),
            "2002-12-14T21:59:43+00:00"
        );
        assert_eq!(converted("2001-1-2 3:04:05"), "2001-01-02T03:04:05");
        assert_eq!(
            converted("2001-01-02T03:04:05.0 +5"),
            "2001-01-02T03:04:05+05:00"
        );
        for text in [
            "2001-1-2",
            "2001-01-02T",
            "2001-01-02x",
            "2001-01-02T3:4:05",
            "01-01-01",
        ] {
            assert_eq!(read(text), Scalar::Text, "{text}");
        }
        assert_eq!(
            resolve("2001-2-29 1:00:00").unwrap_err().0,
            "`2001-2-29 1:00:00` reads as a date under YAML 1.1, as Ansible reads inventories, but there is no such day; quote it"
        );
        assert!(resolve("2001-01-01 24:00:00").is_err());
        assert_eq!(converted("2000-02-29"), "2000-02-29");
    }

    #[test]
    fn core_tags_build_their_type_whatever_the_style() {
        assert_eq!(construct(CoreTag::Int, "12"), Ok(Scalar::Unsigned(12)));
        assert_eq!(construct(CoreTag::Int, "0755"), Ok(Scalar::Unsigned(493)));
        assert_eq!(construct(CoreTag::Float, "1"), Ok(Scalar::Float(1.0)));
        assert_eq!(construct(CoreTag::Bool, "OfF"), Ok(Scalar::Bool(false)));
        assert_eq!(construct(CoreTag::Null, "x"), Ok(Scalar::Null));
        assert!(construct(CoreTag::Int, "twelve").is_err());
        assert!(construct(CoreTag::Bool, "y").is_err());
    }

    #[test]
    fn nulls_and_the_value_key() {
        for text in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(read(text), Scalar::Null);
        }
        assert!(resolve("=").unwrap_err().0.contains("quote it"));
        assert!(resolve("0b").is_ok_and(|s| s == Scalar::Text));
    }
}
