//! A fake service's memory with a hard cap: entries by id and by their client's idempotency key,
//! kept in arrival order. When the cap is reached the oldest *finished* entry (the caller says
//! what finished means) is forgotten, key included, to make room. When none of the oldest
//! [`EVICTION_SCAN`] is finished the new entry is refused, so the cap holds without an unbounded
//! scan under the lock.

use std::collections::{HashMap, VecDeque};

/// How many of the oldest entries eviction looks at.
pub const EVICTION_SCAN: usize = 1024;

/// An entry: found by its own id and by the idempotency key its client sent.
pub trait Keyed {
    fn id(&self) -> &str;
    fn key(&self) -> &str;
}

/// The cap was reached and nothing old enough could be forgotten.
#[derive(Debug)]
pub struct Full;

/// Every entry a service remembers.
pub struct Books<T> {
    entries: HashMap<String, T>,
    /// idempotency key → id
    by_key: HashMap<String, String>,
    /// Ids, oldest first.
    order: VecDeque<String>,
}

impl<T> Default for Books<T> {
    fn default() -> Self {
        Books { entries: HashMap::new(), by_key: HashMap::new(), order: VecDeque::new() }
    }
}

impl<T: Keyed> Books<T> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        self.entries.get_mut(id)
    }

    pub fn by_key_mut(&mut self, key: &str) -> Option<&mut T> {
        let id = self.by_key.get(key)?;
        self.entries.get_mut(id)
    }

    /// Stores `entry`, first forgetting the oldest entry for which `finished` holds while `max`
    /// are kept.
    pub fn insert(&mut self, entry: T, max: usize, mut finished: impl FnMut(&mut T) -> bool) -> Result<(), Full> {
        while self.entries.len() >= max {
            self.evict_one(&mut finished)?;
        }
        self.by_key.insert(entry.key().to_owned(), entry.id().to_owned());
        self.order.push_back(entry.id().to_owned());
        self.entries.insert(entry.id().to_owned(), entry);
        Ok(())
    }

    fn evict_one(&mut self, finished: &mut impl FnMut(&mut T) -> bool) -> Result<(), Full> {
        let mut found = None;
        for (i, id) in self.order.iter().take(EVICTION_SCAN).enumerate() {
            if self.entries.get_mut(id).is_none_or(&mut *finished) {
                found = Some(i);
                break;
            }
        }
        let id = found.and_then(|i| self.order.remove(i)).ok_or(Full)?;
        if let Some(e) = self.entries.remove(&id) {
            self.by_key.remove(e.key());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E {
        id: String,
        key: String,
        done: bool,
    }

    impl Keyed for E {
        fn id(&self) -> &str {
            &self.id
        }
        fn key(&self) -> &str {
            &self.key
        }
    }

    fn e(n: usize, done: bool) -> E {
        E { id: format!("id-{n}"), key: format!("key-{n}"), done }
    }

    #[test]
    fn the_oldest_finished_entry_makes_room_and_takes_its_key_along() {
        let mut books = Books::default();
        books.insert(e(0, false), 2, |e: &mut E| e.done).unwrap();
        books.insert(e(1, true), 2, |e: &mut E| e.done).unwrap();
        books.insert(e(2, true), 2, |e: &mut E| e.done).unwrap();
        assert_eq!(books.len(), 2);
        assert!(books.get_mut("id-0").is_some(), "an unfinished entry is kept");
        assert!(books.get_mut("id-1").is_none() && books.by_key_mut("key-1").is_none());
        assert!(books.by_key_mut("key-2").is_some());
    }

    #[test]
    fn a_memory_full_of_unfinished_entries_refuses_new_ones() {
        let mut books = Books::default();
        books.insert(e(0, false), 2, |e: &mut E| e.done).unwrap();
        books.insert(e(1, false), 2, |e: &mut E| e.done).unwrap();
        assert!(books.insert(e(2, true), 2, |e: &mut E| e.done).is_err());
        assert_eq!(books.len(), 2);
    }
}
