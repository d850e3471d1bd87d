//! Item-to-item recommendations: neighbour lists learned from customers' weighted feedback
//! (view < basket < purchase, negative feedback taken back), kept up to date one interaction at a
//! time between retrainings, and turned into a diversified, explained list for one customer or
//! guest, with popularity per cluster, segment or overall when there is nothing to go on.
//!
//! Similarity is the cosine of two items' columns in the customer × item matrix of feedback
//! weights. Raw co-occurrence counts would rank bestsellers next to everything; cosine divides
//! by both items' norms so that "goes with" means "goes with this more than with anything", it
//! stays in [0, 1] for non-negative weights (as `ItemNeighbour.similarity` promises), and it is
//! maintained exactly by keeping dot products and squared norms, which one interaction changes
//! by a known amount.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// An item's dense index, assigned by the catalog (the product id lives outside the model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(pub u32);

/// A customer's dense index, assigned where the interactions are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerKey(pub u32);

/// What a customer did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedbackKind {
    /// Looked at it.
    View,
    /// Put it in a basket.
    Basket,
    /// Bought it (now owned).
    Purchase,
    /// Said no (not interested, returned): takes back what their earlier feedback gave.
    Negative,
}

/// One event the model learns from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interaction {
    /// Who.
    pub customer: CustomerKey,
    /// Which item.
    pub item: ItemId,
    /// What they did.
    pub kind: FeedbackKind,
    /// When, in seconds since the Unix epoch.
    pub at: i64,
}

/// How much each kind of feedback says about a customer's taste, and how fast it fades.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeedbackWeights {
    /// A view's weight.
    pub view: f32,
    /// A basket addition's weight.
    pub basket: f32,
    /// A purchase's weight.
    pub purchase: f32,
    /// Days after which a feedback counts half.
    pub half_life_days: f64,
}

impl Default for FeedbackWeights {
    fn default() -> Self {
        Self { view: 1.0, basket: 3.0, purchase: 5.0, half_life_days: 90.0 }
    }
}

impl FeedbackWeights {
    fn of(&self, kind: FeedbackKind) -> f32 {
        match kind {
            FeedbackKind::View => self.view,
            FeedbackKind::Basket => self.basket,
            FeedbackKind::Purchase => self.purchase,
            FeedbackKind::Negative => 0.0,
        }
    }

    fn decay(&self, at: i64, now: i64) -> f32 {
        let age_days = (now - at).max(0) as f64 / 86_400.0;
        0.5f64.powf(age_days / self.half_life_days) as f32
    }
}

/// What one customer did with one item, summarised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryEntry {
    /// The item.
    pub item: ItemId,
    /// The strongest feedback's weight after recency decay; zero once taken back.
    pub weight: f32,
    /// Whether they bought it.
    pub purchased: bool,
    /// Whether their latest word on it was negative.
    pub negative: bool,
    /// Their latest interaction with it.
    pub last_at: i64,
}

/// A customer's history as the recommender sees it: one entry per item, sorted by item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    entries: Vec<HistoryEntry>,
}

impl History {
    /// Summarises one customer's interactions as of `now`.
    pub fn from_interactions<'a>(
        interactions: impl IntoIterator<Item = &'a Interaction>,
        now: i64,
        weights: &FeedbackWeights,
    ) -> Self {
        let mut sorted: Vec<&Interaction> = interactions.into_iter().collect();
        sorted.sort_by_key(|i| (i.item, i.at));
        let mut h = History::default();
        for i in sorted {
            h.apply(i, now, weights);
        }
        h
    }

    /// Adds one interaction, in time order for its item.
    pub fn apply(&mut self, event: &Interaction, now: i64, weights: &FeedbackWeights) {
        let w = weights.of(event.kind) * weights.decay(event.at, now);
        let pos = match self.entries.binary_search_by_key(&event.item, |e| e.item) {
            Ok(p) => p,
            Err(p) => {
                let fresh = HistoryEntry {
                    item: event.item,
                    weight: 0.0,
                    purchased: false,
                    negative: false,
                    last_at: event.at,
                };
                self.entries.insert(p, fresh);
                p
            }
        };
        let e = &mut self.entries[pos];
        e.last_at = e.last_at.max(event.at);
        if event.kind == FeedbackKind::Negative {
            e.negative = true;
            e.weight = 0.0;
        } else {
            e.negative = false;
            e.purchased |= event.kind == FeedbackKind::Purchase;
            e.weight = e.weight.max(w);
        }
    }

    /// The entries, sorted by item.
    pub fn entries(&self) -> &[HistoryEntry] {
        &self.entries
    }

    /// The entry for one item.
    pub fn get(&self, item: ItemId) -> Option<&HistoryEntry> {
        self.entries.binary_search_by_key(&item, |e| e.item).ok().map(|p| &self.entries[p])
    }

    /// The weight the item carries in co-occurrence (zero when absent or taken back).
    pub fn weight(&self, item: ItemId) -> f32 {
        self.get(item).map_or(0.0, |e| e.weight)
    }

    /// Whether there is any positive feedback at all.
    pub fn is_empty(&self) -> bool {
        !self.entries.iter().any(|e| e.weight > 0.0)
    }
}

/// Settings of a retraining.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainSettings {
    /// Feedback weights and recency.
    pub weights: FeedbackWeights,
    /// Neighbours kept per item.
    pub neighbours_per_item: usize,
    /// A customer's strongest items kept: co-occurrence work grows with the square of a
    /// history, so one bulk buyer must not dominate a retraining.
    pub max_items_per_customer: usize,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self { weights: FeedbackWeights::default(), neighbours_per_item: 100, max_items_per_customer: 500 }
    }
}

