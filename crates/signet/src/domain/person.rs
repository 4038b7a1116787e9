//! Who a person in a signing order is: the source that vouches for them (the organisation's own
//! directory or the outside world) and, for outsiders, the Swedish personal identity number
//! (personnummer) that identifies them. Parsing a personal number checks everything that can be
//! checked offline — shape, a real birth date, the Luhn check digit — so the rest of Signet only
//! ever sees the normalised 12-digit form.

use std::fmt;
use std::str::FromStr;
use time::{Date, Month, OffsetDateTime};

/// Where a person comes from: INTERNAL people are looked up in the organisation's directory
/// (LDAP), EXTERNAL people are identified by their personal number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PersonSource {
    Internal,
    External,
}

impl PersonSource {
    /// The wire and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PersonSource::Internal => "INTERNAL",
            PersonSource::External => "EXTERNAL",
        }
    }
}

impl fmt::Display for PersonSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A source spelled other than exactly `INTERNAL` or `EXTERNAL`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown person source {0:?}; expected INTERNAL or EXTERNAL")]
pub struct UnknownSource(pub String);

impl FromStr for PersonSource {
    type Err = UnknownSource;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "INTERNAL" => Ok(PersonSource::Internal),
            "EXTERNAL" => Ok(PersonSource::External),
            other => Err(UnknownSource(other.to_owned())),
        }
    }
}

/// A Swedish personal identity number (personnummer) or coordination number (samordningsnummer),
/// always held in its 12-digit form `YYYYMMDDNNNC`.
///
/// Accepted spellings: `YYYYMMDDNNNC`, `YYYYMMDD-NNNC`, `YYMMDDNNNC`, `YYMMDD-NNNC` and
/// `YYMMDD+NNNC`. The 10-digit forms get the most recent century that puts the birth date on or
/// before today; `+` marks someone aged 100 or more and moves the date back another century.
/// The date must be real and not in the future; a coordination number carries the day plus 60.
/// The last digit is the Luhn check digit over the 10-digit form.
///
/// The century digits are not covered by the check digit (that is the standard), so a typo there
/// is caught only when it moves the birth date into the future.
///
/// `Debug` hides the last four digits: a personal number must not end up in logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PersonalNumber {
    digits: String,
    birth_date: Date,
}

/// Which rule a personal number broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PersonalNumberError {
    #[error(
        "a personal number is YYYYMMDDNNNC, YYYYMMDD-NNNC, YYMMDDNNNC, YYMMDD-NNNC or YYMMDD+NNNC"
    )]
    Format,
    #[error("a personal number must start with a real birth date that is not in the future")]
    Date,
    #[error("the check digit of the personal number is wrong")]
    Checksum,
}

/// Coordination numbers add this to the day of birth.
const COORDINATION_DAY_OFFSET: u8 = 60;

impl PersonalNumber {
    /// Parses any accepted spelling, taking "today" as the current UTC date.
    pub fn parse(raw: &str) -> Result<Self, PersonalNumberError> {
        Self::parse_at(raw, OffsetDateTime::now_utc().date())
    }

    /// Parses any accepted spelling; `today` decides the century of the 10-digit forms and which
    /// birth dates lie in the future.
    pub fn parse_at(raw: &str, today: Date) -> Result<Self, PersonalNumberError> {
        let spelling = Spelling::of(raw)?;
        let ten = *spelling.ten();
        let month = two_digits(&ten[2..4]);
        let written_day = two_digits(&ten[4..6]);
        let day = if written_day > COORDINATION_DAY_OFFSET {
            written_day - COORDINATION_DAY_OFFSET
        } else {
            written_day
        };
        let year = match spelling {
            Spelling::Full { century, .. } => {
                i32::from(century) * 100 + i32::from(two_digits(&ten[0..2]))
            }
            Spelling::Short { plus, .. } => {
                let yy = i32::from(two_digits(&ten[0..2]));
                let mut year = today.year() - today.year().rem_euclid(100) + yy;
                // Compared as (year, month, day) so an impossible day still picks a century and is
                // then refused as a date, not as a format.
                if (year, month, day) > (today.year(), u8::from(today.month()), today.day()) {
                    year -= 100;
                }
                if plus {
                    year -= 100;
                }
                year
            }
        };
        let birth_date = Month::try_from(month)
            .ok()
            .and_then(|month| Date::from_calendar_date(year, month, day).ok())
            .filter(|date| *date <= today)
            .ok_or(PersonalNumberError::Date)?;
        if luhn_check_digit(&ten[..9]) != ten[9] - b'0' {
            return Err(PersonalNumberError::Checksum);
        }
        let mut digits = format!("{year:04}");
        digits.extend(ten[2..].iter().map(|&d| char::from(d)));
        Ok(PersonalNumber { digits, birth_date })
    }

