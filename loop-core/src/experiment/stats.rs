//! The few statistics an experiment needs, written out: medians and spreads of samples, and
//! Student's t distribution for the paired test and the drift check.
//!
//! The t quantile is computed from the closed form of the distribution for whole degrees of
//! freedom (Abramowitz and Stegun, 26.7.3 and 26.7.4), inverted by bisection: exact to the
//! float's precision, a few dozen lines, and no statistics crate in loop-core (the well-kept
//! ones bring a linear-algebra library with them).

use std::f64::consts::PI;

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 0 {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// The median absolute deviation from the median, in the samples' own unit: how far a typical
/// sample lies from the middle, untouched by one wild sample. 0 for fewer than two.
pub fn mad(values: &[f64]) -> f64 {
    let Some(middle) = median(values) else {
        return 0.0;
    };
    let deviations: Vec<f64> = values.iter().map(|v| (v - middle).abs()).collect();
    median(&deviations).unwrap_or(0.0)
}

/// The mean and the sample standard deviation (n − 1); `None` for fewer than two values.
pub fn mean_sd(values: &[f64]) -> Option<(f64, f64)> {
    if values.len() < 2 {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let squares: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    Some((mean, (squares / (n - 1.0)).sqrt()))
}

/// P(|T| < t) for Student's t with `df` whole degrees of freedom (≥ 1), t ≥ 0.
fn central_probability(t: f64, df: u32) -> f64 {
    let theta = (t / f64::from(df).sqrt()).atan();
    let (sin, cos) = theta.sin_cos();
    let cos2 = cos * cos;
    if df % 2 == 0 {
        // sinθ · (1 + ½cos²θ + (1·3)/(2·4)cos⁴θ + … up to cos^(df−2)θ)
        let mut term = 1.0;
        let mut sum = 1.0;
        let mut k = 2;
        while k < df {
            term *= f64::from(k - 1) / f64::from(k) * cos2;
            sum += term;
            k += 2;
        }
        sin * sum
    } else {
        // (2/π) · (θ + sinθ · (cosθ + (2/3)cos³θ + … up to cos^(df−2)θ)), just θ for df = 1
        let mut sum = 0.0;
        if df > 1 {
            let mut term = cos;
            sum = cos;
            let mut k = 3;
            while k < df {
                term *= f64::from(k - 1) / f64::from(k) * cos2;
                sum += term;
                k += 2;
            }
        }
        2.0 / PI * (theta + sin * sum)
    }
}

/// The one-sided quantile of Student's t: the `t` with P(T ≤ t) = `p`, for ½ ≤ p < 1 and
/// `df` ≥ 1 whole degrees of freedom.
pub fn t_quantile(p: f64, df: u32) -> f64 {
    let df = df.max(1);
    let p = p.clamp(0.5, 1.0 - 1e-12);
    // P(T ≤ t) = (1 + P(|T| < t)) / 2 grows with θ = atan(t / √df) over [0, π/2): bisect θ.
    let want = 2.0 * p - 1.0;
    let (mut low, mut high) = (0.0_f64, PI / 2.0);
    for _ in 0..200 {
        let mid = (low + high) / 2.0;
        let t = f64::from(df).sqrt() * mid.tan();
        if central_probability(t, df) < want {
            low = mid;
        } else {
            high = mid;
        }
        if high - low < 1e-15 {
            break;
        }
    }
    f64::from(df).sqrt() * ((low + high) / 2.0).tan()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_published_tables() {
        // Values from any table of Student's t (one-sided p, df).
        for (p, df, t) in [
            (0.95, 1, 6.3138),
            (0.95, 2, 2.9200),
            (0.95, 4, 2.1318),
            (0.975, 4, 2.7764),
            (0.95, 9, 1.8331),
            (0.99, 9, 2.8214),
            (0.90, 19, 1.3277),
            (0.95, 30, 1.6973),
            (0.975, 120, 1.9799),
        ] {
            let got = t_quantile(p, df);
            assert!(
                (got - t).abs() < 5e-4,
                "t({p}, {df}) = {got}, tables say {t}"
            );
        }
        assert!((t_quantile(0.95, 100_000) - 1.6449).abs() < 1e-3);
        assert!(t_quantile(0.5, 7).abs() < 1e-12);
    }

    #[test]
    fn medians_spreads_and_means() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        // One wild sample moves neither the median nor the deviation much.
        assert_eq!(mad(&[1.0, 2.0, 3.0, 4.0, 100.0]), 1.0);
        assert_eq!(mad(&[1.0]), 0.0);
        let (mean, sd) = mean_sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).expect("two or more");
        assert_eq!(mean, 5.0);
        assert!((sd - 2.138_089_935).abs() < 1e-9);
        assert_eq!(mean_sd(&[1.0]), None);
    }
}
