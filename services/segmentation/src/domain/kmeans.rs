//! Needs clusters: customers (or anything described by numeric features) grouped by k-means
//! with k-means++ seeding, deterministic for a seed; k chosen by the silhouette unless
//! configured; each cluster described by the features that set it apart from the population.

use super::{ModelError, rng::SplitMix64};

/// Rows of named numeric features, checked once: same width everywhere, finite values.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    names: Vec<String>,
    rows: usize,
    data: Vec<f64>,
}

impl FeatureMatrix {
    /// Builds the matrix from rows; every row needs one finite value per name.
    pub fn new(names: Vec<String>, rows: &[Vec<f64>]) -> Result<Self, ModelError> {
        if names.is_empty() {
            return Err(ModelError::InvalidSetting { name: "features", reason: "at least one feature is needed" });
        }
        let mut data = Vec::with_capacity(rows.len() * names.len());
        for row in rows {
            if row.len() != names.len() || !row.iter().all(|v| v.is_finite()) {
                return Err(ModelError::InvalidSetting {
                    name: "features",
                    reason: "every row needs one finite value per feature",
                });
            }
            data.extend_from_slice(row);
        }
        Ok(Self { names, rows: rows.len(), data })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of features.
    pub fn cols(&self) -> usize {
        self.names.len()
    }

    /// The feature names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols()..(i + 1) * self.cols()]
    }

    /// The same features in standard units (z-scores), so that no feature weighs more merely
    /// for being measured in larger numbers; a constant feature becomes all zeros.
    pub fn standardised(&self) -> Self {
        let (n, d) = (self.rows as f64, self.cols());
        let mut data = self.data.clone();
        for j in 0..d {
            let mean = (0..self.rows).map(|i| self.data[i * d + j]).sum::<f64>() / n;
            let var = (0..self.rows).map(|i| (self.data[i * d + j] - mean).powi(2)).sum::<f64>() / n;
            let sd = var.sqrt();
            for i in 0..self.rows {
                data[i * d + j] = if sd > 0.0 { (self.data[i * d + j] - mean) / sd } else { 0.0 };
            }
        }
        Self { names: self.names.clone(), rows: self.rows, data }
    }
}

/// A partition of the rows into k clusters.
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    /// Cluster centres, k rows of the matrix's width, row-major.
    pub centroids: Vec<f64>,
    /// Each row's cluster.
    pub assignments: Vec<usize>,
    /// Sum of squared distances of rows to their centre.
    pub inertia: f64,
    /// Number of clusters.
    pub k: usize,
}

/// How k-means runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KMeansSettings {
    /// Seed of every random choice: the same seed and data give the same clusters.
    pub seed: u64,
    /// Independent seedings; the lowest inertia wins (k-means only finds local optima).
    pub restarts: usize,
    /// Lloyd iterations per seeding at most.
    pub max_iterations: usize,
    /// Iterations stop once the centres move (in total squared distance) less than this
    /// fraction of the features' mean variance: on a large base, a few boundary rows can keep
    /// changing sides for hundreds of iterations without changing the clusters' meaning.
    pub tolerance: f64,
}

impl Default for KMeansSettings {
    /// Ten seedings of at most 300 iterations, tolerance 10⁻⁴ (scikit-learn's defaults).
    fn default() -> Self {
        Self { seed: 0x1D1C, restarts: 10, max_iterations: 300, tolerance: 1e-4 }
    }
}

/// k-means with k-means++ seeding (Arthur & Vassilvitskii 2007) and Lloyd iterations.
pub fn kmeans(matrix: &FeatureMatrix, k: usize, settings: &KMeansSettings) -> Result<Clustering, ModelError> {
    if k == 0 || k > matrix.rows() {
        return Err(ModelError::InvalidSetting { name: "k", reason: "must lie between 1 and the number of rows" });
    }
    let mut rng = SplitMix64::new(settings.seed);
    let movement_limit = settings.tolerance * mean_variance(matrix);
    let mut best: Option<Clustering> = None;
    for _ in 0..settings.restarts.max(1) {
        let run = lloyd(matrix, seed_plus_plus(matrix, k, &mut rng), settings.max_iterations, movement_limit);
        if best.as_ref().is_none_or(|b| run.inertia < b.inertia) {
            best = Some(run);
        }
    }
    best.ok_or(ModelError::NotConverged { model: "k-means" })
}