/// Which co-occurrence made two items neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// Mostly customers who bought both.
    BoughtTogether,
    /// Mostly customers who viewed or basketed them.
    ViewedTogether,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Link {
    item: u32,
    /// Σ over customers of the product of their two weights.
    dot: f32,
    /// The part of `dot` from customers who bought both.
    bought_dot: f32,
    /// Customers with positive weight on both.
    support: u32,
}

/// One neighbour of an item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    /// The neighbour.
    pub item: ItemId,
    /// Cosine similarity in [0, 1].
    pub similarity: f32,
    /// Customers who interacted with both.
    pub support: u32,
    /// Bought or viewed together.
    pub relation: Relation,
}

/// Every item's bounded list of neighbours, with what is needed to update them incrementally.
#[derive(Debug, Clone, Default)]
pub struct NeighbourIndex {
    norms2: Vec<f32>,
    lists: Vec<Vec<Link>>,
    k: usize,
}

impl NeighbourIndex {
    /// Learns every item's neighbours from the interaction log, as of `now`.
    ///
    /// Sparse: for each item, the customers who touched it and then their other items, summed
    /// into one dense accumulator, so the work is Σ over customers of (their items)², never items².
    pub fn train(interactions: &[Interaction], n_items: usize, now: i64, settings: &TrainSettings) -> Self {
        let n_items = interactions.iter().map(|i| i.item.0 as usize + 1).max().unwrap_or(0).max(n_items);
        // Customer vectors in CSR form: (item, weight, purchased).
        let mut order: Vec<u32> = (0..interactions.len() as u32).collect();
        // The index breaks ties so that same-instant events apply in log order, as they do
        // incrementally.
        order.sort_unstable_by_key(|&i| {
            let x = &interactions[i as usize];
            (x.customer, x.item, x.at, i)
        });
        let mut cust_items: Vec<(u32, f32, bool)> = Vec::with_capacity(interactions.len());
        let mut cust_ptr: Vec<usize> = vec![0];
        let mut history = History::default();
        let mut norms2 = vec![0f32; n_items];
        // Every customer counts in the norms, even with a single item: an item many people
        // looked at alone is less tied to anything.
        let flush = |history: &mut History,
                     cust_items: &mut Vec<(u32, f32, bool)>,
                     cust_ptr: &mut Vec<usize>,
                     norms2: &mut [f32]| {
            let mut kept: Vec<&HistoryEntry> = history.entries.iter().filter(|e| e.weight > 0.0).collect();
            if kept.len() > settings.max_items_per_customer {
                kept.sort_by(|a, b| b.weight.total_cmp(&a.weight));
                kept.truncate(settings.max_items_per_customer);
            }
            for e in &kept {
                norms2[e.item.0 as usize] += e.weight * e.weight;
            }
            if kept.len() > 1 {
                cust_items.extend(kept.iter().map(|e| (e.item.0, e.weight, e.purchased)));
                cust_ptr.push(cust_items.len());
            }
            history.entries.clear();
        };
        let mut current = None;
        for &i in &order {
            let x = &interactions[i as usize];
            if current != Some(x.customer) {
                flush(&mut history, &mut cust_items, &mut cust_ptr, &mut norms2);
                current = Some(x.customer);
            }
            history.apply(x, now, &settings.weights);
        }
        flush(&mut history, &mut cust_items, &mut cust_ptr, &mut norms2);

        // Item → customers, pointing at positions in `cust_items`.
        let mut item_count = vec![0usize; n_items + 1];
        for &(item, _, _) in &cust_items {
            item_count[item as usize + 1] += 1;
        }
        for i in 0..n_items {
            item_count[i + 1] += item_count[i];
        }
        let item_ptr = item_count.clone();
        let mut fill = item_count;
        let mut item_custs: Vec<(u32, f32, bool)> = vec![(0, 0.0, false); cust_items.len()];
        for c in 0..cust_ptr.len() - 1 {
            for &(item, w, p) in &cust_items[cust_ptr[c]..cust_ptr[c + 1]] {
                item_custs[fill[item as usize]] = (c as u32, w, p);
                fill[item as usize] += 1;
            }
        }

        let mut dot = vec![0f32; n_items];
        let mut bought = vec![0f32; n_items];
        let mut support = vec![0u32; n_items];
        let mut touched: Vec<u32> = Vec::new();
        let mut lists = Vec::with_capacity(n_items);
        for i in 0..n_items {
            for &(c, wi, pi) in &item_custs[item_ptr[i]..item_ptr[i + 1]] {
                let c = c as usize;
                for &(j, wj, pj) in &cust_items[cust_ptr[c]..cust_ptr[c + 1]] {
                    if j as usize == i {
                        continue;
                    }
                    let j = j as usize;
                    if support[j] == 0 {
                        touched.push(j as u32);
                    }
                    dot[j] += wi * wj;
                    support[j] += 1;
                    if pi && pj {
                        bought[j] += wi * wj;
                    }
                }
            }
            let mut links: Vec<Link> = touched
                .iter()
                .map(|&j| Link {
                    item: j,
                    dot: dot[j as usize],
                    bought_dot: bought[j as usize],
                    support: support[j as usize],
                })
                .collect();
            for &j in &touched {
                dot[j as usize] = 0.0;
                bought[j as usize] = 0.0;
                support[j as usize] = 0;
            }
            touched.clear();
            let sim = |l: &Link| l.dot / (norms2[i] * norms2[l.item as usize]).sqrt();
            if links.len() > settings.neighbours_per_item {
                let k = settings.neighbours_per_item;
                links.select_nth_unstable_by(k, |a, b| sim(b).total_cmp(&sim(a)));
                links.truncate(k);
            }
            links.shrink_to_fit();
            lists.push(links);
        }
        Self { norms2, lists, k: settings.neighbours_per_item }
    }

