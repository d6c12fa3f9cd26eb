//! `--shard K/N`: one of N machines' share of the rows, for a CI matrix. Shard K
//! (1-based) runs the rows whose 0-based index i has `i % N == K - 1`, so the N
//! shards together run every row exactly once, and `merge` puts them back in order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Shard `k` of `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 1-based.
    pub k: u64,
    pub n: u64,
}

impl Shard {
    /// Whether the row at 0-based `index` is this shard's.
    pub fn takes(self, index: u64) -> bool {
        index % self.n == self.k - 1
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wrong = || {
            format!(
                "`{text}` is not a shard; write K/N with 1 <= K <= N, like `2/4` for the second of four"
            )
        };
        let (k, n) = text.split_once('/').ok_or_else(wrong)?;
        let k: u64 = k.trim().parse().map_err(|_| wrong())?;
        let n: u64 = n.trim().parse().map_err(|_| wrong())?;
        if k == 0 || n == 0 || k > n {
            return Err(wrong());
        }
        Ok(Shard { k, n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_take_every_row_once() {
        let shards: Vec<Shard> = (1..=4).map(|k| Shard { k, n: 4 }).collect();
        for index in 0..100 {
            assert_eq!(shards.iter().filter(|s| s.takes(index)).count(), 1);
        }
        assert!(Shard { k: 2, n: 4 }.takes(5));
    }

    #[test]
    fn parses_k_of_n() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { k: 2, n: 4 }));
        for bad in ["0/4", "5/4", "1/0", "a/b", "3", "1/2/3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
