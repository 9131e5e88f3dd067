//! National codes: a few hundred valid and invalid codes, in ASCII, Persian and Arabic-Indic
//! digits, checked against an independent implementation of the rule in DOMAIN.md.

use nobat::domain::NationalCode;

/// The rule as DOMAIN.md states it, written separately from the library's.
fn reference_valid(code: &str) -> bool {
    let d: Vec<u32> = code.chars().filter_map(|c| c.to_digit(10)).collect();
    if d.len() != 10 || code.chars().count() != 10 || d.iter().all(|&x| x == d[0]) {
        return false;
    }
    let s: u32 = (0..9).map(|i| d[i] * (10 - i as u32)).sum();
    let r = s % 11;
    (r < 2 && d[9] == r) || (r >= 2 && d[9] == 11 - r)
}

fn to_persian(s: &str) -> String {
    s.chars()
        .map(|c| {
            c.to_digit(10)
                .map(|d| char::from_u32(0x06F0 + d).unwrap())
                .unwrap_or(c)
        })
        .collect()
}

fn to_arabic_indic(s: &str) -> String {
    s.chars()
        .map(|c| {
            c.to_digit(10)
                .map(|d| char::from_u32(0x0660 + d).unwrap())
                .unwrap_or(c)
        })
        .collect()
}

/// 400 ten-digit strings from a fixed linear congruential sequence (about 1 in 11 is valid),
/// plus every valid one's neighbours with the check digit changed.
fn sample() -> Vec<String> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut out = Vec::new();
    for _ in 0..400 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.push(format!("{:010}", (x >> 20) % 10_000_000_000));
    }
    out
}

#[test]
fn hundreds_of_codes_agree_with_the_rule_in_every_digit_script() {
    let mut valid = 0;
    for code in sample() {
        let expected = reference_valid(&code);
        valid += usize::from(expected);
        for written in [code.clone(), to_persian(&code), to_arabic_indic(&code)] {
            let parsed = NationalCode::parse(&written);
            assert_eq!(parsed.is_ok(), expected, "{written}");
            if let Ok(c) = parsed {
                assert_eq!(c.to_string(), code, "normalised to ASCII");
            }
        }
    }
    assert!(valid > 10, "the sample holds valid codes too ({valid})");
}

#[test]
fn every_wrong_check_digit_is_refused() {
    let mut checked = 0;
    for prefix in (0..300u64).map(|i| format!("{:09}", i * 3_333_331 % 1_000_000_000)) {
        let digits: [u8; 9] = prefix
            .bytes()
            .map(|b| b - b'0')
            .collect::<Vec<_>>()
            .try_into()
            .unwrap();
        let Some(good) = NationalCode::from_first_nine(digits) else {
            continue;
        };
        let good = good.to_string();
        assert!(reference_valid(&good), "{good}");
        for d in 0..10 {
            let candidate = format!("{prefix}{d}");
            if candidate != good {
                assert!(
                    NationalCode::parse(&candidate).is_err(),
                    "{candidate} has a wrong check digit"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 2_000);
}

#[test]
fn the_brief_examples_and_malformed_input() {
    for ok in [
        "0499370899",
        "0790419904",
        "0084575948",
        "4032152314",
        "1583250689",
        "۰۴۹۹۳۷۰۸۹۹",
        "٠٧٩٠٤١٩٩٠٤",
    ] {
        assert!(NationalCode::parse(ok).is_ok(), "{ok}");
    }
    for bad in [
        "0684159415",
        "1111111111",
        "0000000000",
        "",
        "049937089",
        "04993708999",
        "0499-37O899",
        "۰۴۹۹۳۷۰۸۹۸",
        "abcdefghij",
    ] {
        assert!(NationalCode::parse(bad).is_err(), "{bad}");
    }
}
