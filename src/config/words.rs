//! Splitting a directive's raw arguments into words the way httpd's
//! `ap_getword_conf` does, so quoting in a mod_fastcgi line means the same.

/// Splits `args` into words: blanks separate words, `"..."` or `'...'` quote
/// one (the quotes are dropped, a backslash before the quote character
/// escapes it).
pub fn split(args: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = args.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else { break };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '\\' && chars.peek() == Some(&first) {
                    word.push(first);
                    chars.next();
                } else if c == first {
                    break;
                } else {
                    word.push(c);
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                word.push(c);
            }
        }
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn plain_and_quoted_words() {
        assert_eq!(split("  /a  -socket  s "), ["/a", "-socket", "s"]);
        assert_eq!(split(r#"/a -initial-env "X=a b" 'y z'"#), ["/a", "-initial-env", "X=a b", "y z"]);
        assert_eq!(split(r#""say \"hi\"""#), [r#"say "hi""#]);
        assert_eq!(split(r#""""#), [""]);
        assert!(split("   ").is_empty());
    }
}
