//! The catalog's vocabulary shared by the configurator and the recommender: money in one
//! currency, skus and category paths, where a product is in its life, whether it can be sold
//! now, and bundles priced from their parts.

use std::fmt;

/// An ISO 4217 currency code: three ASCII capital letters, checked once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CurrencyCode([u8; 3]);

impl CurrencyCode {
    /// Parses a code such as "EUR".
    pub fn parse(code: &str) -> Option<Self> {
        let bytes: [u8; 3] = code.as_bytes().try_into().ok()?;
        bytes.iter().all(u8::is_ascii_uppercase).then_some(Self(bytes))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII capitals are ever stored, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount in minor units (cents) of one currency. Amounts of different currencies are
/// never added: the sums here return `None` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    /// The currency.
    pub currency: CurrencyCode,
    /// Minor units; negative only for price deltas.
    pub minor: i64,
}

impl Money {
    /// An amount of `minor` units of `currency`.
    pub fn new(currency: CurrencyCode, minor: i64) -> Self {
        Self { currency, minor }
    }

    /// The sum, or `None` for different currencies or an overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        (self.currency == other.currency)
            .then(|| self.minor.checked_add(other.minor))
            .flatten()
            .map(|minor| Money::new(self.currency, minor))
    }

    /// `quantity` times this amount, or `None` on overflow.
    pub fn checked_times(self, quantity: u32) -> Option<Money> {
        self.minor.checked_mul(i64::from(quantity)).map(|minor| Money::new(self.currency, minor))
    }
}

/// Where a product is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// Newly launched, little or no history: the target of prospecting.
    New,
    /// On sale.
    Active,
    /// No longer sold; kept because history refers to it. Never recommended or configured.
    Retired,
}

impl Lifecycle {
    /// Whether a product may move from this stage to `next`: a retired product may come back
    /// on sale but is never new again.
    pub fn can_become(self, next: Lifecycle) -> bool {
        !(self == Lifecycle::Retired && next == Lifecycle::New)
    }
}

/// A stock-keeping unit: 1–64 letters, digits, `.`, `_`, `-` or `/`. Purchases refer to
/// products by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sku(String);

impl Sku {
    /// Parses a sku, or `None` when it is malformed.
    pub fn parse(sku: &str) -> Option<Self> {
        let ok = (1..=64).contains(&sku.len())
            && sku.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
        ok.then(|| Self(sku.to_owned()))
    }

    /// The sku as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A `/`-separated category path from general to specific ("apparel/jeans"): 1–200
/// characters, no empty segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CategoryPath(String);

impl CategoryPath {
    /// Parses a path, or `None` when it is malformed.
    pub fn parse(path: &str) -> Option<Self> {
        let ok = (1..=200).contains(&path.chars().count()) && path.split('/').all(|seg| !seg.trim().is_empty());
        ok.then(|| Self(path.to_owned()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this path is `category` or lies below it: "apparel/jeans" is within "apparel",
    /// "apparel-outlet" is not.
    pub fn is_within(&self, category: &CategoryPath) -> bool {
        self.0 == category.0 || self.0.strip_prefix(category.0.as_str()).is_some_and(|rest| rest.starts_with('/'))
    }

    /// The first segment, at which categories bought per customer are measured.
    pub fn top_level(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }
}

/// Whether a product can be sold now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Availability {
    /// Can be sold and delivered now.
    Available,
    /// Temporarily out of stock: left out of recommendations and offers.
    OutOfStock,
    /// Orderable now for later delivery.
    Backorder,
    /// Made for each order from its modules.
    MadeToOrder,
}

/// Whether a product may be recommended, offered or configured at all.
pub fn is_sellable(lifecycle: Lifecycle, availability: Availability) -> bool {
    lifecycle != Lifecycle::Retired && availability != Availability::OutOfStock
}

/// One product inside a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleComponent<P> {
    /// The component product.
    pub product: P,
    /// Units of it in the package (1–1000).
    pub quantity: u32,
}

/// A package of other products sold together, such as a bank's one-stop package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle<P> {
    components: Vec<BundleComponent<P>>,
}

/// Why a bundle cannot be formed or priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// A bundle needs 1–50 components.
    #[error("a bundle holds 1 to 50 components, not {0}")]
    ComponentCount(usize),
    /// A quantity outside 1–1000, at this component index.
    #[error("component {0} has a quantity outside 1 to 1000")]
    Quantity(usize),
    /// The component at this index is the bundle itself.
    #[error("component {0} is the bundle itself")]
    ContainsItself(usize),
    /// The component at this index has no known price.
    #[error("component {0} has no known price")]
    UnknownComponent(usize),
    /// The component at this index is priced in another currency than the first.
    #[error("component {0} is priced in another currency")]
    MixedCurrencies(usize),
    /// The parts' total does not fit in 64 bits.
    #[error("the parts' total overflows")]
    Overflow,
}

/// A bundle's price against the sum of its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundlePrice {
    /// The sum of the components' prices times their quantities.
    pub parts_total: Money,
    /// What the package sells for.
    pub package_price: Money,
    /// `parts_total − package_price`: what the customer saves by taking the package
    /// (negative when the package costs more than its parts).
    pub saving_minor: i64,
}

