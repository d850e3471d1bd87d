//! Mass customization: a product assembled from module groups (waist/hip, leg length, fabric,
//! finish) whose options carry price deltas and compatibility constraints. Validates and prices
//! a selection, counts the valid variants without enumerating them, and proposes the options to
//! pre-fill from what the customer chose before.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use super::catalog::Money;

/// Most groups per product.
pub const MAX_GROUPS: usize = 64;
/// Most options per group.
pub const MAX_OPTIONS: usize = 10_000;
/// Most constraints per product.
pub const MAX_CONSTRAINTS: usize = 10_000;
/// Most options one group may allow together.
pub const MAX_SELECTIONS: u8 = 64;

/// The id of a group, option or constraint: 1–64 of `[a-z0-9_-]`, starting with a letter or
/// digit. Groups of different products sharing an id let a customer's choice carry over.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleId(String);

impl ModuleId {
    /// Parses an id, or `None` when it is malformed.
    pub fn parse(id: &str) -> Option<Self> {
        let mut bytes = id.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        (first_ok && rest_ok && id.len() <= 64).then(|| Self(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One option of one group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OptionRef {
    /// The group's id.
    pub group: ModuleId,
    /// The option's id within the group.
    pub option: ModuleId,
}

/// One choice within a group.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleOption {
    /// Unique within its group.
    pub id: ModuleId,
    /// Display title.
    pub title: String,
    /// Added to the base price when chosen, in minor units of the product's currency; may be
    /// negative.
    pub price_delta_minor: i64,
    /// Whether it is pre-filled for a customer with nothing saved.
    pub is_default: bool,
    /// Kept so that old configurations explain themselves, but no longer selectable.
    pub discontinued: bool,
}

/// One dimension a customer chooses along.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleGroup {
    /// Unique within the product.
    pub id: ModuleId,
    /// Display title.
    pub title: String,
    /// The options, in display order.
    pub options: Vec<ModuleOption>,
    /// Whether choosing nothing is allowed.
    pub optional: bool,
    /// Most options chosen together (1 for a single choice).
    pub max_selections: u8,
    /// Offered only to customers whose service level grants it.
    pub extra: bool,
}

/// How a constraint's subject relates to its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConstraintKind {
    /// With the subject, at least one target must be chosen too.
    Requires,
    /// With the subject, no target may be chosen (and so a target forbids the subject).
    Excludes,
    /// With the subject, every group holding targets may only have targets chosen (a
    /// whitelist; a group left empty is fine).
    OnlyWith,
}

/// A compatibility rule between options.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleConstraint {
    /// Unique within the product; named in violations.
    pub id: ModuleId,
    /// The rule.
    pub kind: ConstraintKind,
    /// The option the rule is about when it is chosen.
    pub subject: OptionRef,
    /// The options it refers to, none in the subject's group.
    pub targets: Vec<OptionRef>,
    /// Shown with a violation.
    pub description: String,
}

/// Why a set of groups and constraints cannot define a product.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModulesError {
    /// More than [`MAX_GROUPS`] groups or [`MAX_CONSTRAINTS`] constraints.
    #[error("too many groups or constraints")]
    TooMany,
    /// Two groups share an id.
    #[error("group `{0}` appears twice")]
    DuplicateGroup(ModuleId),
    /// A group without options or with more than [`MAX_OPTIONS`].
    #[error("group `{0}` needs 1 to 10,000 options")]
    OptionCount(ModuleId),
    /// `max_selections` outside 1–64.
    #[error("group `{0}` allows 1 to 64 selections")]
    MaxSelections(ModuleId),
    /// More defaults than `max_selections`.
    #[error("group `{0}` has more defaults than selections allowed")]
    TooManyDefaults(ModuleId),
    /// Two options of one group share an id.
    #[error("option `{}` appears twice in group `{}`", .0.option, .0.group)]
    DuplicateOption(OptionRef),
    /// Two constraints share an id.
    #[error("constraint `{0}` appears twice")]
    DuplicateConstraint(ModuleId),
    /// A constraint names an option that does not exist.
    #[error("constraint `{id}` names unknown option `{group}/{option}`", id = .0, group = .1.group, option = .1.option)]
    UnknownOption(ModuleId, OptionRef),
    /// A constraint without targets, or with a target in its subject's group.
    #[error("constraint `{0}` needs targets outside its subject's group")]
    BadTargets(ModuleId),
}

/// What can be wrong with a selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViolationKind {
    /// The group does not exist for this product.
    UnknownGroup,
    /// The option does not exist in its group.
    UnknownOption,
    /// A required group has no selection.
    MissingSelection,
    /// More options than the group allows.
    TooManySelections,
    /// The option is discontinued.
    OptionDiscontinued,
    /// The group is an extra the customer's service level does not grant.
    GroupNotOffered,
    /// A requires constraint is not met.
    ConstraintRequires,
    /// An excludes constraint is broken.
    ConstraintExcludes,
    /// An only-with constraint is broken.
    ConstraintOnlyWith,
}

/// One reason a selection is not a valid variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// What is wrong.
    pub kind: ViolationKind,
    /// The group concerned (as sent, for an unknown group).
    pub group: Option<String>,
    /// The option concerned, when there is one.
    pub option: Option<String>,
    /// The constraint broken, for constraint kinds.
    pub constraint: Option<ModuleId>,
    /// Human-readable explanation.
    pub description: String,
}

/// Which extra groups a customer may use (from their tier's service level).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GroupAccess {
    /// The standard groups only: guests and ordinary customers.
    #[default]
    Standard,
    /// Standard groups and every extra group.
    AllExtras,
    /// Standard groups and these extra groups.
    Extras(BTreeSet<ModuleId>),
}

impl GroupAccess {
    fn offers(&self, group: &ModuleGroup) -> bool {
        match self {
            _ if !group.extra => true,
            Self::Standard => false,
            Self::AllExtras => true,
            Self::Extras(ids) => ids.contains(&group.id),
        }
    }
}

