//! Calendar arithmetic and the ways dates and phone numbers are written down by different channels.

/// The "today" of every generated population, so that ages do not depend on the clock.
pub(crate) const REFERENCE_DATE: (i32, u32, u32) = (2025, 6, 30);

/// Whether `year` is a leap year in the Gregorian calendar.
pub(crate) fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Number of days in `month` (1..=12) of `year`.
pub(crate) fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Whether (year, month, day) is a real calendar date.
pub(crate) fn is_valid_date(year: i32, month: u32, day: u32) -> bool {
    (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month)
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub(crate) fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01 (inverse of [`days_from_civil`]).
pub(crate) fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // The ranges above keep every component small; the conversions cannot truncate.
    (year as i32, month as u32, day as u32)
}

/// How a channel writes a birth date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateFormat {
    /// `1984-03-07`
    Iso,
    /// `07/03/1984`, the usual UK form.
    SlashDmy,
    /// `19840307`
    Compact,
    /// `7/3/1984`
    SlashDmyShort,
    /// `07-03-1984`
    DashDmy,
    /// `07.03.1984`
    DotDmy,
}

impl DateFormat {
    /// Every format, in the order alternative formats are drawn from.
    pub(crate) const ALL: [DateFormat; 6] = [
        DateFormat::Iso,
        DateFormat::SlashDmy,
        DateFormat::Compact,
        DateFormat::SlashDmyShort,
        DateFormat::DashDmy,
        DateFormat::DotDmy,
    ];

    /// The date written in this format.
    pub(crate) fn write(self, (y, m, d): (i32, u32, u32)) -> String {
        match self {
            DateFormat::Iso => format!("{y:04}-{m:02}-{d:02}"),
            DateFormat::SlashDmy => format!("{d:02}/{m:02}/{y:04}"),
            DateFormat::Compact => format!("{y:04}{m:02}{d:02}"),
            DateFormat::SlashDmyShort => format!("{d}/{m}/{y:04}"),
            DateFormat::DashDmy => format!("{d:02}-{m:02}-{y:04}"),
            DateFormat::DotDmy => format!("{d:02}.{m:02}.{y:04}"),
        }
    }
}

/// How a channel writes (or a customer types) a UK phone number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PhoneFormat {
    /// `+447700900123`
    E164,
    /// `07700900123`
    National,
    /// `07700 900123`
    NationalSpaced,
    /// `+44 7700 900123`
    IntlSpaced,
    /// `0044 7700900123`
    DoubleZero,
    /// `+44 (0)7700 900123`
    IntlTrunk,
    /// `07700-900-123`
    Dashed,
    /// `07700 900 123`
    NationalSpaced3,
}

impl PhoneFormat {
    /// Every format, in the order alternative formats are drawn from.
    pub(crate) const ALL: [PhoneFormat; 8] = [
        PhoneFormat::E164,
        PhoneFormat::National,
        PhoneFormat::NationalSpaced,
        PhoneFormat::IntlSpaced,
        PhoneFormat::DoubleZero,
        PhoneFormat::IntlTrunk,
        PhoneFormat::Dashed,
        PhoneFormat::NationalSpaced3,
    ];

    /// The number written in this format, from its ten-digit national significant number
    /// (`7700900123`). London numbers (`20…`) group as `020 7946 0123`.
    pub(crate) fn write(self, nsn: &str) -> String {
        let split = if nsn.starts_with('2') { 2 } else { 4 };
        let (area, rest) = nsn.split_at(split.min(nsn.len()));
        let (local_a, local_b) = rest.split_at(rest.len() / 2);
        let grouped = if split == 2 { format!("{area} {local_a} {local_b}") } else { format!("{area} {rest}") };
        match self {
            PhoneFormat::E164 => format!("+44{nsn}"),
            PhoneFormat::National => format!("0{nsn}"),
            PhoneFormat::NationalSpaced => format!("0{grouped}"),
            PhoneFormat::IntlSpaced => format!("+44 {grouped}"),
            PhoneFormat::DoubleZero => format!("0044 {nsn}"),
            PhoneFormat::IntlTrunk => format!("+44 (0){grouped}"),
            PhoneFormat::Dashed => format!("0{area}-{local_a}-{local_b}"),
            PhoneFormat::NationalSpaced3 => format!("0{area} {local_a} {local_b}"),
        }
    }
}

/// The conventions of one file: how its system writes dates and phone numbers by default.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conventions {
    /// Default birth-date format.
    pub date: DateFormat,
    /// Default phone format.
    pub phone: PhoneFormat,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_round_trip_across_leap_years() {
        for days in -30_000..30_000 {
            let (y, m, d) = civil_from_days(days);
            assert!(is_valid_date(y, m, d));
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
    }

    #[test]
    fn dates_are_written_in_each_format() {
        let date = (1984, 3, 7);
        let written: Vec<String> = DateFormat::ALL.iter().map(|f| f.write(date)).collect();
        assert_eq!(written, ["1984-03-07", "07/03/1984", "19840307", "7/3/1984", "07-03-1984", "07.03.1984"]);
    }

    #[test]
    fn phones_are_written_in_each_format() {
        let written: Vec<String> = PhoneFormat::ALL.iter().map(|f| f.write("7700900123")).collect();
        assert_eq!(
            written,
            [
                "+447700900123",
                "07700900123",
                "07700 900123",
                "+44 7700 900123",
                "0044 7700900123",
                "+44 (0)7700 900123",
                "07700-900-123",
                "07700 900 123",
            ]
        );
        assert_eq!(PhoneFormat::NationalSpaced.write("2079460123"), "020 7946 0123");
    }
}
