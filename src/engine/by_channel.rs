//! The keys of a reflector's objects by the channel that delivered them
//! (their `kubemint.io/channel` label), kept beside the store. A pass reads
//! its own few objects through it instead of walking the objects of every
//! channel: with a thousand channels, walking would make each round of
//! passes cost a million object visits.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// Object keys by channel label, and each key's label.
#[derive(Debug)]
pub struct ByChannel<R: Hash + Eq + Clone> {
    keys: HashMap<String, HashSet<R>>,
    label_of: HashMap<R, String>,
}

impl<R: Hash + Eq + Clone> Default for ByChannel<R> {
    fn default() -> Self {
        ByChannel {
            keys: HashMap::new(),
            label_of: HashMap::new(),
        }
    }
}

impl<R: Hash + Eq + Clone> ByChannel<R> {
    /// Records object `key` as labelled `label` now (`None`: no channel's).
    pub fn put(&mut self, key: R, label: Option<&str>) {
        if self.label_of.get(&key).map(String::as_str) == label {
            return;
        }
        self.remove(&key);
        if let Some(label) = label {
            self.keys
                .entry(label.to_string())
                .or_default()
                .insert(key.clone());
            self.label_of.insert(key, label.to_string());
        }
    }

    /// Forgets object `key` (deleted).
    pub fn remove(&mut self, key: &R) {
        let Some(label) = self.label_of.remove(key) else {
            return;
        };
        if let Some(keys) = self.keys.get_mut(&label) {
            keys.remove(key);
            if keys.is_empty() {
                self.keys.remove(&label);
            }
        }
    }

    /// Starts over from every object the store holds (after a re-list).
    pub fn rebuild<'a>(&mut self, objects: impl IntoIterator<Item = (R, Option<&'a str>)>) {
        self.keys.clear();
        self.label_of.clear();
        for (key, label) in objects {
            self.put(key, label);
        }
    }

    /// The keys of channel `label`'s objects.
    pub fn keys(&self, label: &str) -> Vec<R> {
        self.keys
            .get(label)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut v: Vec<&'static str>) -> Vec<&'static str> {
        v.sort_unstable();
        v
    }

    #[test]
    fn objects_are_found_by_their_channel_as_labels_change() {
        let mut index: ByChannel<&str> = ByChannel::default();
        index.put("shop/web", Some("shop.web"));
        index.put("shop/web-config", Some("shop.web"));
        index.put("shop/api", Some("shop.api"));
        index.put("shop/by-hand", None);
        assert_eq!(
            sorted(index.keys("shop.web")),
            ["shop/web", "shop/web-config"]
        );
        assert_eq!(index.keys("shop.api"), ["shop/api"]);
        assert!(index.keys("shop.none").is_empty());

        // Relabelled (adopted by another channel), then deleted.
        index.put("shop/web-config", Some("shop.api"));
        assert_eq!(index.keys("shop.web"), ["shop/web"]);
        assert_eq!(
            sorted(index.keys("shop.api")),
            ["shop/api", "shop/web-config"]
        );
        index.remove(&"shop/web");
        assert!(index.keys("shop.web").is_empty());
        assert!(!index.keys.contains_key("shop.web"), "empty sets go");

        // A label taken off: no channel's any more.
        index.put("shop/api", None);
        assert_eq!(index.keys("shop.api"), ["shop/web-config"]);

        // A re-list replaces everything.
        index.rebuild([("blog/site", Some("blog.site"))]);
        assert!(index.keys("shop.api").is_empty());
        assert_eq!(index.keys("blog.site"), ["blog/site"]);
    }
}
