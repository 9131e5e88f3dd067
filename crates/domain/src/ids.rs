//! Identifiers an applicant types: national code, birth-certificate serial, mobile, postal code,
//! landline area code. Each is parsed once at the edge; holding one means it is valid.
//!
//! People type Persian (U+06F0..) and Arabic-Indic (U+0660..) digits as often as ASCII ones, so
//! every parser normalises digits first.

use std::fmt;

use super::error::ValidationError;
use super::province::Province;

/// Maps Persian and Arabic-Indic digits to ASCII; every other character is kept.
pub fn normalize_digits(input: &str) -> String {
    input
        .chars()
        .map(|c| match c {
            '\u{06F0}'..='\u{06F9}' => char::from(b'0' + (c as u32 - 0x06F0) as u8),
            '\u{0660}'..='\u{0669}' => char::from(b'0' + (c as u32 - 0x0660) as u8),
            other => other,
        })
        .collect()
}

/// Keeps only ASCII digits after normalisation, refusing any character that is not a digit or
/// one of the `allowed_separators` (people write `123-456` or `۱۲۳ ۴۵۶`).
fn digits_only(
    input: &str,
    allowed_separators: &[char],
    field: &'static str,
) -> Result<String, ValidationError> {
    let normalized = normalize_digits(input.trim());
    let mut digits = String::with_capacity(normalized.len());
    for c in normalized.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else if !allowed_separators.contains(&c) {
            return Err(ValidationError::new(
                field,
                "invalid_character",
                format!("unexpected character {c:?}"),
            ));
        }
    }
    Ok(digits)
}

/// A national code (کد ملی): ten digits whose last is a check digit over the first nine.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NationalCode([u8; 10]);

impl NationalCode {
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        const FIELD: &str = "national_code";
        let digits = digits_only(input, &[' ', '-'], FIELD)?;
        if digits.len() != 10 {
            return Err(ValidationError::new(
                FIELD,
                "invalid_national_code",
                format!("a national code has 10 digits, got {}", digits.len()),
            ));
        }
        let mut d = [0u8; 10];
        for (slot, b) in d.iter_mut().zip(digits.bytes()) {
            *slot = b - b'0';
        }
        if d.iter().all(|&x| x == d[0]) {
            return Err(ValidationError::new(
                FIELD,
                "invalid_national_code",
                "a national code cannot have all digits equal",
            ));
        }
        if Self::check_digit(&d[..9].try_into().expect("nine digits")) != d[9] {
            return Err(ValidationError::new(
                FIELD,
                "invalid_national_code",
                "the check digit does not match",
            ));
        }
        Ok(Self(d))
    }

    /// The check digit for nine leading digits: S = Σ d_i·(10−i), r = S mod 11,
    /// check = r if r < 2 else 11 − r.
    pub fn check_digit(first_nine: &[u8; 9]) -> u8 {
        let sum: u32 = first_nine
            .iter()
            .enumerate()
            .map(|(i, &x)| u32::from(x) * (10 - i as u32))
            .sum();
        let r = (sum % 11) as u8;
        if r < 2 {
            r
        } else {
            11 - r
        }
    }

    /// Builds a valid code from nine leading digits (the synthetic registry uses this).
    /// Returns `None` when the result would have all digits equal.
    pub fn from_first_nine(first_nine: [u8; 9]) -> Option<Self> {
        assert!(first_nine.iter().all(|&x| x < 10), "digits must be 0..=9");
        let mut d = [0u8; 10];
        d[..9].copy_from_slice(&first_nine);
        d[9] = Self::check_digit(&first_nine);
        if d.iter().all(|&x| x == d[0]) {
            None
        } else {
            Some(Self(d))
        }
    }

    pub fn as_string(&self) -> String {
        self.0.iter().map(|&x| char::from(b'0' + x)).collect()
    }

    /// For logs: the first three and the last digit stay, the rest is hidden (`049******9`).
    pub fn masked(&self) -> String {
        let s = self.as_string();
        format!("{}******{}", &s[..3], &s[9..])
    }
}

impl fmt::Display for NationalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

/// Debug masks the code so that a stray `{:?}` in a log line does not leak it.
impl fmt::Debug for NationalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NationalCode({})", self.masked())
    }
}

