//! Batch sizes as written in `rolling.batch` and `--batch`: a number, a
//! percentage of the targeted hosts, or a list whose last entry repeats.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// One entry of a batch list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BatchSize {
    Hosts(usize),
    Percent(f64),
}

/// The whole batch specification; the last entry repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSpec(pub Vec<BatchSize>);

impl BatchSize {
    pub fn parse(text: &str) -> Result<BatchSize, String> {
        let text = text.trim();
        if let Some(number) = text.strip_suffix('%') {
            let percent: f64 = number.trim().parse().map_err(|_| {
                format!("invalid batch size `{text}`: expected a number or a percentage like 25%")
            })?;
            if !(percent > 0.0 && percent <= 100.0) {
                return Err(format!(
                    "invalid batch size `{text}`: a percentage must be above 0% and at most 100%"
                ));
            }
            return Ok(BatchSize::Percent(percent));
        }
        match text.parse::<usize>() {
            Ok(0) => Err("invalid batch size `0`: every batch has at least one host".to_string()),
            Ok(n) => Ok(BatchSize::Hosts(n)),
            Err(_) => Err(format!(
                "invalid batch size `{text}`: expected a number or a percentage like 25%"
            )),
        }
    }

    /// Hosts in a batch of this size, out of `total` targeted hosts (at least one).
    pub fn hosts_of(self, total: usize) -> usize {
        let n = match self {
            BatchSize::Hosts(n) => n,
            BatchSize::Percent(p) => ((total as f64) * p / 100.0).floor() as usize,
        };
        n.max(1)
    }
}

impl BatchSpec {
    /// Parses the `--batch` form: `1,25%,100%`.
    pub fn parse(text: &str) -> Result<BatchSpec, String> {
        let sizes = text
            .split(',')
            .map(BatchSize::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BatchSpec(sizes))
    }

    /// Cuts `total` hosts into batch sizes.
    pub fn cut(&self, total: usize) -> Vec<usize> {
        let mut sizes = Vec::new();
        let mut left = total;
        let mut entries = self.0.iter();
        let mut current = entries.next().copied().unwrap_or(BatchSize::Percent(100.0));
        while left > 0 {
            let n = current.hosts_of(total).min(left);
            sizes.push(n);
            left -= n;
            if let Some(next) = entries.next() {
                current = *next;
            }
        }
        sizes
    }
}

impl fmt::Display for BatchSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|s| match s {
                BatchSize::Hosts(n) => n.to_string(),
                BatchSize::Percent(p) => format!("{p}%"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

struct SizeVisitor;
impl Visitor<'_> for SizeVisitor {
    type Value = BatchSize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of hosts or a percentage like \"25%\"")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<BatchSize, E> {
        BatchSize::parse(&v.to_string()).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<BatchSize, E> {
        BatchSize::parse(&v.to_string()).map_err(E::custom)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<BatchSize, E> {
        BatchSize::parse(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for BatchSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SizeVisitor)
    }
}

impl<'de> Deserialize<'de> for BatchSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = BatchSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a batch size or a list of them, like [1, \"25%\", \"100%\"]")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<BatchSpec, E> {
                SizeVisitor.visit_u64(v).map(|s| BatchSpec(vec![s]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<BatchSpec, E> {
                SizeVisitor.visit_i64(v).map(|s| BatchSpec(vec![s]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BatchSpec, E> {
                SizeVisitor.visit_str(v).map(|s| BatchSpec(vec![s]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<BatchSpec, A::Error> {
                let mut sizes = Vec::new();
                while let Some(size) = seq.next_element::<BatchSize>()? {
                    sizes.push(size);
                }
                if sizes.is_empty() {
                    return Err(de::Error::custom("the batch list is empty"));
                }
                Ok(BatchSpec(sizes))
            }
        }
        deserializer.deserialize_any(SpecVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_lists_whose_last_entry_repeats() {
        let spec = BatchSpec::parse("1,25%,100%").unwrap();
        assert_eq!(spec.cut(12), vec![1, 3, 8]);
        assert_eq!(BatchSpec::parse("2").unwrap().cut(7), vec![2, 2, 2, 1]);
        assert_eq!(BatchSpec::parse("25%").unwrap().cut(8), vec![2, 2, 2, 2]);
        assert_eq!(BatchSpec::parse("10%").unwrap().cut(3), vec![1, 1, 1]);
        assert_eq!(BatchSpec::parse("1,5").unwrap().cut(0), Vec::<usize>::new());
        assert_eq!(BatchSpec::parse("100%").unwrap().cut(1), vec![1]);
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(BatchSpec::parse("0")
            .unwrap_err()
            .contains("at least one host"));
        assert!(BatchSpec::parse("150%").is_err());
        assert!(BatchSpec::parse("ten").is_err());
        assert!(BatchSpec::parse("1,,2").is_err());
    }
}

/// `rolling.max_fail`: how many hosts (or what share) may fail before the rollout aborts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FailLimit {
    Hosts(usize),
    Percent(f64),
}

impl FailLimit {
    pub fn parse(text: &str) -> Result<FailLimit, String> {
        let text = text.trim();
        if let Some(number) = text.strip_suffix('%') {
            return match number.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(FailLimit::Percent(p)),
                _ => Err(format!("invalid max_fail `{text}`: expected a number of hosts or a percentage from 0% to 100%")),
            };
        }
        text.parse().map(FailLimit::Hosts).map_err(|_| {
            format!(
                "invalid max_fail `{text}`: expected a number of hosts or a percentage like 10%"
            )
        })
    }

    /// The number of failed hosts tolerated out of `total`.
    pub fn allowed(self, total: usize) -> usize {
        match self {
            FailLimit::Hosts(n) => n,
            FailLimit::Percent(p) => ((total as f64) * p / 100.0).floor() as usize,
        }
    }
}

impl<'de> Deserialize<'de> for FailLimit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LimitVisitor;
        impl Visitor<'_> for LimitVisitor {
            type Value = FailLimit;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of hosts or a percentage like \"10%\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FailLimit, E> {
                Ok(FailLimit::Hosts(v as usize))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FailLimit, E> {
                FailLimit::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FailLimit, E> {
                FailLimit::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(LimitVisitor)
    }
}
