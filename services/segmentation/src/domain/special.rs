//! Special functions the purchase models need: log-gamma and log-beta (from `libm`) and the
//! Gauss hypergeometric function ₂F₁, which no light crate offers.

/// ln Γ(x) for x > 0.
pub fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// ln B(a, b) for a, b > 0.
pub fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// Most terms the ₂F₁ series may take; at |z| = 0.999 the terms shrink by 0.1% each, so
/// this still reaches double precision for the arguments the models produce.
const HYP2F1_MAX_TERMS: usize = 200_000;

/// The Gauss hypergeometric function ₂F₁(a, b; c; z) for 0 ≤ z < 1 by its power series.
///
/// The models only call it with real a, b, c > 0 and 0 ≤ z < 1, where the series converges;
/// the terms are summed until they no longer change the sum in double precision.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    debug_assert!((0.0..1.0).contains(&z), "hyp2f1 needs 0 <= z < 1, got {z}");
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 0..HYP2F1_MAX_TERMS {
        let n = n as f64;
        let ratio = (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        term *= ratio;
        sum += term;
        // Terms may grow before they shrink, so stop only once they are shrinking.
        if term.abs() <= f64::EPSILON * sum.abs() && ratio.abs() < 1.0 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    #[test]
    fn ln_gamma_matches_factorials_and_sqrt_pi() {
        assert!(close(ln_gamma(5.0), 24f64.ln(), 1e-14));
        assert!(close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-14));
    }

    #[test]
    fn hyp2f1_matches_closed_forms() {
        // ₂F₁(1, 1; 2; z) = −ln(1 − z) / z
        for z in [0.1, 0.5, 0.9, 0.99] {
            assert!(close(hyp2f1(1.0, 1.0, 2.0, z), -(1.0 - z).ln() / z, 1e-12), "z = {z}");
        }
        // ₂F₁(a, b; b; z) = (1 − z)^(−a)
        assert!(close(hyp2f1(2.5, 3.0, 3.0, 0.7), 0.3f64.powf(-2.5), 1e-12));
        // ₂F₁(1/2, 1/2; 3/2; z²) = arcsin(z) / z
        let z: f64 = 0.8;
        assert!(close(hyp2f1(0.5, 0.5, 1.5, z * z), z.asin() / z, 1e-12));
        assert_eq!(hyp2f1(3.0, 4.0, 5.0, 0.0), 1.0);
    }
}