/// One line of a configured price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceLine {
    /// The option priced; `None` for the base price.
    pub option: Option<OptionRef>,
    /// What the line adds, in minor units.
    pub amount_minor: i64,
}

/// A valid selection with its price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configuration {
    /// Base price plus the chosen options' deltas, never below zero.
    pub price: Money,
    /// The base price first, then each chosen option with a non-zero delta, in group order.
    pub lines: Vec<PriceLine>,
    /// The selections sorted by group and option id as `group=option[+option];...`: a stable
    /// name of the variant for order systems.
    pub variant_key: String,
}

/// What to count in [`ProductModules::count_variants`].
#[derive(Debug, Clone, Default)]
pub struct CountRequest {
    /// Count only variants containing these options.
    pub fixed: Vec<OptionRef>,
    /// Count extra groups as a key account sees them.
    pub include_extra_groups: bool,
    /// Count discontinued options as selectable.
    pub include_discontinued: bool,
}

/// The number of variants of a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VariantCount {
    /// Every combination the groups allow, ignoring constraints.
    pub before_constraints: u64,
    /// Those combinations that satisfy every constraint.
    pub after_constraints: u64,
    /// True when a count exceeded `u64::MAX` and is reported as `u64::MAX`.
    pub saturated: bool,
}

/// Why variants cannot be counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CountError {
    /// A fixed selection names a group or option the product does not have.
    #[error("fixed selection `{}/{}` does not exist", .0.group, .0.option)]
    UnknownFixed(OptionRef),
    /// The constraints tie so many options together that exact counting would take too long.
    #[error("the constraints are too entangled to count exactly")]
    TooComplex,
}

/// Where the options pre-filled for a customer come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultSource {
    /// The customer's saved configuration of this product.
    SavedForProduct,
    /// Options the customer chose in groups of the same id on other products.
    CarriedOver,
    /// The product's own defaults.
    ProductDefaults,
}

#[derive(Debug, Clone)]
struct Resolved {
    kind: ConstraintKind,
    subject: (usize, usize),
    targets: Vec<(usize, usize)>,
    /// Groups holding targets, sorted.
    target_groups: Vec<usize>,
}

/// A product's module groups and constraints, checked once and indexed.
#[derive(Debug, Clone)]
pub struct ProductModules {
    base_price: Money,
    groups: Vec<ModuleGroup>,
    constraints: Vec<ModuleConstraint>,
    group_index: HashMap<ModuleId, usize>,
    option_index: Vec<HashMap<ModuleId, usize>>,
    resolved: Vec<Resolved>,
}

impl ProductModules {
    /// Checks groups and constraints against each other and the limits.
    pub fn new(
        base_price: Money,
        groups: Vec<ModuleGroup>,
        constraints: Vec<ModuleConstraint>,
    ) -> Result<Self, ModulesError> {
        if groups.len() > MAX_GROUPS || constraints.len() > MAX_CONSTRAINTS {
            return Err(ModulesError::TooMany);
        }
        let mut group_index = HashMap::new();
        let mut option_index = Vec::with_capacity(groups.len());
        for (g, group) in groups.iter().enumerate() {
            if group_index.insert(group.id.clone(), g).is_some() {
                return Err(ModulesError::DuplicateGroup(group.id.clone()));
            }
            if group.options.is_empty() || group.options.len() > MAX_OPTIONS {
                return Err(ModulesError::OptionCount(group.id.clone()));
            }
            if !(1..=MAX_SELECTIONS).contains(&group.max_selections) {
                return Err(ModulesError::MaxSelections(group.id.clone()));
            }
            if group.options.iter().filter(|o| o.is_default).count() > usize::from(group.max_selections) {
                return Err(ModulesError::TooManyDefaults(group.id.clone()));
            }
            let mut options = HashMap::with_capacity(group.options.len());
            for (o, option) in group.options.iter().enumerate() {
                if options.insert(option.id.clone(), o).is_some() {
                    return Err(ModulesError::DuplicateOption(OptionRef {
                        group: group.id.clone(),
                        option: option.id.clone(),
                    }));
                }
            }
            option_index.push(options);
        }
        let mut this =
            Self { base_price, groups, constraints: Vec::new(), group_index, option_index, resolved: Vec::new() };
        let mut ids = BTreeSet::new();
        for c in &constraints {
            if !ids.insert(c.id.clone()) {
                return Err(ModulesError::DuplicateConstraint(c.id.clone()));
            }
            let find =
                |r: &OptionRef| this.locate(r).ok_or_else(|| ModulesError::UnknownOption(c.id.clone(), r.clone()));
            let subject = find(&c.subject)?;
            let targets = c.targets.iter().map(find).collect::<Result<Vec<_>, _>>()?;
            if targets.is_empty() || targets.iter().any(|t| t.0 == subject.0) {
                return Err(ModulesError::BadTargets(c.id.clone()));
            }
            let target_groups: BTreeSet<usize> = targets.iter().map(|t| t.0).collect();
            this.resolved.push(Resolved {
                kind: c.kind,
                subject,
                targets,
                target_groups: target_groups.into_iter().collect(),
            });
        }
        this.constraints = constraints;
        Ok(this)
    }

    /// The groups, in display order.
    pub fn groups(&self) -> &[ModuleGroup] {
        &self.groups
    }

    /// The constraints.
    pub fn constraints(&self) -> &[ModuleConstraint] {
        &self.constraints
    }

    fn locate(&self, r: &OptionRef) -> Option<(usize, usize)> {
        let g = *self.group_index.get(&r.group)?;
        let o = *self.option_index[g].get(&r.option)?;
        Some((g, o))
    }

    fn option_ref(&self, (g, o): (usize, usize)) -> OptionRef {
        OptionRef { group: self.groups[g].id.clone(), option: self.groups[g].options[o].id.clone() }
    }