    /// The number of items the index knows.
    pub fn len(&self) -> usize {
        self.lists.len()
    }

    /// Whether the index knows no item.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    fn neighbour(&self, i: usize, l: &Link) -> Neighbour {
        let denom = (self.norms2[i] * self.norms2[l.item as usize]).sqrt();
        let similarity = if denom > 0.0 { (l.dot / denom).clamp(0.0, 1.0) } else { 0.0 };
        let relation = if l.bought_dot * 2.0 >= l.dot { Relation::BoughtTogether } else { Relation::ViewedTogether };
        Neighbour { item: ItemId(l.item), similarity, support: l.support, relation }
    }

    /// An item's neighbours, most similar first (empty for an item the index has never seen).
    pub fn neighbours(&self, item: ItemId) -> Vec<Neighbour> {
        let i = item.0 as usize;
        let Some(list) = self.lists.get(i) else { return Vec::new() };
        let mut out: Vec<Neighbour> =
            list.iter().map(|l| self.neighbour(i, l)).filter(|n| n.similarity > 0.0).collect();
        out.sort_by(|a, b| b.similarity.total_cmp(&a.similarity).then(a.item.cmp(&b.item)));
        out
    }

    fn for_each_neighbour(&self, item: ItemId, mut f: impl FnMut(Neighbour)) {
        let i = item.0 as usize;
        if let Some(list) = self.lists.get(i) {
            for l in list {
                let n = self.neighbour(i, l);
                if n.similarity > 0.0 {
                    f(n);
                }
            }
        }
    }

    /// Applies one new interaction between retrainings, so that a new item gets neighbours at
    /// once. `before` is the customer's history without it; both are taken as of the same
    /// instant, so old feedback is not re-decayed (the next retraining does that).
    ///
    /// Exact while lists are not full; a pair that had fallen out of a full list restarts from
    /// this interaction's contribution, which under-states it until the next retraining.
    pub fn observe(&mut self, before: &History, event: &Interaction, now: i64, weights: &FeedbackWeights) {
        let mut after = before.clone();
        after.apply(event, now, weights);
        let i = event.item.0 as usize;
        let (old, new) = (before.weight(event.item), after.weight(event.item));
        let delta = new - old;
        if delta == 0.0 {
            return;
        }
        if i >= self.lists.len() {
            self.lists.resize_with(i + 1, Vec::new);
            self.norms2.resize(i + 1, 0.0);
        }
        self.norms2[i] = (self.norms2[i] + new * new - old * old).max(0.0);
        let purchased_i = after.get(event.item).is_some_and(|e| e.purchased);
        let support_change: i64 = match (old > 0.0, new > 0.0) {
            (false, true) => 1,
            (true, false) => -1,
            _ => 0,
        };
        for e in before.entries.iter().filter(|e| e.item != event.item && e.weight > 0.0) {
            let d = delta * e.weight;
            let b = if purchased_i && e.purchased { d } else { 0.0 };
            self.bump(i, e.item.0, d, b, support_change);
            self.bump(e.item.0 as usize, i as u32, d, b, support_change);
        }
    }

    fn bump(&mut self, i: usize, j: u32, dot: f32, bought: f32, support: i64) {
        let list = &mut self.lists[i];
        match list.iter_mut().find(|l| l.item == j) {
            Some(l) => {
                l.dot = (l.dot + dot).max(0.0);
                l.bought_dot = (l.bought_dot + bought).clamp(0.0, l.dot);
                l.support = (i64::from(l.support) + support).max(0) as u32;
            }
            None if dot > 0.0 => {
                list.push(Link { item: j, dot, bought_dot: bought.max(0.0), support: support.max(0) as u32 });
                if list.len() > self.k.max(1) {
                    let norms2 = &self.norms2;
                    let sim = |l: &Link| l.dot / (norms2[i] * norms2[l.item as usize]).sqrt().max(f32::MIN_POSITIVE);
                    let weakest = (0..list.len()).min_by(|&a, &b| sim(&list[a]).total_cmp(&sim(&list[b])));
                    if let Some(w) = weakest {
                        list.swap_remove(w);
                    }
                }
            }
            None => {}
        }
    }
}

/// Groups items into product clusters, for diversity: the most interacted-with item not yet
/// placed leads a new cluster and takes its unplaced neighbours at or above `min_similarity`.
/// Only leaders recruit, so a cluster never chains through weak links. Items without feedback
/// get no cluster.
pub fn product_clusters(index: &NeighbourIndex, min_similarity: f32) -> Vec<Option<u32>> {
    let mut order: Vec<usize> = (0..index.len()).filter(|&i| index.norms2[i] > 0.0).collect();
    order.sort_by(|&a, &b| index.norms2[b].total_cmp(&index.norms2[a]).then(a.cmp(&b)));
    let mut cluster = vec![None; index.len()];
    let mut next = 0u32;
    for leader in order {
        if cluster[leader].is_some() {
            continue;
        }
        cluster[leader] = Some(next);
        for n in index.neighbours(ItemId(leader as u32)) {
            let j = n.item.0 as usize;
            if n.similarity >= min_similarity && j < cluster.len() && cluster[j].is_none() {
                cluster[j] = Some(next);
            }
        }
        next += 1;
    }
    cluster
}

/// A group whose popular items fill in when neighbours have too little to say.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PopularityKey {
    /// Everyone: guests with an empty basket, and the last resort.
    Global,
    /// Customers of one needs cluster and value tier.
    ClusterTier {
        /// The needs cluster's label.
        cluster: String,
        /// The value tier's code.
        tier: String,
    },
    /// Members of one segment (`segments/{id}`).
    Segment(String),
}