fn mean_variance(matrix: &FeatureMatrix) -> f64 {
    let (n, d) = (matrix.rows() as f64, matrix.cols());
    (0..d)
        .map(|j| {
            let mean = (0..matrix.rows()).map(|i| matrix.data[i * d + j]).sum::<f64>() / n;
            (0..matrix.rows()).map(|i| (matrix.data[i * d + j] - mean).powi(2)).sum::<f64>() / n
        })
        .sum::<f64>()
        / d as f64
}

fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn seed_plus_plus(matrix: &FeatureMatrix, k: usize, rng: &mut SplitMix64) -> Vec<f64> {
    let d = matrix.cols();
    let mut centroids = matrix.row(rng.below(matrix.rows())).to_vec();
    let mut nearest: Vec<f64> = (0..matrix.rows()).map(|i| squared_distance(matrix.row(i), &centroids[..d])).collect();
    while centroids.len() < k * d {
        let total: f64 = nearest.iter().sum();
        // Every row already coincides with a centre: any row will do.
        let chosen = if total > 0.0 {
            let mut target = rng.uniform() * total;
            nearest.iter().position(|&w| {
                target -= w;
                target < 0.0
            })
        } else {
            None
        }
        .unwrap_or_else(|| rng.below(matrix.rows()));
        let centre = matrix.row(chosen).to_vec();
        for (i, n) in nearest.iter_mut().enumerate() {
            *n = n.min(squared_distance(matrix.row(i), &centre));
        }
        centroids.extend(centre);
    }
    centroids
}

fn lloyd(matrix: &FeatureMatrix, mut centroids: Vec<f64>, max_iterations: usize, movement_limit: f64) -> Clustering {
    let (n, d) = (matrix.rows(), matrix.cols());
    let k = centroids.len() / d;
    let mut assignments = vec![usize::MAX; n];
    let mut inertia = 0.0;
    for _ in 0..max_iterations.max(1) {
        let mut changed = false;
        inertia = 0.0;
        for (i, assigned) in assignments.iter_mut().enumerate() {
            let (c, dist) = nearest_centre(matrix.row(i), &centroids, k);
            inertia += dist;
            if *assigned != c {
                *assigned = c;
                changed = true;
            }
        }
        if !changed {
            break;
        }
        let mut sums = vec![0.0; k * d];
        let mut counts = vec![0usize; k];
        for (i, &c) in assignments.iter().enumerate() {
            counts[c] += 1;
            for (s, v) in sums[c * d..(c + 1) * d].iter_mut().zip(matrix.row(i)) {
                *s += v;
            }
        }
        let mut movement = 0.0;
        for c in 0..k {
            // An emptied cluster keeps its old centre rather than collapsing to the origin.
            if counts[c] > 0 {
                for j in 0..d {
                    let moved = sums[c * d + j] / counts[c] as f64;
                    movement += (moved - centroids[c * d + j]).powi(2);
                    centroids[c * d + j] = moved;
                }
            }
        }
        if movement <= movement_limit {
            // Reassign once more so that assignments and inertia match the final centres.
            inertia = 0.0;
            for (i, assigned) in assignments.iter_mut().enumerate() {
                let (c, dist) = nearest_centre(matrix.row(i), &centroids, k);
                inertia += dist;
                *assigned = c;
            }
            break;
        }
    }
    Clustering { centroids, assignments, inertia, k }
}

fn nearest_centre(row: &[f64], centroids: &[f64], k: usize) -> (usize, f64) {
    let d = row.len();
    (0..k)
        .map(|c| (c, squared_distance(row, &centroids[c * d..(c + 1) * d])))
        .fold((0, f64::INFINITY), |best, cand| if cand.1 < best.1 { cand } else { best })
}

/// Mean silhouette of the given rows (all rows when `sample` is `None`): how much closer each
/// row is to its own cluster than to the next nearest, from −1 to 1. Euclidean distances.
pub fn silhouette(matrix: &FeatureMatrix, assignments: &[usize], k: usize, sample: Option<&[usize]>) -> f64 {
    let all: Vec<usize>;
    let rows = match sample {
        Some(s) => s,
        None => {
            all = (0..matrix.rows()).collect();
            &all
        }
    };
    let mut total = 0.0;
    for &i in rows {
        let mut sums = vec![0.0; k];
        let mut counts = vec![0usize; k];
        for &j in rows {
            if i != j {
                sums[assignments[j]] += squared_distance(matrix.row(i), matrix.row(j)).sqrt();
                counts[assignments[j]] += 1;
            }
        }
        let own = assignments[i];
        // A row alone in its cluster scores 0, by convention.
        if counts[own] == 0 {
            continue;
        }
        let a = sums[own] / counts[own] as f64;
        let b = (0..k)
            .filter(|&c| c != own && counts[c] > 0)
            .map(|c| sums[c] / counts[c] as f64)
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() {
            total += (b - a) / a.max(b);
        }
    }
    total / rows.len() as f64
}