    /// Validates a selection for a customer with `access` and prices it, or says everything
    /// that is wrong with it, in group order. The same option twice counts once.
    pub fn configure(&self, selections: &[OptionRef], access: &GroupAccess) -> Result<Configuration, Vec<Violation>> {
        // (group position for ordering, violation); unknown groups sort last.
        let mut violations: Vec<(usize, Violation)> = Vec::new();
        let mut chosen: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); self.groups.len()];
        let mut not_offered = BTreeSet::new();
        for r in selections {
            let Some(&g) = self.group_index.get(&r.group) else {
                violations
                    .push((usize::MAX, violation(ViolationKind::UnknownGroup, Some(&r.group), None, "no such group")));
                continue;
            };
            let group = &self.groups[g];
            let Some(&o) = self.option_index[g].get(&r.option) else {
                violations.push((
                    g,
                    violation(ViolationKind::UnknownOption, Some(&r.group), Some(&r.option), "no such option"),
                ));
                continue;
            };
            if !chosen[g].insert(o) {
                continue;
            }
            if !access.offers(group) && not_offered.insert(g) {
                violations.push((g, violation(ViolationKind::GroupNotOffered, Some(&r.group), None, "not offered")));
            }
            if group.options[o].discontinued {
                violations.push((
                    g,
                    violation(ViolationKind::OptionDiscontinued, Some(&r.group), Some(&r.option), "discontinued"),
                ));
            }
        }
        for (g, group) in self.groups.iter().enumerate() {
            let n = chosen[g].len();
            if n == 0 && !group.optional && access.offers(group) {
                violations.push((
                    g,
                    violation(ViolationKind::MissingSelection, Some(&group.id), None, "a choice is required"),
                ));
            }
            if n > usize::from(group.max_selections) {
                let text = format!("at most {} may be chosen", group.max_selections);
                violations.push((g, violation(ViolationKind::TooManySelections, Some(&group.id), None, &text)));
            }
        }
        for (c, rule) in self.resolved.iter().enumerate() {
            let is_chosen = |(g, o): (usize, usize)| chosen[g].contains(&o);
            if !is_chosen(rule.subject) {
                continue;
            }
            let broken = match rule.kind {
                ConstraintKind::Requires => !rule.targets.iter().any(|&t| is_chosen(t)),
                ConstraintKind::Excludes => rule.targets.iter().any(|&t| is_chosen(t)),
                ConstraintKind::OnlyWith => {
                    rule.target_groups.iter().any(|&g| chosen[g].iter().any(|&o| !rule.targets.contains(&(g, o))))
                }
            };
            if broken {
                let kind = match rule.kind {
                    ConstraintKind::Requires => ViolationKind::ConstraintRequires,
                    ConstraintKind::Excludes => ViolationKind::ConstraintExcludes,
                    ConstraintKind::OnlyWith => ViolationKind::ConstraintOnlyWith,
                };
                let spec = &self.constraints[c];
                let text = if spec.description.is_empty() {
                    format!("constraint `{}`", spec.id)
                } else {
                    spec.description.clone()
                };
                let mut v = violation(kind, Some(&spec.subject.group), Some(&spec.subject.option), &text);
                v.constraint = Some(spec.id.clone());
                violations.push((rule.subject.0, v));
            }
        }
        if !violations.is_empty() {
            violations.sort_by_key(|(g, _)| *g);
            return Err(violations.into_iter().map(|(_, v)| v).collect());
        }
        let mut lines = vec![PriceLine { option: None, amount_minor: self.base_price.minor }];
        let mut total = self.base_price.minor;
        let mut keyed: Vec<(&ModuleId, Vec<&ModuleId>)> = Vec::new();
        for (g, options) in chosen.iter().enumerate() {
            for &o in options {
                let delta = self.groups[g].options[o].price_delta_minor;
                total = total.saturating_add(delta);
                if delta != 0 {
                    lines.push(PriceLine { option: Some(self.option_ref((g, o))), amount_minor: delta });
                }
            }
            if !options.is_empty() {
                let mut ids: Vec<&ModuleId> = options.iter().map(|&o| &self.groups[g].options[o].id).collect();
                ids.sort();
                keyed.push((&self.groups[g].id, ids));
            }
        }
        keyed.sort();
        let variant_key = keyed
            .iter()
            .map(|(g, os)| format!("{g}={}", os.iter().map(|o| o.as_str()).collect::<Vec<_>>().join("+")))
            .collect::<Vec<_>>()
            .join(";");
        Ok(Configuration { price: Money::new(self.base_price.currency, total.max(0)), lines, variant_key })
    }

    /// The selections to pre-fill for a customer: their saved configuration of this product when
    /// it still validates; else, group by group, the first option they chose in a group of the
    /// same id on another product (`carried`, most recent first) completed with this product's
    /// defaults; else the product's defaults. Options that no longer exist or are discontinued
    /// are skipped.
    pub fn propose_defaults(
        &self,
        saved_for_product: Option<&[OptionRef]>,
        carried: &[OptionRef],
        access: &GroupAccess,
    ) -> (Vec<OptionRef>, DefaultSource) {
        if let Some(saved) = saved_for_product
            && self.configure(saved, access).is_ok()
        {
            return (saved.to_vec(), DefaultSource::SavedForProduct);
        }
        let mut out = Vec::new();
        let mut any_carried = false;
        for (g, group) in self.groups.iter().enumerate() {
            if !access.offers(group) {
                continue;
            }
            let usable = |r: &&OptionRef| {
                r.group == group.id
                    && self.option_index[g].get(&r.option).is_some_and(|&o| !group.options[o].discontinued)
            };
            let from_customer: Vec<&OptionRef> =
                carried.iter().filter(usable).take(usize::from(group.max_selections)).collect();
            if from_customer.is_empty() {
                out.extend(
                    group
                        .options
                        .iter()
                        .filter(|o| o.is_default && !o.discontinued)
                        .map(|o| OptionRef { group: group.id.clone(), option: o.id.clone() }),
                );
            } else {
                any_carried = true;
                out.extend(from_customer.into_iter().cloned());
            }
        }
        let source = if any_carried { DefaultSource::CarriedOver } else { DefaultSource::ProductDefaults };
        (out, source)
    }

    /// Counts the variants before and after the constraints.
    ///
    /// Constraints only distinguish the options they name ("touched" options): every other option
    /// of a group is interchangeable with its untouched siblings, so a group's choice reduces to a
    /// state (which touched options are chosen, whether any untouched one is) weighted by the
    /// number of choices it stands for (binomial coefficients). Groups tied by no constraint
    /// multiply; groups tied together are counted by dynamic programming over their states in a
    /// fixed order, memoised on the states of the groups still needed by a constraint not yet
    /// checked. The cost grows with the touched options, never with the product of group sizes:
    /// 227 × 25 × ... never gets enumerated.
    pub fn count_variants(&self, request: &CountRequest) -> Result<VariantCount, CountError> {
        let n = self.groups.len();
        let mut fixed: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
        for r in &request.fixed {
            let (g, o) = self.locate(r).ok_or_else(|| CountError::UnknownFixed(r.clone()))?;
            fixed[g].insert(o);
        }
        let counted: Vec<bool> = self.groups.iter().map(|g| !g.extra || request.include_extra_groups).collect();
        let allowed = |g: usize, o: usize| {
            counted[g] && (request.include_discontinued || !self.groups[g].options[o].discontinued)
        };

        // Constraints whose subject can never be chosen never fire; drop them.
        let live: Vec<&Resolved> = self.resolved.iter().filter(|c| allowed(c.subject.0, c.subject.1)).collect();
        let mut touched: Vec<BTreeSet<usize>> = fixed.clone();
        for c in &live {
            touched[c.subject.0].insert(c.subject.1);
            for &(g, o) in &c.targets {
                if allowed(g, o) {
                    touched[g].insert(o);
                }
            }
        }
        let mut states = Vec::with_capacity(n);
        for g in 0..n {
            if fixed[g].iter().any(|&o| !allowed(g, o)) {
                // A fixed option that is not counted cannot be in any counted variant.
                return Ok(VariantCount { before_constraints: 0, after_constraints: 0, saturated: false });
            }
            states.push(self.group_states(g, &touched[g], &fixed[g], counted[g], &allowed)?);
        }
        let before =
            states.iter().fold(Count::ONE, |acc, s| acc.mul(s.iter().fold(Count::ZERO, |t, st| t.add(st.weight))));

        // Components of groups tied by constraints.
        let mut parent: Vec<usize> = (0..n).collect();
        fn root(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        let scopes: Vec<Vec<usize>> = live
            .iter()
            .map(|c| {
                let mut s: BTreeSet<usize> = c.target_groups.iter().copied().collect();
                s.insert(c.subject.0);
                s.into_iter().collect()
            })
            .collect();
        for scope in &scopes {
            for w in scope.windows(2) {
                let (a, b) = (root(&mut parent, w[0]), root(&mut parent, w[1]));
                parent[a] = b;
            }
        }
        let mut components: HashMap<usize, Vec<usize>> = HashMap::new();
        for g in 0..n {
            let r = root(&mut parent, g);
            components.entry(r).or_default().push(g);
        }
        let mut after = Count::ONE;
        let mut budget = WORK_BUDGET;
        for groups in components.values() {
            let rules: Vec<(usize, &Resolved)> = live
                .iter()
                .enumerate()
                .filter(|(i, _)| groups.contains(&scopes[*i][0]))
                .map(|(i, c)| (i, *c))
                .collect();
            let c = if rules.is_empty() {
                states[groups[0]].iter().fold(Count::ZERO, |t, st| t.add(st.weight))
            } else {
                ComponentCounter::new(groups, &rules, &scopes, &states).count(&mut budget)?
            };
            after = after.mul(c);
        }
        Ok(VariantCount {
            before_constraints: before.to_u64(),
            after_constraints: after.to_u64(),
            saturated: before.is_saturated() || after.is_saturated(),
        })
    }

    fn group_states(
        &self,
        g: usize,
        touched: &BTreeSet<usize>,
        fixed: &BTreeSet<usize>,
        counted: bool,
        allowed: &dyn Fn(usize, usize) -> bool,
    ) -> Result<Vec<GroupState>, CountError> {
        let group = &self.groups[g];
        let (min, max) =
            if counted { (usize::from(!group.optional), usize::from(group.max_selections)) } else { (0, 0) };
        let untouched = (0..group.options.len()).filter(|&o| allowed(g, o) && !touched.contains(&o)).count();
        let binoms: Vec<Count> = (0..=max).map(|k| binomial(untouched, k)).collect();
        let touched: Vec<usize> = touched.iter().copied().collect();
        let mut out = Vec::new();
        let mut current = Vec::new();
        let mut push = |chosen: &[usize]| -> Result<(), CountError> {
            if !fixed.iter().all(|f| chosen.contains(f)) {
                return Ok(());
            }
            let t = chosen.len();
            if (min..=max).contains(&t) {
                out.push(GroupState { chosen: chosen.to_vec(), any_untouched: false, weight: Count::ONE });
            }
            let with_untouched =
                (min.saturating_sub(t).max(1)..=max.saturating_sub(t)).fold(Count::ZERO, |acc, u| acc.add(binoms[u]));
            if t < max && with_untouched != Count::ZERO {
                out.push(GroupState { chosen: chosen.to_vec(), any_untouched: true, weight: with_untouched });
            }
            if out.len() > MAX_STATES_PER_GROUP {
                return Err(CountError::TooComplex);
            }
            Ok(())
        };
        subsets(&touched, 0, max, &mut current, &mut push)?;
        Ok(out)
    }

    /// The product's own default options in its standard groups.
    pub fn default_selections(&self) -> Vec<OptionRef> {
        self.propose_defaults(None, &[], &GroupAccess::Standard).0
    }
}