impl std::str::FromStr for NationalCode {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for NationalCode {
    type Error = ValidationError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

/// The Persian letters a birth-certificate series may carry.
const SERIES_LETTERS: &str = "ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهیكي";

/// A birth-certificate serial (سریال شناسنامه) of the photo-bearing kind: a series letter, a
/// two-digit series number and a six-digit serial, written e.g. `ج/۱۲ ۳۴۵۶۷۸`.
/// Canonical form: `ج12/345678`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BirthCertificateSerial {
    letter: char,
    series: u8,
    serial: u32,
}

impl BirthCertificateSerial {
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        const FIELD: &str = "birth_certificate_serial";
        let normalized = normalize_digits(input.trim());
        let mut letter = None;
        let mut digits = String::new();
        for c in normalized.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
            } else if SERIES_LETTERS.contains(c) {
                if letter.replace(c).is_some() {
                    return Err(ValidationError::new(
                        FIELD,
                        "invalid_birth_certificate_serial",
                        "a serial has exactly one series letter",
                    ));
                }
            } else if !matches!(c, ' ' | '/' | '-' | '\u{200c}') {
                return Err(ValidationError::new(
                    FIELD,
                    "invalid_birth_certificate_serial",
                    format!("unexpected character {c:?}"),
                ));
            }
        }
        let Some(letter) = letter else {
            return Err(ValidationError::new(
                FIELD,
                "invalid_birth_certificate_serial",
                "the series letter is missing",
            ));
        };
        if digits.len() != 8 {
            return Err(ValidationError::new(
                FIELD,
                "invalid_birth_certificate_serial",
                format!(
                    "expected a 2-digit series and a 6-digit serial (8 digits), got {} digits",
                    digits.len()
                ),
            ));
        }
        let series: u8 = digits[..2].parse().expect("two ascii digits");
        let serial: u32 = digits[2..].parse().expect("six ascii digits");
        if serial == 0 {
            return Err(ValidationError::new(
                FIELD,
                "invalid_birth_certificate_serial",
                "the serial cannot be zero",
            ));
        }
        Ok(Self {
            letter,
            series,
            serial,
        })
    }

    /// Builds a serial from its parts (the synthetic registry uses this).
    /// `letter_index` picks a letter from the series alphabet (taken modulo its length).
    pub fn from_parts(letter_index: usize, series: u8, serial: u32) -> Self {
        let letters: Vec<char> = SERIES_LETTERS.chars().take(32).collect();
        Self {
            letter: letters[letter_index % letters.len()],
            series: series % 100,
            serial: (serial % 1_000_000).max(1),
        }
    }
}

impl fmt::Display for BirthCertificateSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:02}/{:06}", self.letter, self.series, self.serial)
    }
}

