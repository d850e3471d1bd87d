//! Nelder–Mead minimisation, used to fit the purchase and spend models by maximum likelihood
//! on log-transformed parameters (so every parameter stays positive without constraints).

/// Where the search stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    /// The best point found.
    pub point: Vec<f64>,
    /// The objective there.
    pub value: f64,
    /// Objective evaluations spent.
    pub evaluations: usize,
}

/// Minimises `f` from `start` with the Nelder–Mead simplex, restarting from the best point
/// until a restart no longer improves it: a single run can stall on a degenerate simplex,
/// and restarts are the usual cure.
pub fn nelder_mead(mut f: impl FnMut(&[f64]) -> f64, start: &[f64], tolerance: f64, max_evaluations: usize) -> Minimum {
    let mut best = run(&mut f, start, tolerance, max_evaluations);
    let mut spent = best.evaluations;
    while spent < max_evaluations {
        let next = run(&mut f, &best.point, tolerance, max_evaluations - spent);
        spent += next.evaluations;
        let improved = best.value - next.value > tolerance * (1.0 + best.value.abs());
        if next.value < best.value {
            best.point = next.point;
            best.value = next.value;
        }
        if !improved {
            break;
        }
    }
    best.evaluations = spent;
    best
}

fn run(f: &mut impl FnMut(&[f64]) -> f64, start: &[f64], tolerance: f64, max_evaluations: usize) -> Minimum {
    let n = start.len();
    let mut evaluations = 0;
    let mut eval = |x: &[f64], count: &mut usize| {
        *count += 1;
        let v = f(x);
        // A NaN or infinite objective (overflow far from the optimum) counts as very bad.
        if v.is_finite() { v } else { f64::MAX }
    };
    let mut simplex: Vec<Vec<f64>> = vec![start.to_vec()];
    for i in 0..n {
        let mut p = start.to_vec();
        p[i] += if p[i].abs() > 1e-3 { 0.1 * p[i].abs().max(1.0) } else { 0.25 };
        simplex.push(p);
    }
    let mut values: Vec<f64> = simplex.iter().map(|p| eval(p, &mut evaluations)).collect();
    let (alpha, gamma, rho, sigma) = (1.0, 2.0, 0.5, 0.5);
    loop {
        let mut order: Vec<usize> = (0..=n).collect();
        order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
        simplex = order.iter().map(|&i| simplex[i].clone()).collect();
        values = order.iter().map(|&i| values[i]).collect();
        let spread = values[n] - values[0];
        if spread <= tolerance * (1.0 + values[0].abs()) || evaluations >= max_evaluations {
            break;
        }
        let centroid: Vec<f64> = (0..n).map(|j| simplex[..n].iter().map(|p| p[j]).sum::<f64>() / n as f64).collect();
        let towards =
            |t: f64| -> Vec<f64> { (0..n).map(|j| centroid[j] + t * (simplex[n][j] - centroid[j])).collect() };
        let reflected = towards(-alpha);
        let fr = eval(&reflected, &mut evaluations);
        if fr < values[0] {
            let expanded = towards(-gamma);
            let fe = eval(&expanded, &mut evaluations);
            if fe < fr {
                simplex[n] = expanded;
                values[n] = fe;
            } else {
                simplex[n] = reflected;
                values[n] = fr;
            }
        } else if fr < values[n - 1] {
            simplex[n] = reflected;
            values[n] = fr;
        } else {
            let (contracted, fc) = if fr < values[n] {
                let c = towards(-rho);
                let fc = eval(&c, &mut evaluations);
                (c, fc)
            } else {
                let c = towards(rho);
                let fc = eval(&c, &mut evaluations);
                (c, fc)
            };
            if fc < values[n].min(fr) {
                simplex[n] = contracted;
                values[n] = fc;
            } else {
                for i in 1..=n {
                    let shrunk: Vec<f64> =
                        (0..n).map(|j| simplex[0][j] + sigma * (simplex[i][j] - simplex[0][j])).collect();
                    values[i] = eval(&shrunk, &mut evaluations);
                    simplex[i] = shrunk;
                }
            }
        }
    }
    Minimum { point: simplex[0].clone(), value: values[0], evaluations }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nelder_mead_finds_the_rosenbrock_minimum() {
        let rosenbrock = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let min = nelder_mead(rosenbrock, &[-1.2, 1.0], 1e-14, 10_000);
        assert!((min.point[0] - 1.0).abs() < 1e-4 && (min.point[1] - 1.0).abs() < 1e-4, "{min:?}");
    }
}