/// Calls `f` with every subset of `items[from..]` added to `current`, up to `max` elements.
fn subsets(
    items: &[usize],
    from: usize,
    max: usize,
    current: &mut Vec<usize>,
    f: &mut dyn FnMut(&[usize]) -> Result<(), CountError>,
) -> Result<(), CountError> {
    f(current)?;
    if current.len() == max {
        return Ok(());
    }
    for i in from..items.len() {
        current.push(items[i]);
        subsets(items, i + 1, max, current, f)?;
        current.pop();
    }
    Ok(())
}

fn violation(kind: ViolationKind, group: Option<&ModuleId>, option: Option<&ModuleId>, text: &str) -> Violation {
    Violation {
        kind,
        group: group.map(|g| g.to_string()),
        option: option.map(|o| o.to_string()),
        constraint: None,
        description: text.to_owned(),
    }
}

/// States one group may take beyond which counting gives up.
const MAX_STATES_PER_GROUP: usize = 200_000;
/// Steps of the component recursion beyond which counting gives up.
const WORK_BUDGET: u64 = 50_000_000;

/// A count that saturates: any value at or above 2^64 stands for "more than `u64::MAX`", so
/// products of two counts always fit in `u128` before clamping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Count(u128);

impl Count {
    const ZERO: Count = Count(0);
    const ONE: Count = Count(1);
    const CAP: u128 = 1 << 64;

