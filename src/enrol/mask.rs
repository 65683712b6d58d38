//! Masked forms for display and for events: enough to recognise a record,
//! not enough to identify a person from a screenshot or a log line.

/// `张三` → `张*`, `张三丰` → `张*丰`, `欧阳娜娜` → `欧**娜`. Events carry this
/// form only, so removing a person never leaves their name in the event chain.
pub fn masked_name(name: &str) -> String {
    let chars: Vec<char> = name.trim().chars().collect();
    match chars.len() {
        0 => String::new(),
        1 => "*".into(),
        2 => format!("{}*", chars[0]),
        n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_chinese_names_keeping_first_and_last_character() {
        assert_eq!(masked_name("张三"), "张*");
        assert_eq!(masked_name("张三丰"), "张*丰");
        assert_eq!(masked_name("欧阳娜娜"), "欧**娜");
        assert_eq!(masked_name("李"), "*");
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
    }
}
