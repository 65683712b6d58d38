//! Masked forms for display and for events: enough to recognise a record,
//! not enough to identify a person from a screenshot or a log line.

/// `张三` → `张*`, `张三丰` → `张**`, `李` → `李*`, `Barack Obama` → `B***** *****`:
/// the first character, one star for each other character (at least one).
/// The one masking rule for names everywhere (events, the register snapshot,
/// station replies, audit rows): events carry this form only, so removing a
/// person never leaves their name in the event chain.
pub fn masked_name(name: &str) -> String {
    let mut chars = name.trim().chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    let mut out: String = std::iter::once(first)
        .chain(chars.map(|c| if c.is_whitespace() { c } else { '*' }))
        .collect();
    if out.chars().count() == 1 {
        out.push('*');
    }
    out
}

/// Keeps `head` leading and `tail` trailing characters and stars the rest:
/// `mask_middle("510105199001011237", 6, 4)` → `510105********1237`.
pub fn mask_middle(s: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= head + tail {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..head].iter().collect();
    out.push_str(&"*".repeat(chars.len() - head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// Every character starred, the length kept: for numbers whose every shown
/// character would narrow a search (ID documents, see `IdDocument::masked`).
pub fn mask_all(s: &str) -> String {
    "*".repeat(s.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_names_keeping_only_the_first_character() {
        assert_eq!(masked_name("张三"), "张*");
        assert_eq!(masked_name("张三丰"), "张**");
        assert_eq!(masked_name("欧阳娜娜"), "欧***");
        assert_eq!(masked_name("李"), "李*");
        assert_eq!(masked_name("Barack Obama"), "B***** *****");
        assert_eq!(masked_name(""), "");
    }

    #[test]
    fn masks_the_middle_of_numbers() {
        assert_eq!(
            mask_middle("510105199001011237", 6, 4),
            "510105********1237"
        );
        assert_eq!(mask_middle("13800000000", 3, 4), "138****0000");
        assert_eq!(mask_middle("1234", 3, 4), "****");
        assert_eq!(mask_all("11010519491231002X"), "******************");
    }
}