    fn new(v: u128) -> Self {
        Count(v.min(Self::CAP))
    }
    fn add(self, o: Count) -> Count {
        Count::new(self.0.saturating_add(o.0))
    }
    fn mul(self, o: Count) -> Count {
        Count::new(self.0.saturating_mul(o.0))
    }
    fn is_saturated(self) -> bool {
        self.0 >= Self::CAP
    }
    fn to_u64(self) -> u64 {
        u64::try_from(self.0).unwrap_or(u64::MAX)
    }
}

/// C(n, k), saturating. With k ≤ n − k the running products C(n − k + j, j) only grow, so the
/// first one past the cap proves the result is past it too.
fn binomial(n: usize, k: usize) -> Count {
    if k > n {
        return Count::ZERO;
    }
    let k = k.min(n - k);
    let mut r: u128 = 1;
    for j in 1..=k {
        r = r * (n - k + j) as u128 / j as u128;
        if r >= Count::CAP {
            return Count::new(r);
        }
    }
    Count::new(r)
}

/// One way a group may be chosen, as far as the constraints can tell.
#[derive(Debug, Clone)]
struct GroupState {
    /// Touched options chosen, sorted.
    chosen: Vec<usize>,
    /// Whether at least one untouched option is chosen too.
    any_untouched: bool,
    /// How many actual choices of the group this state stands for.
    weight: Count,
}

/// Counts the valid combinations of one component of groups tied by constraints.
struct ComponentCounter<'a> {
    /// Groups in the order they are assigned.
    order: Vec<usize>,
    /// For each position, the constraints that can be checked once it is assigned.
    checks: Vec<Vec<&'a Resolved>>,
    /// For each position, the earlier positions whose state later checks still need.
    frontier: Vec<Vec<usize>>,
    /// Position of each group in `order`.
    position: HashMap<usize, usize>,
    states: &'a [Vec<GroupState>],
    memo: HashMap<(usize, Vec<u32>), Count>,
}

