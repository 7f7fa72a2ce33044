//! Generated data: the demo data set loaded on first start ([`demo`]) and large data sets for
//! benchmarks ([`scale`]). Both are deterministic: the same seed gives the same values.

pub mod demo;
pub mod scale;

use crate::catalogue::{Breakdown, MetricDefinition};

/// SplitMix64: a small, fast generator whose sequence never changes between releases (which
/// the `rand` crate's default generators do not promise).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [low, high).
    pub(crate) fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }
}

/// How large one metric's values are, and how precisely they are written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Magnitude {
    /// Typical value of one report period for an agency of size 1.
    pub base: f64,
    /// Digits after the decimal point (1 for full-time equivalents, else 0).
    pub decimals: u32,
}

/// A plausible magnitude for `metric`, by the kind of thing it counts.
pub(crate) fn magnitude(metric: &MetricDefinition) -> Magnitude {
    let (base, decimals) = match metric.metric_type.as_str() {
        "FUNDING" | "EXPENSES" => (12_000_000.0, 0),
        "TOTAL_STAFF" => (240.0, 1),
        "CASELOADS_STAFF" => (45.0, 0),
        "CASELOADS_PEOPLE" => (2_400.0, 0),
        "CALLS_FOR_SERVICE" => (7_500.0, 0),
        "ARRESTS" => (420.0, 0),
        "REPORTED_CRIME" => (950.0, 0),
        "COMPLAINTS_SUSTAINED"
        | "GRIEVANCES_UPHELD"
        | "USE_OF_FORCE_INCIDENTS"
        | "VIOLATIONS_WITH_DISCIPLINARY_ACTION"
        | "RECONVICTIONS"
        | "ARRESTS_ON_PRETRIAL_RELEASE" => (60.0, 0),
        "READMISSIONS" => (700.0, 0),
        kind if kind.contains("POPULATION") => (1_100.0, 0),
        _ => (300.0, 0),
    };
    Magnitude { base, decimals }
}

fn round_to(value: f64, decimals: u32) -> f64 {
    let scale = 10f64.powi(decimals as i32);
    (value * scale).round() / scale
}

/// The aggregate value of one period: the base, scaled by agency size, with a slow trend and
/// noise.
pub(crate) fn period_value(magnitude: Magnitude, size: f64, period: usize, rng: &mut Rng) -> f64 {
    let trend = 1.0 + 0.004 * period as f64;
    round_to(
        magnitude.base * size * trend * rng.between(0.88, 1.12),
        magnitude.decimals,
    )
}

/// Splits `total` into `parts` values (at `decimals` precision) that add up to it exactly.
pub(crate) fn split(total: f64, parts: usize, decimals: u32, rng: &mut Rng) -> Vec<f64> {
    if parts == 0 {
        return Vec::new();
    }
    let scale = 10f64.powi(decimals as i32);
    let units = (total * scale).round() as i64;
    // Earlier members get more weight, as the common categories usually come first.
    let weights: Vec<f64> = (0..parts)
        .map(|index| rng.between(0.3, 1.0) / (1.0 + index as f64 * 0.35))
        .collect();
    let sum: f64 = weights.iter().sum();
    let mut shares: Vec<i64> = weights
        .iter()
        .map(|weight| (units as f64 * weight / sum).floor() as i64)
        .collect();
    let remainder = units - shares.iter().sum::<i64>();
    shares[0] += remainder;
    shares
        .into_iter()
        .map(|share| share as f64 / scale)
        .collect()
}

/// One generated value: the aggregate (no dimension) or one breakdown member's.
pub(crate) struct Cell<'a> {
    pub dimension: Option<&'a str>,
    pub member: Option<&'a str>,
    pub value: f64,
}

/// The aggregate of one metric in one period and, for each of `breakdowns`, member values
/// that add up to it.
pub(crate) fn metric_cells<'a>(
    metric: &MetricDefinition,
    breakdowns: &[&'a Breakdown],
    size: f64,
    period: usize,
    rng: &mut Rng,
) -> Vec<Cell<'a>> {
    let magnitude = magnitude(metric);
    let total = period_value(magnitude, size, period, rng);
    let mut cells = vec![Cell {
        dimension: None,
        member: None,
        value: total,
    }];
    for breakdown in breakdowns {
        let values = split(total, breakdown.members.len(), magnitude.decimals, rng);
        cells.extend(
            breakdown
                .members
                .iter()
                .zip(values)
                .map(|(member, value)| Cell {
                    dimension: Some(breakdown.dimension.as_str()),
                    member: Some(member.name.as_str()),
                    value,
                }),
        );
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic() {
        let first: Vec<u64> = (0..5)
            .map({
                let mut rng = Rng::new(7);
                move |_| rng.next_u64()
            })
            .collect();
        let mut rng = Rng::new(7);
        let second: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
        assert_eq!(first, second);
        assert_ne!(first[0], first[1]);
    }

    #[test]
    fn splits_add_up_to_the_total() {
        let mut rng = Rng::new(1);
        for (total, parts, decimals) in [(1234.0, 5, 0), (87.3, 4, 1), (0.0, 3, 0), (7.0, 16, 0)] {
            let values = split(total, parts, decimals, &mut rng);
            assert_eq!(values.len(), parts);
            let sum: f64 = values.iter().sum();
            assert!(
                (sum - total).abs() < 1e-9,
                "{values:?} add up to {sum}, not {total}"
            );
            assert!(values.iter().all(|value| *value >= 0.0), "{values:?}");
        }
    }
}