/// How k is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KChoice {
    /// Exactly this many clusters.
    Fixed(usize),
    /// The k in this range with the best silhouette.
    BestSilhouette {
        /// Smallest k tried (at least 2).
        min: usize,
        /// Largest k tried.
        max: usize,
    },
}

/// Rows used to score the silhouette: it costs O(n²), so large bases are scored on a
/// deterministic sample, as is customary.
pub const SILHOUETTE_SAMPLE: usize = 2_000;

/// One cluster's description: its size and the features that set it apart.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterProfile {
    /// Rows in the cluster.
    pub size: usize,
    /// Its share of all rows.
    pub share: f64,
    /// Every feature with the cluster's mean in standard units (how many population standard
    /// deviations above or below the population mean), most distinguishing first.
    pub distinguishing: Vec<(String, f64)>,
}

impl ClusterProfile {
    /// Features well above the population (at least `threshold` standard units).
    pub fn above(&self, threshold: f64) -> impl Iterator<Item = &(String, f64)> {
        self.distinguishing.iter().filter(move |(_, z)| *z >= threshold)
    }

    /// Features well below the population (at least `threshold` standard units).
    pub fn below(&self, threshold: f64) -> impl Iterator<Item = &(String, f64)> {
        self.distinguishing.iter().filter(move |(_, z)| *z <= -threshold)
    }
}

/// The result of clustering on needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NeedsClusters {
    /// The partition (centroids in standard units).
    pub clustering: Clustering,
    /// Its silhouette (on the sample when the base is large).
    pub silhouette: f64,
    /// Silhouette of every k tried, when k was chosen.
    pub tried: Vec<(usize, f64)>,
    /// A description of each cluster, by cluster index.
    pub profiles: Vec<ClusterProfile>,
}

/// Clusters the rows on standardised features and describes each cluster.
pub fn cluster(
    matrix: &FeatureMatrix,
    choice: KChoice,
    settings: &KMeansSettings,
) -> Result<NeedsClusters, ModelError> {
    let z = matrix.standardised();
    let sample = silhouette_sample(z.rows(), settings.seed);
    let score = |c: &Clustering| silhouette(&z, &c.assignments, c.k, Some(&sample));
    let (clustering, tried) = match choice {
        KChoice::Fixed(k) => (kmeans(&z, k, settings)?, Vec::new()),
        KChoice::BestSilhouette { min, max } => {
            if min < 2 || max < min {
                return Err(ModelError::InvalidSetting { name: "k", reason: "a range needs 2 ≤ min ≤ max" });
            }
            let mut tried = Vec::new();
            let mut best: Option<(f64, Clustering)> = None;
            for k in min..=max.min(z.rows()) {
                let c = kmeans(&z, k, settings)?;
                let s = score(&c);
                tried.push((k, s));
                if best.as_ref().is_none_or(|(b, _)| s > *b) {
                    best = Some((s, c));
                }
            }
            let (_, c) =
                best.ok_or(ModelError::NotEnoughData { model: "k-means", reason: "fewer rows than k".into() })?;
            (c, tried)
        }
    };
    let silhouette = if clustering.k > 1 { score(&clustering) } else { 0.0 };
    let profiles = describe(&z, &clustering);
    Ok(NeedsClusters { clustering, silhouette, tried, profiles })
}

fn silhouette_sample(rows: usize, seed: u64) -> Vec<usize> {
    if rows <= SILHOUETTE_SAMPLE {
        return (0..rows).collect();
    }
    // A partial Fisher–Yates shuffle: a uniform sample without repeats.
    let mut rng = SplitMix64::new(seed ^ 0x5EED);
    let mut idx: Vec<usize> = (0..rows).collect();
    for i in 0..SILHOUETTE_SAMPLE {
        let j = i + rng.below(rows - i);
        idx.swap(i, j);
    }
    idx.truncate(SILHOUETTE_SAMPLE);
    idx
}