impl<'a> ComponentCounter<'a> {
    fn new(
        groups: &[usize],
        rules: &[(usize, &'a Resolved)],
        scopes: &[Vec<usize>],
        states: &'a [Vec<GroupState>],
    ) -> Self {
        let order = groups.to_vec();
        let position: HashMap<usize, usize> = order.iter().enumerate().map(|(i, &g)| (g, i)).collect();
        let mut checks = vec![Vec::new(); order.len()];
        let mut spans = Vec::new();
        for &(i, rule) in rules {
            let positions: Vec<usize> = scopes[i].iter().map(|g| position[g]).collect();
            let first = positions.iter().copied().min().unwrap_or(0);
            let last = positions.iter().copied().max().unwrap_or(0);
            checks[last].push(rule);
            spans.push((positions, first, last));
        }
        // Position p is needed at step i (> p) when a constraint involving p ends at or after i.
        let frontier = (0..order.len())
            .map(|i| {
                let mut needed: BTreeSet<usize> = BTreeSet::new();
                for (positions, _, last) in &spans {
                    if *last >= i {
                        needed.extend(positions.iter().copied().filter(|&p| p < i));
                    }
                }
                needed.into_iter().collect()
            })
            .collect();
        Self { order, checks, frontier, position, states, memo: HashMap::new() }
    }

    fn count(&mut self, budget: &mut u64) -> Result<Count, CountError> {
        let mut assigned = vec![0u32; self.order.len()];
        self.count_from(0, &mut assigned, budget)
    }

    fn count_from(&mut self, i: usize, assigned: &mut [u32], budget: &mut u64) -> Result<Count, CountError> {
        if i == self.order.len() {
            return Ok(Count::ONE);
        }
        let key = (i, self.frontier[i].iter().map(|&p| assigned[p]).collect::<Vec<u32>>());
        if let Some(&c) = self.memo.get(&key) {
            return Ok(c);
        }
        let g = self.order[i];
        let mut total = Count::ZERO;
        for s in 0..self.states[g].len() {
            *budget = budget.checked_sub(1).ok_or(CountError::TooComplex)?;
            assigned[i] = s as u32;
            if self.checks[i].iter().all(|rule| self.satisfied(rule, assigned)) {
                let rest = self.count_from(i + 1, assigned, budget)?;
                total = total.add(self.states[g][s].weight.mul(rest));
            }
        }
        self.memo.insert(key, total);
        Ok(total)
    }

    fn state(&self, g: usize, assigned: &[u32]) -> &GroupState {
        &self.states[g][assigned[self.position[&g]] as usize]
    }

    fn satisfied(&self, rule: &Resolved, assigned: &[u32]) -> bool {
        let is_chosen = |(g, o): (usize, usize)| self.state(g, assigned).chosen.binary_search(&o).is_ok();
        if !is_chosen(rule.subject) {
            return true;
        }
        match rule.kind {
            ConstraintKind::Requires => rule.targets.iter().any(|&t| is_chosen(t)),
            ConstraintKind::Excludes => !rule.targets.iter().any(|&t| is_chosen(t)),
            ConstraintKind::OnlyWith => rule.target_groups.iter().all(|&g| {
                let st = self.state(g, assigned);
                !st.any_untouched && st.chosen.iter().all(|&o| rule.targets.contains(&(g, o)))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::CurrencyCode;
    use rand::{RngExt as _, SeedableRng as _, rngs::Xoshiro256PlusPlus};

    fn id(s: &str) -> ModuleId {
        ModuleId::parse(s).expect("valid id")
    }

    fn opt(g: &str, o: &str) -> OptionRef {
        OptionRef { group: id(g), option: id(o) }
    }

    fn eur(minor: i64) -> Money {
        Money::new(CurrencyCode::parse("EUR").expect("valid code"), minor)
    }

    fn group(gid: &str, options: &[&str], optional: bool) -> ModuleGroup {
        ModuleGroup {
            id: id(gid),
            title: gid.to_owned(),
            options: options
                .iter()
                .map(|o| ModuleOption {
                    id: id(o),
                    title: (*o).to_owned(),
                    price_delta_minor: 0,
                    is_default: false,
                    discontinued: false,
                })
                .collect(),
            optional,
            max_selections: 1,
            extra: false,
        }
    }

    fn rule(cid: &str, kind: ConstraintKind, subject: OptionRef, targets: Vec<OptionRef>) -> ModuleConstraint {
        ModuleConstraint { id: id(cid), kind, subject, targets, description: String::new() }
    }

    fn waist_ids() -> Vec<String> {
        (0..227).map(|i| format!("wh{i:03}")).collect()
    }

    /// Leg lengths 26 to 50 inches: 25 options.
    fn leg_ids() -> Vec<String> {
        (26..=50).map(|l| format!("l{l}")).collect()
    }

    fn jeans(extra_groups: Vec<ModuleGroup>, constraints: Vec<ModuleConstraint>) -> ProductModules {
        let waists = waist_ids();
        let legs = leg_ids();
        let mut groups = vec![
            group("waist-hip", &waists.iter().map(String::as_str).collect::<Vec<_>>(), false),
            group("leg-length", &legs.iter().map(String::as_str).collect::<Vec<_>>(), false),
        ];
        groups.extend(extra_groups);
        ProductModules::new(eur(7900), groups, constraints).expect("valid modules")
    }

    fn fabric() -> ModuleGroup {
        group("fabric", &["denim", "stretch", "raw"], false)
    }

    fn count(p: &ProductModules) -> VariantCount {
        p.count_variants(&CountRequest::default()).expect("countable")
    }

    #[test]
    fn jeans_have_227_times_25_variants() {
        let c = count(&jeans(vec![], vec![]));
        assert_eq!(c.before_constraints, 5_675);
        assert_eq!(c.after_constraints, 5_675);
        assert!(!c.saturated);
    }

    #[test]
    fn excludes_removes_the_forbidden_pairs() {
        // Stretch excludes the five longest legs (46–50 inches). Before: 227 × 25 × 3 = 17,025.
        // Broken: every waist × stretch × one of 5 legs = 227 × 1 × 5 = 1,135.
        // After: 17,025 − 1,135 = 15,890.
        let long_legs = (46..=50).map(|l| opt("leg-length", &format!("l{l}"))).collect();
        let p = jeans(
            vec![fabric()],
            vec![rule("no-long-stretch", ConstraintKind::Excludes, opt("fabric", "stretch"), long_legs)],
        );
        let c = count(&p);
        assert_eq!(c.before_constraints, 17_025);
        assert_eq!(c.after_constraints, 15_890);
    }

    #[test]
    fn requires_removes_variants_missing_the_target() {
        // Optional finish {rinse, stone, monogram} has 4 choices (none or one); patch
        // {leather, woven} 2. Before: 5,675 × 3 × 4 × 2 = 136,200. "Monogram requires
        // leather" breaks monogram + woven: 5,675 × 3 × 1 × 1 = 17,025. After: 119,175.
        let p = jeans(
            vec![
                fabric(),
                group("finish", &["rinse", "stone", "monogram"], true),
                group("patch", &["leather", "woven"], false),
            ],
            vec![rule(
                "monogram-leather",
                ConstraintKind::Requires,
                opt("finish", "monogram"),
                vec![opt("patch", "leather")],
            )],
        );
        let c = count(&p);
        assert_eq!(c.before_constraints, 136_200);
        assert_eq!(c.after_constraints, 119_175);
    }

    #[test]
    fn only_with_keeps_the_subject_to_its_whitelist() {
        // Stretch is cut only in leg lengths 28–34 (7 of 25). Before: 17,025. Broken: stretch
        // with one of the 18 other legs, for every waist: 227 × 18 = 4,086. After: 12,939.
        let legs = (28..=34).map(|l| opt("leg-length", &format!("l{l}"))).collect();
        let p = jeans(
            vec![fabric()],
            vec![rule("stretch-short", ConstraintKind::OnlyWith, opt("fabric", "stretch"), legs)],
        );
        let c = count(&p);
        assert_eq!(c.before_constraints, 17_025);
        assert_eq!(c.after_constraints, 12_939);
    }

    #[test]
    fn only_with_accepts_an_empty_optional_group() {
        // Embroidery {flower, star} optional (3 choices); "gold thread only with star".
        // Thread {gold, silver}: 2. Before: 3 × 2 = 6. Broken: gold + flower only. After: 5.
        let p = ProductModules::new(
            eur(100),
            vec![group("embroidery", &["flower", "star"], true), group("thread", &["gold", "silver"], false)],
            vec![rule("gold-star", ConstraintKind::OnlyWith, opt("thread", "gold"), vec![opt("embroidery", "star")])],
        )
        .expect("valid");
        assert_eq!(count(&p).after_constraints, 5);
        assert!(p.configure(&[opt("thread", "gold")], &GroupAccess::Standard).is_ok());
    }

    #[test]
    fn fixed_selections_count_what_remains() {
        let long_legs = (46..=50).map(|l| opt("leg-length", &format!("l{l}"))).collect();
        let p = jeans(
            vec![fabric()],
            vec![rule("no-long-stretch", ConstraintKind::Excludes, opt("fabric", "stretch"), long_legs)],
        );
        let c = p
            .count_variants(&CountRequest { fixed: vec![opt("fabric", "stretch")], ..Default::default() })
            .expect("countable");
        // 227 waists × 25 legs before; 227 × 20 after.
        assert_eq!((c.before_constraints, c.after_constraints), (5_675, 4_540));
        let unknown = p.count_variants(&CountRequest { fixed: vec![opt("fabric", "silk")], ..Default::default() });
        assert_eq!(unknown, Err(CountError::UnknownFixed(opt("fabric", "silk"))));
    }

    #[test]
    fn a_chain_of_64_constrained_groups_counts_without_enumeration() {
        // 64 groups {a, b}, and "a in group i excludes a in group i + 1": the valid variants are
        // the 64-letter words over {a, b} without "aa", counted by Fibonacci: F(66) =
        // 27,777,890,035,288. Enumeration would visit 2^64 combinations.
        let groups = (0..64).map(|g| group(&format!("g{g}"), &["a", "b"], false)).collect();
        let constraints = (0..63)
            .map(|g| {
                let next = vec![opt(&format!("g{}", g + 1), "a")];
                rule(&format!("c{g}"), ConstraintKind::Excludes, opt(&format!("g{g}"), "a"), next)
            })
            .collect();
        let c = count(&ProductModules::new(eur(1), groups, constraints).expect("valid"));
        assert_eq!(c.before_constraints, u64::MAX);
        assert!(c.saturated, "2^64 does not fit");
        assert_eq!(c.after_constraints, 27_777_890_035_288);
    }

    #[test]
    fn counts_saturate_beyond_u64() {
        // 64 groups of 10,000 options: 10^256 variants.
        let options: Vec<String> = (0..10_000).map(|i| format!("o{i}")).collect();
        let refs: Vec<&str> = options.iter().map(String::as_str).collect();
        let groups = (0..64).map(|g| group(&format!("g{g}"), &refs, false)).collect();
        let c = count(&ProductModules::new(eur(1), groups, vec![]).expect("valid"));
        assert!(c.saturated);
        assert_eq!(c.before_constraints, u64::MAX);
    }

    #[test]
    fn configure_prices_a_valid_selection_with_lines_and_key() {
        let mut f = fabric();
        f.options[1].price_delta_minor = 1500;
        let p = jeans(vec![f], vec![]);
        let sel = [opt("waist-hip", "wh010"), opt("leg-length", "l32"), opt("fabric", "stretch")];
        let conf = p.configure(&sel, &GroupAccess::Standard).expect("valid");
        assert_eq!(conf.price, eur(9400));
        assert_eq!(conf.lines.len(), 2);
        assert_eq!(conf.lines[1].option, Some(opt("fabric", "stretch")));
        assert_eq!(conf.variant_key, "fabric=stretch;leg-length=l32;waist-hip=wh010");
    }

    #[test]
    fn configure_names_each_violation_in_group_order() {
        let legs = (28..=34).map(|l| opt("leg-length", &format!("l{l}"))).collect();
        let mut extra = group("monogram", &["initials"], true);
        extra.extra = true;
        let p = jeans(
            vec![fabric(), extra],
            vec![rule("stretch-short", ConstraintKind::OnlyWith, opt("fabric", "stretch"), legs)],
        );
        let sel =
            [opt("leg-length", "l40"), opt("fabric", "stretch"), opt("monogram", "initials"), opt("colour", "red")];
        let violations = p.configure(&sel, &GroupAccess::Standard).expect_err("invalid");
        let got: Vec<(ViolationKind, Option<&str>, Option<&str>)> =
            violations.iter().map(|v| (v.kind, v.group.as_deref(), v.option.as_deref())).collect();
        assert_eq!(
            got,
            vec![
                (ViolationKind::MissingSelection, Some("waist-hip"), None),
                (ViolationKind::ConstraintOnlyWith, Some("fabric"), Some("stretch")),
                (ViolationKind::GroupNotOffered, Some("monogram"), None),
                (ViolationKind::UnknownGroup, Some("colour"), None),
            ]
        );
        assert_eq!(violations[1].constraint, Some(id("stretch-short")));
        let key_account = GroupAccess::Extras([id("monogram")].into_iter().collect());
        let fixed = [
            opt("waist-hip", "wh000"),
            opt("leg-length", "l30"),
            opt("fabric", "stretch"),
            opt("monogram", "initials"),
        ];
        assert!(p.configure(&fixed, &key_account).is_ok());
    }

    #[test]
    fn defaults_come_from_saved_then_carried_over_then_product() {
        let mut f = fabric();
        f.options[0].is_default = true;
        let p = jeans(vec![f], vec![]);
        let (sel, source) = p.propose_defaults(None, &[], &GroupAccess::Standard);
        assert_eq!((sel, source), (vec![opt("fabric", "denim")], DefaultSource::ProductDefaults));
        let carried = [opt("waist-hip", "wh034"), opt("waist-hip", "wh040"), opt("colour", "blue")];
        let (sel, source) = p.propose_defaults(None, &carried, &GroupAccess::Standard);
        assert_eq!(source, DefaultSource::CarriedOver);
        assert_eq!(sel, vec![opt("waist-hip", "wh034"), opt("fabric", "denim")]);
        let saved = [opt("waist-hip", "wh001"), opt("leg-length", "l30"), opt("fabric", "raw")];
        assert_eq!(
            p.propose_defaults(Some(&saved), &carried, &GroupAccess::Standard).1,
            DefaultSource::SavedForProduct
        );
        // A saved configuration that no longer validates is not proposed as it is.
        let stale = [opt("waist-hip", "wh001")];
        assert_eq!(p.propose_defaults(Some(&stale), &carried, &GroupAccess::Standard).1, DefaultSource::CarriedOver);
    }

    #[test]
    fn modules_reject_unknown_targets_and_duplicates() {
        let bad = ProductModules::new(
            eur(1),
            vec![fabric(), group("leg-length", &["l30"], false)],
            vec![rule("r", ConstraintKind::Requires, opt("fabric", "stretch"), vec![opt("leg-length", "l99")])],
        );
        assert!(matches!(bad, Err(ModulesError::UnknownOption(..))));
        let dup = ProductModules::new(eur(1), vec![fabric(), fabric()], vec![]);
        assert_eq!(dup.err(), Some(ModulesError::DuplicateGroup(id("fabric"))));
        let same_group = ProductModules::new(
            eur(1),
            vec![fabric()],
            vec![rule("r", ConstraintKind::Excludes, opt("fabric", "stretch"), vec![opt("fabric", "raw")])],
        );
        assert_eq!(same_group.err(), Some(ModulesError::BadTargets(id("r"))));
        assert!(
            ModuleId::parse("Waist").is_none() && ModuleId::parse("-w").is_none() && ModuleId::parse("w_1-a").is_some()
        );
    }

    /// A small random product: 1–4 groups of 1–3 options, random optionality, multi-choice,
    /// extras, discontinued options and up to four constraints of every kind.
    fn random_product(rng: &mut Xoshiro256PlusPlus) -> ProductModules {
        let n_groups = 1 + rng.random_range(0..4);
        let mut groups = Vec::new();
        for g in 0..n_groups {
            let n_opts = 1 + rng.random_range(0..3);
            let names: Vec<String> = (0..n_opts).map(|o| format!("o{o}")).collect();
            let mut grp =
                group(&format!("g{g}"), &names.iter().map(String::as_str).collect::<Vec<_>>(), rng.random_bool(0.4));
            grp.max_selections = 1 + rng.random_range(0..3) as u8;
            grp.extra = rng.random_bool(0.15);
            for o in &mut grp.options {
                o.discontinued = rng.random_bool(0.1);
            }
            groups.push(grp);
        }
        let mut constraints = Vec::new();
        if n_groups > 1 {
            for c in 0..rng.random_range(0..5) {
                let sg = rng.random_range(0..n_groups);
                let subject = opt(&format!("g{sg}"), &format!("o{}", rng.random_range(0..groups[sg].options.len())));
                let mut targets = Vec::new();
                for _ in 0..1 + rng.random_range(0..3) {
                    let tg = (sg + 1 + rng.random_range(0..n_groups - 1)) % n_groups;
                    let t = opt(&format!("g{tg}"), &format!("o{}", rng.random_range(0..groups[tg].options.len())));
                    if !targets.contains(&t) {
                        targets.push(t);
                    }
                }
                let kind = [ConstraintKind::Requires, ConstraintKind::Excludes, ConstraintKind::OnlyWith]
                    [rng.random_range(0..3)];
                constraints.push(rule(&format!("c{c}"), kind, subject, targets));
            }
        }
        ProductModules::new(eur(1000), groups, constraints).expect("valid random product")
    }

    /// Counts by trying every subset of every group through `configure`.
    fn brute_force(p: &ProductModules, request: &CountRequest) -> u64 {
        let access = if request.include_extra_groups { GroupAccess::AllExtras } else { GroupAccess::Standard };
        let per_group: Vec<Vec<Vec<OptionRef>>> = p
            .groups()
            .iter()
            .map(|g| {
                (0u32..1 << g.options.len())
                    .map(|mask| {
                        g.options
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| mask & (1 << i) != 0)
                            .map(|(_, o)| OptionRef { group: g.id.clone(), option: o.id.clone() })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let mut total = 0;
        let mut pick = vec![0usize; per_group.len()];
        loop {
            let selection: Vec<OptionRef> =
                pick.iter().enumerate().flat_map(|(g, &i)| per_group[g][i].clone()).collect();
            let has_fixed = request.fixed.iter().all(|f| selection.contains(f));
            let valid = match p.configure(&selection, &access) {
                Ok(_) => true,
                Err(vs) => {
                    request.include_discontinued && vs.iter().all(|v| v.kind == ViolationKind::OptionDiscontinued)
                }
            };
            total += u64::from(has_fixed && valid);
            let mut g = 0;
            loop {
                if g == pick.len() {
                    return total;
                }
                pick[g] += 1;
                if pick[g] < per_group[g].len() {
                    break;
                }
                pick[g] = 0;
                g += 1;
            }
        }
    }

    #[test]
    fn fast_count_equals_brute_force_on_random_small_products() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(20_261_123);
        let mut nonzero = 0;
        for case in 0..300 {
            let p = random_product(&mut rng);
            let mut request = CountRequest {
                fixed: Vec::new(),
                include_extra_groups: rng.random_bool(0.5),
                include_discontinued: rng.random_bool(0.5),
            };
            if rng.random_bool(0.3) {
                let g = &p.groups()[rng.random_range(0..p.groups().len())];
                let o = &g.options[rng.random_range(0..g.options.len())];
                request.fixed.push(OptionRef { group: g.id.clone(), option: o.id.clone() });
            }
            let fast = p.count_variants(&request).expect("countable").after_constraints;
            let slow = brute_force(&p, &request);
            assert_eq!(fast, slow, "case {case}: {p:?} {request:?}");
            nonzero += u64::from(fast > 0);
        }
        // The generator must produce interesting products, not only empty ones.
        assert!(nonzero > 150, "only {nonzero} products with variants");
    }
}
