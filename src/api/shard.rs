//! Shards: which operator reconciles which channel. `kubemint run --shard KEY`
//! takes the channels labelled `kubemint.io/shard=KEY`; without `--shard` it
//! takes those without the label (as Flux's sharding does). Pure decisions, so
//! every place that picks channels (the controller's watch, the webhook
//! receivers) agrees.

use std::collections::BTreeMap;

/// The label that assigns a channel to a shard.
pub const SHARD_LABEL: &str = "kubemint.io/shard";

/// Longest shard key: it ends up in Lease, Deployment and pod names.
pub const MAX_SHARD_KEY: usize = 40;

/// The shard an operator serves: `None` is the unsharded operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Shard(Option<String>);

/// Why a `--shard` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not a lowercase DNS label of at most [`MAX_SHARD_KEY`] characters.
    #[error("shard key '{0}' is not usable: use 1 to {MAX_SHARD_KEY} lowercase letters, digits and '-', starting and ending with a letter or digit (it names the shard's Lease and Deployment)")]
    Invalid(String),
}

impl Shard {
    /// The unsharded operator: channels without the label.
    pub fn unsharded() -> Self {
        Shard(None)
    }

    /// Shard `key`, checked: a lowercase DNS label, so that the Lease and
    /// Deployment names derived from it are valid too.
    pub fn parse(key: &str) -> Result<Self, ShardError> {
        let valid = !key.is_empty()
            && key.len() <= MAX_SHARD_KEY
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !key.starts_with('-')
            && !key.ends_with('-');
        if valid {
            Ok(Shard(Some(key.to_string())))
        } else {
            Err(ShardError::Invalid(key.to_string()))
        }
    }

    /// The key; `None` for the unsharded operator.
    pub fn key(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The label selector of this shard's channels, for watches and lists.
    pub fn selector(&self) -> String {
        match &self.0 {
            Some(key) => format!("{SHARD_LABEL}={key}"),
            None => format!("!{SHARD_LABEL}"),
        }
    }

    /// Whether a channel with `labels` is this shard's: the same decision as
    /// [`Shard::selector`], for objects already in hand.
    pub fn owns(&self, labels: &BTreeMap<String, String>) -> bool {
        labels.get(SHARD_LABEL).map(String::as_str) == self.key()
    }

    /// How logs and messages name it: `shard a`, or `unsharded`.
    pub fn describe(&self) -> String {
        match &self.0 {
            Some(key) => format!("shard {key}"),
            None => "unsharded".to_string(),
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_are_lowercase_dns_labels() {
        for ok in ["a", "team-1", "0", "eu-west-3"] {
            assert_eq!(Shard::parse(ok).unwrap().key(), Some(ok), "{ok}");
        }
        let long = "a".repeat(MAX_SHARD_KEY + 1);
        for bad in ["", "A", "team_1", "-a", "a-", "a.b", "a b", long.as_str()] {
            let err = Shard::parse(bad).unwrap_err();
            assert!(err.to_string().contains("lowercase"), "{bad}: {err}");
        }
    }

    #[test]
    fn selectors_take_the_shard_or_the_unlabelled() {
        assert_eq!(Shard::parse("a").unwrap().selector(), "kubemint.io/shard=a");
        assert_eq!(Shard::unsharded().selector(), "!kubemint.io/shard");
    }

    #[test]
    fn each_channel_has_exactly_one_owner() {
        let shards = [
            Shard::unsharded(),
            Shard::parse("a").unwrap(),
            Shard::parse("b").unwrap(),
        ];
        // (labels, index of the owner among `shards`, or None: no running shard)
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<usize>);
        let cases: [Case; 6] = [
            (&[], Some(0)),
            (&[("app", "web")], Some(0)),
            (&[(SHARD_LABEL, "a")], Some(1)),
            (&[(SHARD_LABEL, "b"), ("app", "web")], Some(2)),
            (&[(SHARD_LABEL, "c")], None),
            // An empty value is a label: not the unsharded operator's (as `!key` says).
            (&[(SHARD_LABEL, "")], None),
        ];
        for (pairs, owner) in cases {
            let owners: Vec<usize> = (0..shards.len())
                .filter(|&i| shards[i].owns(&labels(pairs)))
                .collect();
            assert_eq!(owners, owner.into_iter().collect::<Vec<_>>(), "{pairs:?}");
        }
    }

    #[test]
    fn shards_describe_themselves() {
        assert_eq!(Shard::parse("a").unwrap().to_string(), "shard a");
        assert_eq!(Shard::unsharded().to_string(), "unsharded");
    }
}