/// The most popular items of each group, bounded per group.
#[derive(Debug, Clone, Default)]
pub struct PopularityTable {
    lists: HashMap<PopularityKey, Vec<(ItemId, f32)>>,
}

impl PopularityTable {
    /// Sums recency-weighted positive feedback per item in every group a customer belongs to,
    /// keeping the `top` best per group.
    pub fn train(
        interactions: &[Interaction],
        now: i64,
        weights: &FeedbackWeights,
        groups_of: impl Fn(CustomerKey) -> Vec<PopularityKey>,
        top: usize,
    ) -> Self {
        let mut sums: HashMap<PopularityKey, HashMap<ItemId, f32>> = HashMap::new();
        let mut memo: HashMap<CustomerKey, Vec<PopularityKey>> = HashMap::new();
        for x in interactions {
            let w = weights.of(x.kind) * weights.decay(x.at, now);
            if w <= 0.0 {
                continue;
            }
            let groups = memo.entry(x.customer).or_insert_with(|| {
                let mut g = groups_of(x.customer);
                g.push(PopularityKey::Global);
                g
            });
            for g in groups.iter() {
                *sums.entry(g.clone()).or_default().entry(x.item).or_default() += w;
            }
        }
        let lists = sums
            .into_iter()
            .map(|(k, items)| {
                let mut v: Vec<(ItemId, f32)> = items.into_iter().collect();
                v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                v.truncate(top);
                (k, v)
            })
            .collect();
        Self { lists }
    }

    /// Adds one interaction between retrainings, to the global list and `groups`, each kept to
    /// its `top` best (an item outside a full list enters once it outweighs the last).
    pub fn observe(
        &mut self,
        groups: &[PopularityKey],
        event: &Interaction,
        now: i64,
        weights: &FeedbackWeights,
        top: usize,
    ) {
        let w = weights.of(event.kind) * weights.decay(event.at, now);
        if w <= 0.0 {
            return;
        }
        for key in groups.iter().chain(std::iter::once(&PopularityKey::Global)) {
            let list = self.lists.entry(key.clone()).or_default();
            let mut at = match list.iter().position(|(item, _)| *item == event.item) {
                Some(p) => {
                    list[p].1 += w;
                    p
                }
                None => {
                    list.push((event.item, w));
                    list.len() - 1
                }
            };
            // Move it up to its place: the list stays sorted, most popular first.
            while at > 0 && list[at - 1].1 < list[at].1 {
                list.swap(at - 1, at);
                at -= 1;
            }
            list.truncate(top.max(1));
        }
    }

    /// A group's items, most popular first.
    pub fn items(&self, key: &PopularityKey) -> &[(ItemId, f32)] {
        self.lists.get(key).map_or(&[], Vec::as_slice)
    }
}

/// What the recommender needs to know of an item from the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemFacts {
    /// Neither retired nor out of stock.
    pub sellable: bool,
    /// Bought again and again, so owning it does not rule it out.
    pub consumable: bool,
    /// Its product cluster, for diversity; `None` before the first retraining.
    pub cluster: Option<u32>,
}

/// The candidate source that ranked an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Neighbours of the item being viewed.
    ViewedItem,
    /// Neighbours of the basket's items.
    Basket,
    /// Neighbours of the customer's own history.
    History,
    /// Popular with the customer's cluster and tier.
    ClusterPopularity,
    /// Popular in the customer's segment.
    SegmentPopularity,
    /// Popular overall.
    GlobalPopularity,
}

/// The kind of reason shown with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonKind {
    /// Customers who bought the anchor also bought this.
    BoughtTogether,
    /// Customers who viewed the anchor also viewed this.
    ViewedTogether,
    /// Goes with something the customer bought.
    BecauseYouBought,
    /// Goes with something the customer viewed or put in a basket.
    BecauseYouViewed,
    /// Goes with the basket.
    GoesWithBasket,
    /// Popular with similar customers.
    PopularWithSimilar,
    /// Popular in a segment.
    PopularInSegment,
    /// Popular overall.
    Popular,
}

/// Why an item is recommended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// The kind.
    pub kind: ReasonKind,
    /// The items that led to it, most influential first, at most 3.
    pub anchors: Vec<ItemId>,
    /// The popularity group, for popularity reasons.
    pub group: Option<PopularityKey>,
}

/// One recommended item.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// The item.
    pub item: ItemId,
    /// Relevance, > 0, comparable within one answer.
    pub score: f32,
    /// The source that ranked it.
    pub strategy: Strategy,
    /// Why.
    pub reason: Reason,
}

/// The customer a recommendation is for, when known and consenting to profiling.
#[derive(Debug, Clone, Copy)]
pub struct CustomerView<'a> {
    /// Their history as of now (owned items and negative feedback included).
    pub history: &'a History,
    /// Items suppressed by negative feedback on recommendations, or their category.
    pub suppressed: &'a HashSet<ItemId>,
    /// Their needs cluster and tier, once segmentation has scored them.
    pub cluster_tier: Option<&'a PopularityKey>,
    /// A segment they belong to, for when they have no history.
    pub segment: Option<&'a PopularityKey>,
}

/// A request for recommendations.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The customer; `None` for a guest.
    pub customer: Option<CustomerView<'a>>,
    /// The item on screen.
    pub viewed: Option<ItemId>,
    /// The basket's items.
    pub basket: &'a [ItemId],
    /// Items never to return.
    pub exclusions: &'a HashSet<ItemId>,
    /// When set, only these items may be returned (a category filter).
    pub only: Option<&'a HashSet<ItemId>>,
    /// How many items.
    pub n: usize,
    /// At most this many items from one product cluster.
    pub max_per_cluster: usize,
}