impl fmt::Debug for BirthCertificateSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BirthCertificateSerial({}**/****{:02})",
            self.letter,
            self.serial % 100
        )
    }
}

/// A mobile number, canonical `09XXXXXXXXX`; accepts `+98 9…`, `0098 9…` and `98 9…`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Mobile(String);

impl Mobile {
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        const FIELD: &str = "mobile";
        let trimmed = normalize_digits(input.trim());
        let (plus, rest) = match trimmed.strip_prefix('+') {
            Some(rest) => (true, rest.to_string()),
            None => (false, trimmed),
        };
        let digits = digits_only(&rest, &[' ', '-', '(', ')'], FIELD)?;
        let national = if let Some(r) = digits.strip_prefix("0098") {
            r.to_string()
        } else if let Some(r) = digits
            .strip_prefix("98")
            .filter(|_| plus || digits.len() == 12)
        {
            r.to_string()
        } else if let Some(r) = digits.strip_prefix('0') {
            r.to_string()
        } else {
            digits.clone()
        };
        if national.len() != 10 || !national.starts_with('9') {
            return Err(ValidationError::new(
                FIELD,
                "invalid_mobile",
                "a mobile number is 09 followed by 9 digits (or +98 9…)",
            ));
        }
        Ok(Self(format!("0{national}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Mobile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Mobile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mobile({}*****{})", &self.0[..4], &self.0[9..])
    }
}

/// A ten-digit postal code; the first five digits never contain 0 or 2.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PostalCode(String);

impl PostalCode {
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        const FIELD: &str = "postal_code";
        let digits = digits_only(input, &[' ', '-'], FIELD)?;
        if digits.len() != 10 {
            return Err(ValidationError::new(
                FIELD,
                "invalid_postal_code",
                format!("a postal code has 10 digits, got {}", digits.len()),
            ));
        }
        if digits[..5].contains(['0', '2']) {
            return Err(ValidationError::new(
                FIELD,
                "invalid_postal_code",
                "the first five digits of a postal code never contain 0 or 2",
            ));
        }
        Ok(Self(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PostalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PostalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostalCode({}*****)", &self.0[..5])
    }
}

/// A landline area code of a province, canonical `0DD` (e.g. `021` for Tehran).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AreaCode(u8);

impl AreaCode {
    /// Accepts `021`, `21` or `۰۲۱`; refuses a code no province uses.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        const FIELD: &str = "area_code";
        let digits = digits_only(input, &[], FIELD)?;
        let two = match digits.len() {
            3 if digits.starts_with('0') => &digits[1..],
            2 => &digits[..],
            _ => {
                return Err(ValidationError::new(
                    FIELD,
                    "invalid_area_code",
                    "an area code is 0 followed by two digits, e.g. 021",
                ))
            }
        };
        let code = Self(two.parse().expect("two ascii digits"));
        if Province::by_area_code(code).is_none() {
            return Err(ValidationError::new(
                FIELD,
                "unknown_area_code",
                format!("no province has the area code {code}"),
            ));
        }
        Ok(code)
    }

    /// The two digits after the leading zero.
    pub fn number(self) -> u8 {
        self.0
    }

    pub(crate) fn from_number_unchecked(n: u8) -> Self {
        Self(n)
    }
}

impl fmt::Display for AreaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0{:02}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_code_examples_from_the_brief() {
        for ok in [
            "0499370899",
            "0790419904",
            "0084575948",
            "4032152314",
            "1583250689",
        ] {
            assert!(NationalCode::parse(ok).is_ok(), "{ok} should be valid");
        }
        for bad in [
            "0684159415",
            "1111111111",
            "123",
            "04993708990",
            "04993708a9",
        ] {
            assert!(NationalCode::parse(bad).is_err(), "{bad} should be invalid");
        }
    }

    #[test]
    fn persian_and_arabic_digits_are_normalised() {
        let persian = NationalCode::parse("۰۴۹۹۳۷۰۸۹۹").unwrap();
        let arabic = NationalCode::parse("٠٤٩٩٣٧٠٨٩٩").unwrap();
        assert_eq!(persian, arabic);
        assert_eq!(persian.to_string(), "0499370899");
        assert_eq!(persian.masked(), "049******9");
        assert!(!format!("{persian:?}").contains("0499370899"));
    }

    #[test]
    fn mobile_forms() {
        for ok in [
            "09121234567",
            "+989121234567",
            "00989121234567",
            "۰۹۱۲ ۱۲۳ ۴۵۶۷",
            "989121234567",
        ] {
            assert_eq!(Mobile::parse(ok).unwrap().as_str(), "09121234567", "{ok}");
        }
        for bad in ["0812123456", "0912123456", "+98812345678", "09121234567x"] {
            assert!(Mobile::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn postal_code_rules() {
        assert!(PostalCode::parse("13145-67890").is_ok());
        assert!(PostalCode::parse("1314567890").is_ok());
        assert!(PostalCode::parse("1304567890").is_err()); // 0 in the first five
        assert!(PostalCode::parse("1324567890").is_err()); // 2 in the first five
        assert!(PostalCode::parse("131456789").is_err());
    }

    #[test]
    fn birth_certificate_serial_forms() {
        let a = BirthCertificateSerial::parse("ج/۱۲ ۳۴۵۶۷۸").unwrap();
        let b = BirthCertificateSerial::parse("ج12/345678").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "ج12/345678");
        assert!(BirthCertificateSerial::parse("12/345678").is_err());
        assert!(BirthCertificateSerial::parse("ج1/345678").is_err());
        assert!(BirthCertificateSerial::parse("جج12/345678").is_err());
    }

    #[test]
    fn area_codes() {
        assert_eq!(AreaCode::parse("021").unwrap().to_string(), "021");
        assert_eq!(AreaCode::parse("21").unwrap().to_string(), "021");
        assert!(AreaCode::parse("099").is_err());
        assert!(AreaCode::parse("0211").is_err());
    }
}