    /// The normalised form, `YYYYMMDDNNNC`.
    pub fn as_str(&self) -> &str {
        &self.digits
    }

    /// The birth date (for a coordination number, the date with 60 taken off the day).
    pub fn birth_date(&self) -> Date {
        self.birth_date
    }

    /// A coordination number (samordningsnummer): the day is written plus 60.
    pub fn is_coordination_number(&self) -> bool {
        // Real days are written 01..31, coordination days 61..91.
        self.digits.as_bytes()[6] >= b'6'
    }
}

/// How the raw text was written, stripped of its separator; `ten` is `YYMMDDNNNC`, the part the
/// check digit covers.
enum Spelling {
    /// Twelve digits: the century is written out.
    Full { century: u8, ten: [u8; 10] },
    /// Ten digits; `plus` when written with `+` (100 years or older).
    Short { ten: [u8; 10], plus: bool },
}

impl Spelling {
    fn of(raw: &str) -> Result<Spelling, PersonalNumberError> {
        let bytes = raw.as_bytes();
        let all_digits = |b: &[u8]| b.iter().all(u8::is_ascii_digit);
        // The ten digits from the parts before and after the separator (`after` empty if none).
        let ten = |before: &[u8], after: &[u8]| {
            let mut ten = [0u8; 10];
            ten[..before.len()].copy_from_slice(before);
            ten[before.len()..].copy_from_slice(after);
            ten
        };
        match bytes.len() {
            12 if all_digits(bytes) => Ok(Spelling::Full {
                century: two_digits(&bytes[..2]),
                ten: ten(&bytes[2..], &[]),
            }),
            13 if bytes[8] == b'-' && all_digits(&bytes[..8]) && all_digits(&bytes[9..]) => {
                Ok(Spelling::Full {
                    century: two_digits(&bytes[..2]),
                    ten: ten(&bytes[2..8], &bytes[9..]),
                })
            }
            10 if all_digits(bytes) => Ok(Spelling::Short {
                ten: ten(bytes, &[]),
                plus: false,
            }),
            11 if matches!(bytes[6], b'-' | b'+')
                && all_digits(&bytes[..6])
                && all_digits(&bytes[7..]) =>
            {
                Ok(Spelling::Short {
                    ten: ten(&bytes[..6], &bytes[7..]),
                    plus: bytes[6] == b'+',
                })
            }
            _ => Err(PersonalNumberError::Format),
        }
    }

    fn ten(&self) -> &[u8; 10] {
        match self {
            Spelling::Full { ten, .. } | Spelling::Short { ten, .. } => ten,
        }
    }
}

fn two_digits(pair: &[u8]) -> u8 {
    (pair[0] - b'0') * 10 + (pair[1] - b'0')
}

/// The Luhn check digit for ASCII digits, weighting 2, 1, 2, … from the left (nine digits in a
/// personal number, so the weights line up with the classic right-to-left definition).
fn luhn_check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let product = u32::from(d - b'0') * if i % 2 == 0 { 2 } else { 1 };
            product / 10 + product % 10
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

impl FromStr for PersonalNumber {
    type Err = PersonalNumberError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for PersonalNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.digits)
    }
}