fn describe(z: &FeatureMatrix, clustering: &Clustering) -> Vec<ClusterProfile> {
    let d = z.cols();
    let mut sizes = vec![0usize; clustering.k];
    for &c in &clustering.assignments {
        sizes[c] += 1;
    }
    (0..clustering.k)
        .map(|c| {
            // On standardised data the centroid is the cluster's mean in standard units.
            let mut distinguishing: Vec<(String, f64)> =
                z.names().iter().cloned().zip(clustering.centroids[c * d..(c + 1) * d].iter().copied()).collect();
            distinguishing.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
            ClusterProfile { size: sizes[c], share: sizes[c] as f64 / z.rows() as f64, distinguishing }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testdata;

    fn iris() -> (FeatureMatrix, Vec<usize>) {
        let (rows, species) = testdata::iris();
        let names = ["sepal_length", "sepal_width", "petal_length", "petal_width"].map(String::from).to_vec();
        (FeatureMatrix::new(names, &rows).expect("valid"), species)
    }

    #[test]
    fn kmeans_on_iris_reaches_the_known_best_inertia() {
        // scikit-learn's KMeans(n_clusters=3) on the raw iris measurements: inertia 78.851.
        let (m, _) = iris();
        let c = kmeans(&m, 3, &KMeansSettings::default()).expect("clusters");
        assert!((c.inertia - 78.851).abs() < 0.01, "inertia {}", c.inertia);
    }

    #[test]
    fn kmeans_on_iris_matches_the_published_silhouettes() {
        // Mean silhouettes of scikit-learn's k-means partitions of the raw iris measurements:
        // 0.681 for k = 2 and 0.553 for k = 3.
        let (m, _) = iris();
        for (k, published) in [(2, 0.681), (3, 0.553)] {
            let c = kmeans(&m, k, &KMeansSettings::default()).expect("clusters");
            let s = silhouette(&m, &c.assignments, k, None);
            assert!((s - published).abs() < 0.001, "k = {k}: {s}");
        }
    }

    #[test]
    fn kmeans_separates_setosa_from_the_other_species() {
        let (m, species) = iris();
        let c = kmeans(&m, 3, &KMeansSettings::default()).expect("clusters");
        let setosa = c.assignments[0];
        for (a, s) in c.assignments.iter().zip(&species) {
            assert_eq!(*a == setosa, *s == 0);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_clusters() {
        let (m, _) = iris();
        let settings = KMeansSettings { seed: 42, restarts: 1, ..KMeansSettings::default() };
        assert_eq!(kmeans(&m, 4, &settings), kmeans(&m, 4, &settings));
    }

    #[test]
    fn k_is_chosen_by_the_best_silhouette() {
        // Three tight, well separated groups: the silhouette must pick k = 3.
        let mut rows = Vec::new();
        let mut rng = SplitMix64::new(3);
        for centre in [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]] {
            for _ in 0..50 {
                rows.push(vec![centre[0] + rng.normal() * 0.5, centre[1] + rng.normal() * 0.5]);
            }
        }
        let m = FeatureMatrix::new(vec!["x".into(), "y".into()], &rows).expect("valid");
        let needs =
            cluster(&m, KChoice::BestSilhouette { min: 2, max: 6 }, &KMeansSettings::default()).expect("clusters");
        assert_eq!(needs.clustering.k, 3);
        assert_eq!(needs.tried.len(), 5);
        assert!(needs.silhouette > 0.8);
    }

    #[test]
    fn clusters_are_described_by_what_sets_them_apart() {
        let (m, _) = iris();
        let needs = cluster(&m, KChoice::Fixed(3), &KMeansSettings::default()).expect("clusters");
        let setosa = &needs.profiles[needs.clustering.assignments[0]];
        assert_eq!(setosa.size, 50);
        // Setosa's petals are far smaller than the population's, its sepals wider.
        let (top, z) = &setosa.distinguishing[0];
        assert!(top.starts_with("petal") && *z < -1.0, "{:?}", setosa.distinguishing);
        assert!(setosa.below(1.0).any(|(name, _)| name == "petal_width"));
        assert!(setosa.above(0.5).any(|(name, _)| name == "sepal_width"));
        assert!((needs.profiles.iter().map(|p| p.share).sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn ragged_or_non_finite_rows_are_refused() {
        let names = vec!["a".to_string(), "b".to_string()];
        assert!(FeatureMatrix::new(names.clone(), &[vec![1.0]]).is_err());
        assert!(FeatureMatrix::new(names, &[vec![1.0, f64::NAN]]).is_err());
    }
}