/// How much each source counts: what is on screen now says more about intent than the basket,
/// and both more than the past.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceWeights {
    /// The viewed item.
    pub viewed: f32,
    /// Each basket item.
    pub basket: f32,
    /// The customer's strongest history item; the others in proportion to their weight.
    pub history: f32,
    /// The customer's history items used as anchors, strongest first.
    pub history_anchors: usize,
}

impl Default for SourceWeights {
    fn default() -> Self {
        Self { viewed: 1.0, basket: 0.8, history: 0.6, history_anchors: 50 }
    }
}

/// Hashes dense item indices with one multiplication (Fibonacci hashing): the candidate map of
/// a request sees thousands of lookups, and keys come from our own index, so resistance to
/// crafted collisions buys nothing there.
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.0 = (self.0 ^ u64::from(v)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Popularity fills in below every neighbour-based score.
const POPULARITY_SCALE: f32 = 1e-3;

/// Recommends from a neighbour index, popularity tables and the catalog's facts.
#[derive(Debug, Clone, Copy)]
pub struct Recommender<'a> {
    /// The neighbour lists.
    pub index: &'a NeighbourIndex,
    /// The popularity tables.
    pub popularity: &'a PopularityTable,
    /// Facts per item index; items beyond it are unknown and never recommended.
    pub catalog: &'a [ItemFacts],
    /// How sources are weighted.
    pub sources: SourceWeights,
}

/// A candidate item's score, by source, with each source's strongest anchors, kept in fixed
/// arrays: a request touches thousands of candidates and allocating for each shows.
#[derive(Debug, Clone, Copy, Default)]
struct Candidate {
    score: f32,
    by_source: [f32; 3],
    /// Per source: (anchor, contribution, relation), the three strongest, in no order.
    anchors: [[Option<(ItemId, f32, Relation)>; 3]; 3],
}

impl Candidate {
    fn add(&mut self, source: usize, anchor: ItemId, contribution: f32, relation: Relation) {
        self.score += contribution;
        self.by_source[source] += contribution;
        let strength = |slot: &Option<(ItemId, f32, Relation)>| slot.map_or(f32::NEG_INFINITY, |s| s.1);
        let slots = &mut self.anchors[source];
        let weakest = (0..3).min_by(|&a, &b| strength(&slots[a]).total_cmp(&strength(&slots[b]))).unwrap_or(0);
        if strength(&slots[weakest]) < contribution {
            slots[weakest] = Some((anchor, contribution, relation));
        }
    }

    /// A source's anchors, strongest first.
    fn anchors_of(&self, source: usize) -> Vec<(ItemId, f32, Relation)> {
        let mut v: Vec<(ItemId, f32, Relation)> = self.anchors[source].iter().flatten().copied().collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

impl Recommender<'_> {
    /// The best `n` items for the request, diversified across clusters, each with its reason.
    /// Returns whether the customer's own history was used, too.
    pub fn recommend(&self, req: &Request<'_>) -> (Vec<Recommendation>, bool) {
        let history = req.customer.map(|c| c.history);
        let mut anchors: Vec<(ItemId, f32, usize)> = Vec::new();
        if let Some(v) = req.viewed {
            anchors.push((v, self.sources.viewed, 0));
        }
        anchors.extend(req.basket.iter().map(|&b| (b, self.sources.basket, 1)));
        let personalized = history.is_some_and(|h| !h.is_empty());
        if let Some(h) = history {
            let mut strongest: Vec<&HistoryEntry> = h.entries().iter().filter(|e| e.weight > 0.0).collect();
            strongest.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(b.last_at.cmp(&a.last_at)));
            strongest.truncate(self.sources.history_anchors);
            let top = strongest.first().map_or(1.0, |e| e.weight);
            anchors.extend(strongest.iter().map(|e| (e.item, self.sources.history * e.weight / top, 2)));
        }

        let mut candidates: HashMap<ItemId, Candidate, BuildHasherDefault<IdHasher>> =
            HashMap::with_capacity_and_hasher(anchors.len() * 64, BuildHasherDefault::default());
        for &(anchor, strength, source) in &anchors {
            self.index.for_each_neighbour(anchor, |n| {
                let contribution = strength * n.similarity;
                candidates.entry(n.item).or_default().add(source, anchor, contribution, n.relation);
            });
        }
        // Sort small keys, not the candidates themselves: they are many and large.
        let mut ranked: Vec<(ItemId, f32)> =
            candidates.iter().filter(|(i, _)| self.allowed(**i, req)).map(|(i, c)| (*i, c.score)).collect();
        ranked.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

        let mut out = Vec::with_capacity(req.n);
        let mut per_cluster: HashMap<u32, usize> = HashMap::new();
        let mut taken: HashSet<ItemId> = HashSet::new();
        for (item, _) in ranked {
            if out.len() == req.n {
                break;
            }
            let Some(c) = candidates.get(&item) else { continue };
            if !self.fits_cluster(item, req, &mut per_cluster) {
                continue;
            }
            let source = (0..3).max_by(|&a, &b| c.by_source[a].total_cmp(&c.by_source[b])).unwrap_or(0);
            let strategy = [Strategy::ViewedItem, Strategy::Basket, Strategy::History][source];
            let leads = c.anchors_of(source);
            let kind = match (strategy, leads.first().copied()) {
                (Strategy::ViewedItem, Some((_, _, Relation::BoughtTogether))) => ReasonKind::BoughtTogether,
                (Strategy::ViewedItem, _) => ReasonKind::ViewedTogether,
                (Strategy::Basket, _) => ReasonKind::GoesWithBasket,
                (_, Some((a, ..))) if history.and_then(|h| h.get(a)).is_some_and(|e| e.purchased) => {
                    ReasonKind::BecauseYouBought
                }
                _ => ReasonKind::BecauseYouViewed,
            };
            let anchors = leads.iter().map(|a| a.0).collect();
            taken.insert(item);
            out.push(Recommendation { item, score: c.score, strategy, reason: Reason { kind, anchors, group: None } });
        }

        // Popularity fills the rest: the customer's cluster and tier when they have a history,
        // their segment when they have none, then everyone.
        let mut fills: Vec<(PopularityKey, Strategy, ReasonKind)> = Vec::new();
        if let Some(c) = req.customer {
            let cluster =
                c.cluster_tier.cloned().map(|k| (k, Strategy::ClusterPopularity, ReasonKind::PopularWithSimilar));
            let segment = c.segment.cloned().map(|k| (k, Strategy::SegmentPopularity, ReasonKind::PopularInSegment));
            if personalized {
                fills.extend(cluster.into_iter().chain(segment));
            } else {
                fills.extend(segment.into_iter().chain(cluster));
            }
        }
        fills.push((PopularityKey::Global, Strategy::GlobalPopularity, ReasonKind::Popular));
        for (key, strategy, kind) in fills {
            let list = self.popularity.items(&key);
            let top = list.first().map_or(1.0, |p| p.1);
            for &(item, pop) in list {
                if out.len() == req.n {
                    return (out, personalized);
                }
                if taken.contains(&item) || !self.allowed(item, req) || !self.fits_cluster(item, req, &mut per_cluster)
                {
                    continue;
                }
                taken.insert(item);
                let reason = Reason { kind, anchors: Vec::new(), group: Some(key.clone()) };
                out.push(Recommendation { item, score: POPULARITY_SCALE * (pop / top).max(1e-6), strategy, reason });
            }
        }
        (out, personalized)
    }

