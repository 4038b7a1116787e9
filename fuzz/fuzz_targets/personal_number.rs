//! The Swedish personal-number parser (`signet::domain::PersonalNumber`), fed by the Automation
//! API's order forms. The first two bytes pick "today" (which decides the century of the short
//! forms and which dates lie in the future), the rest is the text. Whatever it accepts must be
//! twelve digits, a birth date not after today, and parse back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::domain::PersonalNumber;
use time::{Date, Duration};

/// Allocations past the heap budget fail, so a memory bomb is a crash however brief.
#[global_allocator]
static HEAP: signet_fuzz::HeapBudget = signet_fuzz::HeapBudget;

fuzz_target!(|data: &[u8]| {
    let (today, raw) = match data {
        [high, low, rest @ ..] => {
            let days = i64::from(u16::from_be_bytes([*high, *low]));
            // 1900-01-01 plus up to ~179 years.
            let epoch = Date::from_ordinal_date(1900, 1).expect("a real date");
            (epoch + Duration::days(days), rest)
        }
        _ => return,
    };
    let Ok(raw) = std::str::from_utf8(raw) else {
        return;
    };
    let _ = raw.parse::<PersonalNumber>();
    let Ok(number) = PersonalNumber::parse_at(raw, today) else {
        return;
    };
    let digits = number.as_str();
    assert_eq!(
        digits.len(),
        12,
        "normalised form is twelve digits: {digits}"
    );
    assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{digits}");
    assert!(number.birth_date() <= today, "a birth date in the future");
    let again = PersonalNumber::parse_at(digits, today).expect("the normalised form parses");
    assert_eq!(
        again, number,
        "the normalised form must parse back to the same number"
    );
    let _ = format!("{number:?}");
    let _ = number.is_coordination_number();
});