impl<P: PartialEq> Bundle<P> {
    /// A bundle `own` made of `components`, checked for size, quantities and self-reference.
    /// Deeper nesting is checked where the catalog is, since it needs the stored bundles.
    pub fn new(own: &P, components: Vec<BundleComponent<P>>) -> Result<Self, BundleError> {
        if components.is_empty() || components.len() > 50 {
            return Err(BundleError::ComponentCount(components.len()));
        }
        for (i, c) in components.iter().enumerate() {
            if !(1..=1000).contains(&c.quantity) {
                return Err(BundleError::Quantity(i));
            }
            if &c.product == own {
                return Err(BundleError::ContainsItself(i));
            }
        }
        Ok(Self { components })
    }

    /// The components, in the order given.
    pub fn components(&self) -> &[BundleComponent<P>] {
        &self.components
    }

    /// Prices the bundle from its parts: `price_of` gives each component's selling price (a
    /// nested bundle's package price, since that is what it sells for alone).
    pub fn price(
        &self,
        package_price: Money,
        price_of: impl Fn(&P) -> Option<Money>,
    ) -> Result<BundlePrice, BundleError> {
        let mut total = Money::new(package_price.currency, 0);
        for (i, c) in self.components.iter().enumerate() {
            let unit = price_of(&c.product).ok_or(BundleError::UnknownComponent(i))?;
            if unit.currency != package_price.currency {
                return Err(BundleError::MixedCurrencies(i));
            }
            let line = unit.checked_times(c.quantity).ok_or(BundleError::Overflow)?;
            total = total.checked_add(line).ok_or(BundleError::Overflow)?;
        }
        let saving_minor = total.minor.checked_sub(package_price.minor).ok_or(BundleError::Overflow)?;
        Ok(BundlePrice { parts_total: total, package_price, saving_minor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(minor: i64) -> Money {
        Money::new(CurrencyCode::parse("EUR").expect("valid code"), minor)
    }

    #[test]
    fn currency_codes_are_three_capitals() {
        assert!(CurrencyCode::parse("EUR").is_some());
        assert!(CurrencyCode::parse("eur").is_none());
        assert!(CurrencyCode::parse("EURO").is_none());
    }

    #[test]
    fn a_retired_product_never_becomes_new_again() {
        assert!(!Lifecycle::Retired.can_become(Lifecycle::New));
        assert!(Lifecycle::Retired.can_become(Lifecycle::Active));
        assert!(Lifecycle::New.can_become(Lifecycle::Retired));
    }

    #[test]
    fn categories_contain_their_subpaths_only() {
        let path = |p: &str| CategoryPath::parse(p).expect("valid path");
        assert!(path("apparel/jeans").is_within(&path("apparel")));
        assert!(path("apparel").is_within(&path("apparel")));
        assert!(!path("apparel-outlet").is_within(&path("apparel")));
        assert!(!path("apparel").is_within(&path("apparel/jeans")));
        assert_eq!(path("banking/savings/junior").top_level(), "banking");
        assert!(CategoryPath::parse("apparel//jeans").is_none() && CategoryPath::parse("").is_none());
        assert!(Sku::parse("JEANS-501/32x34").is_some());
        assert!(Sku::parse("jeans 501").is_none() && Sku::parse("").is_none());
    }

    #[test]
    fn bundle_is_priced_from_its_parts_with_the_saving() {
        // A one-stop banking package: current account 5.00, two cards at 2.50, savings 0.
        let bundle = Bundle::new(
            &"package",
            vec![
                BundleComponent { product: "current", quantity: 1 },
                BundleComponent { product: "card", quantity: 2 },
                BundleComponent { product: "savings", quantity: 1 },
            ],
        )
        .expect("valid bundle");
        let price = bundle
            .price(eur(800), |p| match *p {
                "current" => Some(eur(500)),
                "card" => Some(eur(250)),
                "savings" => Some(eur(0)),
                _ => None,
            })
            .expect("priced");
        assert_eq!(price.parts_total, eur(1000));
        assert_eq!(price.saving_minor, 200);
    }

    #[test]
    fn bundle_rejects_itself_bad_quantities_and_foreign_currencies() {
        assert_eq!(
            Bundle::new(&"b", vec![BundleComponent { product: "b", quantity: 1 }]),
            Err(BundleError::ContainsItself(0))
        );
        assert_eq!(
            Bundle::new(&"b", vec![BundleComponent { product: "x", quantity: 0 }]),
            Err(BundleError::Quantity(0))
        );
        assert_eq!(Bundle::<&str>::new(&"b", vec![]), Err(BundleError::ComponentCount(0)));
        let bundle = Bundle::new(&"b", vec![BundleComponent { product: "x", quantity: 1 }]).expect("valid");
        let usd = Money::new(CurrencyCode::parse("USD").expect("valid code"), 100);
        assert_eq!(bundle.price(eur(100), |_| Some(usd)), Err(BundleError::MixedCurrencies(0)));
        assert_eq!(bundle.price(eur(100), |_| None), Err(BundleError::UnknownComponent(0)));
    }
}