impl fmt::Debug for PersonalNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonalNumber({}****)", &self.digits[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 05 - 10);

    fn parse(raw: &str) -> Result<PersonalNumber, PersonalNumberError> {
        PersonalNumber::parse_at(raw, TODAY)
    }

    #[test]
    fn the_sources_example_number_has_a_valid_check_digit() {
        // 198603052385 is the example in the reference product's documentation; its Luhn digit
        // (5) is right, so it is accepted as it stands.
        let number = parse("198603052385").unwrap();
        assert_eq!(number.as_str(), "198603052385");
        assert_eq!(number.birth_date(), date!(1986 - 03 - 05));
        assert!(!number.is_coordination_number());
    }

    #[test]
    fn a_number_born_in_2000_is_accepted() {
        assert_eq!(parse("200001011907").unwrap().to_string(), "200001011907");
    }

    #[test]
    fn every_spelling_of_one_number_normalises_to_twelve_digits() {
        for raw in ["198603052385", "19860305-2385", "8603052385", "860305-2385"] {
            assert_eq!(parse(raw).unwrap().as_str(), "198603052385", "{raw}");
        }
    }

    #[test]
    fn a_coordination_number_carries_the_day_plus_sixty() {
        let number = parse("701063-2391").unwrap();
        assert_eq!(number.as_str(), "197010632391");
        assert_eq!(number.birth_date(), date!(1970 - 10 - 03));
        assert!(number.is_coordination_number());
    }

    #[test]
    fn a_plus_marks_someone_a_hundred_years_or_older() {
        assert_eq!(parse("121212+1212").unwrap().as_str(), "191212121212");
        assert_eq!(parse("121212-1212").unwrap().as_str(), "201212121212");
    }

    #[test]
    fn a_ten_digit_number_takes_the_most_recent_century_that_is_not_in_the_future() {
        // Born on today's date 100 years ago or today: today wins; one day later is last century.
        let check = |yymmdd: &str| {
            let nine = format!("{yymmdd}123");
            format!("{nine}{}", luhn_check_digit(nine.as_bytes()))
        };
        assert_eq!(&parse(&check("260510")).unwrap().as_str()[..4], "2026");
        assert_eq!(&parse(&check("260511")).unwrap().as_str()[..4], "1926");
    }

    #[test]
    fn the_twenty_ninth_of_february_exists_only_in_leap_years() {
        // 1900 is not a leap year (divisible by 100), 2000 is (divisible by 400).
        assert_eq!(parse("190002291235"), Err(PersonalNumberError::Date));
        assert_eq!(
            parse("200002291235").unwrap().birth_date(),
            date!(2000 - 02 - 29)
        );
    }

    #[test]
    fn impossible_dates_are_refused_as_dates() {
        for raw in [
            "198613052385", // month 13
            "198600052385", // month 0
            "198602302385", // 30 February
            "198603002385", // day 0
            "198603322385", // day 32, and not a coordination day either
            "198603602385", // day 60
            "198603922385", // coordination day 92
            "202705102385", // in the future
        ] {
            assert_eq!(parse(raw), Err(PersonalNumberError::Date), "{raw}");
        }
    }

    #[test]
    fn a_wrong_check_digit_is_refused_as_a_checksum_error() {
        assert_eq!(parse("198603052384"), Err(PersonalNumberError::Checksum));
    }

    #[test]
    fn anything_but_the_five_spellings_is_refused_as_a_format_error() {
        for raw in [
            "",
            "19860305238",
            "1986030523855",
            "19860305+2385",
            "1986-03-05-2385",
            "860305 2385",
            " 198603052385",
            "8603052385\n",
            "86030-52385",
            "19860305238x",
            "１９８６０３０５２３８５",
        ] {
            assert_eq!(parse(raw), Err(PersonalNumberError::Format), "{raw:?}");
        }
    }

    #[test]
    fn changing_the_century_is_not_caught_by_the_check_digit() {
        // The standard's check digit covers YYMMDDNNNC only: 18 instead of 19 is another valid
        // number. Only a century that puts the date in the future is caught.
        assert!(parse("188603052385").is_ok());
        assert_eq!(parse("208603052385"), Err(PersonalNumberError::Date));
    }

    #[test]
    fn debug_output_hides_the_last_four_digits() {
        assert_eq!(
            format!("{:?}", parse("198603052385").unwrap()),
            "PersonalNumber(19860305****)"
        );
    }

    #[test]
    fn a_source_is_spelled_exactly_internal_or_external() {
        for source in [PersonSource::Internal, PersonSource::External] {
            assert_eq!(source.as_str().parse::<PersonSource>(), Ok(source));
            assert_eq!(source.to_string(), source.as_str());
        }
        assert!("internal".parse::<PersonSource>().is_err());
        assert!("".parse::<PersonSource>().is_err());
    }

    /// A valid number: (today, birth date, coordination?, serial NNN).
    fn valid_number() -> impl Strategy<Value = (Date, Date, bool, u16)> {
        let first = date!(1900 - 01 - 01).to_julian_day();
        let last = date!(2200 - 12 - 31).to_julian_day();
        (first..=last, 0..(199 * 365), any::<bool>(), 0u16..1000).prop_map(
            |(today, age_days, coordination, serial)| {
                let today = Date::from_julian_day(today).unwrap();
                let born = Date::from_julian_day(today.to_julian_day() - age_days).unwrap();
                (today, born, coordination, serial)
            },
        )
    }

    /// `YYYYMMDDNNNC` for a generated number.
    fn twelve_digits(born: Date, coordination: bool, serial: u16) -> String {
        let day = born.day() + if coordination { 60 } else { 0 };
        let nine = format!(
            "{:02}{:02}{day:02}{serial:03}",
            born.year() % 100,
            u8::from(born.month())
        );
        let check = luhn_check_digit(nine.as_bytes());
        format!("{:02}{nine}{check}", born.year() / 100)
    }

    /// Under 100 on `today`: the hundredth birthday, as (year, month, day), is still ahead.
    fn under_a_hundred(born: Date, today: Date) -> bool {
        (born.year() + 100, u8::from(born.month()), born.day())
            > (today.year(), u8::from(today.month()), today.day())
    }

    proptest! {
        #[test]
        fn every_valid_number_round_trips_through_all_its_spellings(
            (today, born, coordination, serial) in valid_number()
        ) {
            let full = twelve_digits(born, coordination, serial);
            let (yymmdd, nnnc) = (&full[2..8], &full[8..]);
            let separator = if under_a_hundred(born, today) { '-' } else { '+' };
            let mut spellings = vec![
                full.clone(),
                format!("{}-{nnnc}", &full[..8]),
                format!("{yymmdd}{separator}{nnnc}"),
            ];
            if separator == '-' {
                spellings.push(format!("{yymmdd}{nnnc}"));
            }
            for raw in spellings {
                let number = PersonalNumber::parse_at(&raw, today);
                prop_assert!(number.is_ok(), "{raw} on {today}: {number:?}");
                let number = number.unwrap();
                prop_assert_eq!(number.as_str(), full.as_str());
                prop_assert_eq!(number.birth_date(), born);
                prop_assert_eq!(number.is_coordination_number(), coordination);
            }
        }

        #[test]
        fn any_single_digit_change_under_the_check_digit_is_refused(
            (today, born, coordination, serial) in valid_number(),
            position in 2usize..12,
            shift in 1u8..10,
        ) {
            let full = twelve_digits(born, coordination, serial);
            let mut changed = full.into_bytes();
            changed[position] = b'0' + (changed[position] - b'0' + shift) % 10;
            let changed = String::from_utf8(changed).unwrap();
            prop_assert!(PersonalNumber::parse_at(&changed, today).is_err(), "{changed} on {today}");
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(raw in "\\PC{0,16}|[0-9+-]{10,13}") {
            let _ = PersonalNumber::parse_at(&raw, TODAY);
        }
    }
}
