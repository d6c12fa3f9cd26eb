//! Exact money: pico-dollars in a u64.
use std::ops::Add;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Usd(u64);

impl Add for Usd {
    type Output = Usd;
    fn add(self, other: Usd) -> Usd {
        Usd(self.0.saturating_add(other.0))
    }
}

fn worst_case(input: u64, output: u64, rates: &[u64; 2]) -> Option<u64> {
    input.checked_mul(rates[0])?.checked_add(output.checked_mul(rates[1])?)
}

fn main() {
    let total: Vec<_> = (0..10u64).map(|i| i * 1_000_000).filter(|&x| x % 3 == 0).collect();
    println!("{total:?} {:>8.4}", 0.9_f64);
    match worst_case(50_000, 50_000, &[3_000_000, 15_000_000]) {
        Some(p) if p > 0 => eprintln!("${:.2}", p as f64 / 1e12),
        _ => unreachable!(),
    }
}