    fn allowed(&self, item: ItemId, req: &Request<'_>) -> bool {
        let Some(facts) = self.catalog.get(item.0 as usize) else { return false };
        if !facts.sellable
            || req.exclusions.contains(&item)
            || req.viewed == Some(item)
            || req.basket.contains(&item)
            || req.only.is_some_and(|only| !only.contains(&item))
        {
            return false;
        }
        match req.customer {
            None => true,
            Some(c) => {
                if c.suppressed.contains(&item) {
                    return false;
                }
                match c.history.get(item) {
                    Some(e) => !e.negative && (facts.consumable || !e.purchased),
                    None => true,
                }
            }
        }
    }

    fn fits_cluster(&self, item: ItemId, req: &Request<'_>, per_cluster: &mut HashMap<u32, usize>) -> bool {
        let Some(cluster) = self.catalog.get(item.0 as usize).and_then(|f| f.cluster) else { return true };
        let used = per_cluster.entry(cluster).or_default();
        if *used >= req.max_per_cluster.max(1) {
            return false;
        }
        *used += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    fn ev(customer: u32, item: u32, kind: FeedbackKind, days_ago: i64) -> Interaction {
        Interaction { customer: CustomerKey(customer), item: ItemId(item), kind, at: NOW - days_ago * DAY }
    }

    fn settings() -> TrainSettings {
        TrainSettings { neighbours_per_item: 50, ..TrainSettings::default() }
    }

    fn facts(n: usize) -> Vec<ItemFacts> {
        vec![ItemFacts { sellable: true, consumable: false, cluster: None }; n]
    }

    fn sim(index: &NeighbourIndex, a: u32, b: u32) -> f32 {
        index.neighbours(ItemId(a)).iter().find(|n| n.item == ItemId(b)).map_or(0.0, |n| n.similarity)
    }

    #[test]
    fn product_clusters_group_items_bought_together_without_chaining() {
        use FeedbackKind::*;
        // Items 0, 1, 2 bought together by customers 0-2; items 3, 4 by customers 3-4; item 5
        // shares one buyer with item 2 only.
        let mut log = Vec::new();
        for c in 0..3 {
            log.extend([ev(c, 0, Purchase, 0), ev(c, 1, Purchase, 0), ev(c, 2, Purchase, 0)]);
        }
        for c in 3..5 {
            log.extend([ev(c, 3, Purchase, 0), ev(c, 4, Purchase, 0)]);
        }
        log.push(ev(5, 2, View, 0));
        log.push(ev(5, 5, View, 0));
        let index = NeighbourIndex::train(&log, 7, NOW, &settings());
        let clusters = product_clusters(&index, 0.5);
        assert_eq!(clusters[0], clusters[1]);
        assert_eq!(clusters[0], clusters[2]);
        assert_eq!(clusters[3], clusters[4]);
        assert_ne!(clusters[0], clusters[3]);
        assert_ne!(clusters[5], clusters[0], "a weak link to a member does not join its cluster");
        assert!(clusters[5].is_some());
        assert_eq!(clusters[6], None, "an item without feedback has no cluster");
    }

    #[test]
    fn popularity_learns_between_retrainings_and_stays_sorted_and_bounded() {
        use FeedbackKind::*;
        let w = FeedbackWeights::default();
        let mut table = PopularityTable::train(&[ev(0, 0, View, 0)], NOW, &w, |_| Vec::new(), 2);
        table.observe(&[], &ev(1, 1, Purchase, 0), NOW, &w, 2);
        table.observe(&[], &ev(2, 2, Basket, 0), NOW, &w, 2);
        let items: Vec<u32> = table.items(&PopularityKey::Global).iter().map(|(i, _)| i.0).collect();
        assert_eq!(items, vec![1, 2], "the view (weight 1) fell out of a list of two");
        table.observe(&[], &ev(3, 2, Purchase, 0), NOW, &w, 2);
        let top = table.items(&PopularityKey::Global);
        assert_eq!((top[0].0, top[0].1), (ItemId(2), 8.0));
        table.observe(&[], &ev(3, 2, Negative, 0), NOW, &w, 2);
        assert_eq!(table.items(&PopularityKey::Global)[0].1, 8.0, "negative feedback adds nothing");
    }

    #[test]
    fn similarity_is_the_cosine_of_weighted_feedback() {
        use FeedbackKind::*;
        // Customer 0 bought items 0 and 1 (5, 5); customer 1 viewed 0 and bought 2 (1, 5).
        // norm(0) = √(25 + 1), norm(1) = 5, norm(2) = 5: cos(0,1) = 25 / (5√26), cos(0,2) = 5 / (5√26).
        let log = [ev(0, 0, Purchase, 0), ev(0, 1, Purchase, 0), ev(1, 0, View, 0), ev(1, 2, Purchase, 0)];
        let index = NeighbourIndex::train(&log, 3, NOW, &settings());
        assert!((sim(&index, 0, 1) - 25.0 / (5.0 * 26f32.sqrt())).abs() < 1e-6);
        assert!((sim(&index, 0, 2) - 5.0 / (5.0 * 26f32.sqrt())).abs() < 1e-6);
        assert_eq!(sim(&index, 1, 2), 0.0);
        let n = index.neighbours(ItemId(0));
        assert_eq!(n[0].item, ItemId(1));
        assert_eq!(n[0].relation, Relation::BoughtTogether);
        assert_eq!(n[1].relation, Relation::ViewedTogether);
    }

    #[test]
    fn purchases_weigh_more_than_baskets_than_views_and_fade_with_age() {
        use FeedbackKind::*;
        let w = FeedbackWeights::default();
        let h = History::from_interactions(
            &[ev(0, 0, View, 0), ev(0, 1, Basket, 0), ev(0, 2, Purchase, 0), ev(0, 3, Purchase, 90)],
            NOW,
            &w,
        );
        assert!(h.weight(ItemId(0)) < h.weight(ItemId(1)) && h.weight(ItemId(1)) < h.weight(ItemId(2)));
        assert!((h.weight(ItemId(3)) - 2.5).abs() < 1e-4, "one half-life halves a purchase");
    }

    #[test]
    fn negative_feedback_takes_back_co_occurrence() {
        use FeedbackKind::*;
        let log = [
            ev(0, 0, Purchase, 1),
            ev(0, 1, Purchase, 1),
            ev(0, 1, Negative, 0),
            ev(1, 0, Purchase, 0),
            ev(1, 2, View, 0),
        ];
        let index = NeighbourIndex::train(&log, 3, NOW, &settings());
        assert_eq!(sim(&index, 0, 1), 0.0);
        assert!(sim(&index, 0, 2) > 0.0);
    }

    #[test]
    fn lists_keep_at_most_k_neighbours() {
        use FeedbackKind::*;
        let log: Vec<Interaction> = (0..30).map(|i| ev(0, i, Purchase, 0)).collect();
        let index = NeighbourIndex::train(&log, 30, NOW, &TrainSettings { neighbours_per_item: 10, ..settings() });
        assert!((0..30).all(|i| index.neighbours(ItemId(i)).len() == 10));
    }

    #[test]
    fn incremental_update_matches_full_retrain_when_lists_fit() {
        use FeedbackKind::*;
        use rand::{RngExt as _, SeedableRng as _};
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(7);
        let kinds = [View, Basket, Purchase, Negative];
        let log: Vec<Interaction> = (0..400)
            .map(|_| ev(rng.random_range(0..40u32), rng.random_range(0..25u32), kinds[rng.random_range(0..4usize)], 0))
            .collect();
        let w = FeedbackWeights::default();
        let (past, recent) = log.split_at(300);
        let mut index = NeighbourIndex::train(past, 25, NOW, &settings());
        let mut histories: HashMap<CustomerKey, History> = HashMap::new();
        for x in past {
            histories.entry(x.customer).or_default().apply(x, NOW, &w);
        }
        for x in recent {
            let h = histories.entry(x.customer).or_default();
            index.observe(h, x, NOW, &w);
            h.apply(x, NOW, &w);
        }
        let full = NeighbourIndex::train(&log, 25, NOW, &settings());
        for a in 0..25 {
            for b in 0..25 {
                assert!((sim(&index, a, b) - sim(&full, a, b)).abs() < 1e-4, "pair {a},{b}");
            }
        }
    }

    #[test]
    fn new_item_gets_neighbours_before_a_retrain() {
        use FeedbackKind::*;
        let w = FeedbackWeights::default();
        let log = [ev(0, 0, Purchase, 0), ev(0, 1, Purchase, 0)];
        let mut index = NeighbourIndex::train(&log, 2, NOW, &settings());
        let before = History::from_interactions(&log, NOW, &w);
        index.observe(&before, &ev(0, 7, Basket, 0), NOW, &w);
        let n: Vec<ItemId> = index.neighbours(ItemId(7)).iter().map(|n| n.item).collect();
        assert_eq!(n, vec![ItemId(0), ItemId(1)]);
        assert!(index.neighbours(ItemId(0)).iter().any(|n| n.item == ItemId(7)));
    }

    /// Jeans (0), belt (1), shirt (2), socks (3, consumable), a retired jacket (4), an
    /// out-of-stock cap (5), a scarf (6); everyone who bought jeans bought most of the others.
    fn shop() -> (NeighbourIndex, PopularityTable, Vec<ItemFacts>) {
        use FeedbackKind::*;
        let mut log = Vec::new();
        for c in 0..20 {
            log.push(ev(c, 0, Purchase, 5));
            for item in [1, 2, 3, 4, 5] {
                if (c + item) % 3 != 0 {
                    log.push(ev(c, item, Purchase, 5));
                }
            }
        }
        for c in 20..30 {
            log.push(ev(c, 6, View, 1));
        }
        let index = NeighbourIndex::train(&log, 7, NOW, &settings());
        let pop = PopularityTable::train(&log, NOW, &FeedbackWeights::default(), |_| Vec::new(), 100);
        let mut f = facts(7);
        f[3].consumable = true;
        f[4].sellable = false;
        f[5].sellable = false;
        (index, pop, f)
    }

    #[test]
    fn viewed_item_brings_what_goes_with_it_minus_unsellable_items() {
        let (index, pop, f) = shop();
        let r = Recommender { index: &index, popularity: &pop, catalog: &f, sources: SourceWeights::default() };
        let none = HashSet::new();
        let req = Request {
            customer: None,
            viewed: Some(ItemId(0)),
            basket: &[],
            exclusions: &none,
            only: None,
            n: 3,
            max_per_cluster: 10,
        };
        let (items, personalized) = r.recommend(&req);
        assert!(!personalized);
        let ids: Vec<u32> = items.iter().map(|i| i.item.0).collect();
        assert_eq!(ids.len(), 3);
        assert!(ids.iter().all(|&i| [1, 2, 3].contains(&i)), "{ids:?}");
        assert!(
            items.iter().all(|i| i.strategy == Strategy::ViewedItem && i.reason.kind == ReasonKind::BoughtTogether)
        );
        assert!(items.iter().all(|i| i.reason.anchors == vec![ItemId(0)] && i.score > 0.0));
    }

    #[test]
    fn owned_durables_negatives_and_exclusions_are_left_out_but_consumables_stay() {
        use FeedbackKind::*;
        let (index, pop, f) = shop();
        let r = Recommender { index: &index, popularity: &pop, catalog: &f, sources: SourceWeights::default() };
        let w = FeedbackWeights::default();
        // Bought jeans, belt and socks; said no to the shirt.
        let h = History::from_interactions(
            &[ev(99, 0, Purchase, 2), ev(99, 1, Purchase, 2), ev(99, 3, Purchase, 2), ev(99, 2, Negative, 1)],
            NOW,
            &w,
        );
        let none = HashSet::new();
        let customer = CustomerView { history: &h, suppressed: &none, cluster_tier: None, segment: None };
        let req = Request {
            customer: Some(customer),
            viewed: None,
            basket: &[],
            exclusions: &none,
            only: None,
            n: 10,
            max_per_cluster: 10,
        };
        let (items, personalized) = r.recommend(&req);
        assert!(personalized);
        let ids: Vec<u32> = items.iter().map(|i| i.item.0).collect();
        assert_eq!(ids, vec![3, 6], "socks by history, then the scarf by popularity");
        assert_eq!(items[0].reason.kind, ReasonKind::BecauseYouBought);
        assert_eq!(items[0].strategy, Strategy::History);
        assert_eq!(items[1].strategy, Strategy::GlobalPopularity);
        let exclusions: HashSet<ItemId> = [ItemId(3)].into_iter().collect();
        let req = Request { exclusions: &exclusions, ..req };
        assert!(r.recommend(&req).0.iter().all(|i| i.item != ItemId(3)));
    }

    #[test]
    fn at_most_m_items_per_cluster() {
        let (index, pop, mut f) = shop();
        for (i, x) in f.iter_mut().enumerate() {
            x.cluster = Some(if i == 6 { 1 } else { 0 });
        }
        let r = Recommender { index: &index, popularity: &pop, catalog: &f, sources: SourceWeights::default() };
        let none = HashSet::new();
        let req = Request {
            customer: None,
            viewed: Some(ItemId(0)),
            basket: &[],
            exclusions: &none,
            only: None,
            n: 3,
            max_per_cluster: 1,
        };
        let ids: Vec<u32> = r.recommend(&req).0.iter().map(|i| i.item.0).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&6), "the second cluster gets its place: {ids:?}");
    }

    #[test]
    fn guests_get_basket_neighbours_and_customers_without_history_their_segment() {
        let (index, _, f) = shop();
        let seg = PopularityKey::Segment("segments/students".into());
        let pop = PopularityTable::train(
            &[
                ev(50, 6, FeedbackKind::Purchase, 0),
                ev(51, 2, FeedbackKind::Purchase, 0),
                ev(52, 2, FeedbackKind::View, 0),
            ],
            NOW,
            &FeedbackWeights::default(),
            |c| if c.0 == 50 { vec![PopularityKey::Segment("segments/students".into())] } else { Vec::new() },
            100,
        );
        let r = Recommender { index: &index, popularity: &pop, catalog: &f, sources: SourceWeights::default() };
        let none = HashSet::new();
        let basket = [ItemId(1)];
        let guest = Request {
            customer: None,
            viewed: None,
            basket: &basket,
            exclusions: &none,
            only: None,
            n: 1,
            max_per_cluster: 10,
        };
        let first = &r.recommend(&guest).0[0];
        assert_eq!((first.strategy, first.reason.kind), (Strategy::Basket, ReasonKind::GoesWithBasket));
        let empty = History::default();
        let newcomer = CustomerView { history: &empty, suppressed: &none, cluster_tier: None, segment: Some(&seg) };
        let req = Request { customer: Some(newcomer), basket: &[], ..guest };
        let (items, personalized) = r.recommend(&req);
        assert!(!personalized);
        assert_eq!(items[0].item, ItemId(6));
        assert_eq!(items[0].strategy, Strategy::SegmentPopularity);
        assert_eq!(items[0].reason.group, Some(seg));
        let guest_empty = Request { basket: &[], ..guest };
        assert_eq!(r.recommend(&guest_empty).0[0].strategy, Strategy::GlobalPopularity);
    }
}
