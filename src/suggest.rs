//! "Did you mean …?": the closest valid name to a misspelt one.

/// The candidate closest to `name`, when it is close enough to be a likely typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// ` Did you mean `x`?` or nothing, for appending to a hint.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(name, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_only() {
        let fields = ["max_tokens", "model", "prompt", "temperature"];
        assert_eq!(closest("max_token", fields), Some("max_tokens"));
        assert_eq!(closest("temprature", fields), Some("temperature"));
        assert_eq!(closest("promt", fields), Some("prompt"));
        assert_eq!(closest("banana", fields), None);
    }
}
