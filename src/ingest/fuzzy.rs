//! Fuzzy matching of what people type for a breakdown member or a month against the
//! catalogue's labels: `person offense` finds "Person Offenses", `Febuary` finds February.
//!
//! Both sides are normalised the same way — lower case, hyphens joining words, words with
//! digits or web addresses dropped, punctuation as spaces, "origin" removed, English stop
//! words dropped (but not "other" and "not", which tell members apart), each word stemmed —
//! and then compared by the indel similarity ratio. The best option scoring at least 90 of
//! 100 wins; on a tie, the first in the options' order.

use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};

/// The least score (of 100) a match needs.
pub const THRESHOLD: f64 = 89.5;

/// English words that carry no meaning for a match.
const STOP_WORDS: &[&str] = &[
    "i",
    "me",
    "my",
    "myself",
    "we",
    "our",
    "ours",
    "ourselves",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "he",
    "him",
    "his",
    "himself",
    "she",
    "her",
    "hers",
    "herself",
    "it",
    "its",
    "itself",
    "they",
    "them",
    "their",
    "theirs",
    "themselves",
    "what",
    "which",
    "who",
    "whom",
    "this",
    "that",
    "these",
    "those",
    "am",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "have",
    "has",
    "had",
    "having",
    "do",
    "does",
    "did",
    "doing",
    "a",
    "an",
    "the",
    "and",
    "but",
    "if",
    "or",
    "because",
    "as",
    "until",
    "while",
    "of",
    "at",
    "by",
    "for",
    "with",
    "about",
    "against",
    "between",
    "into",
    "through",
    "during",
    "before",
    "after",
    "above",
    "below",
    "to",
    "from",
    "up",
    "down",
    "in",
    "out",
    "on",
    "off",
    "over",
    "under",
    "again",
    "further",
    "then",
    "once",
    "here",
    "there",
    "when",
    "where",
    "why",
    "how",
    "all",
    "any",
    "both",
    "each",
    "few",
    "more",
    "most",
    "some",
    "such",
    "no",
    "nor",
    "only",
    "own",
    "same",
    "so",
    "than",
    "too",
    "very",
    "s",
    "t",
    "can",
    "will",
    "just",
    "don",
    "should",
    "now",
    "d",
    "ll",
    "m",
    "o",
    "re",
    "ve",
    "y",
    "ain",
    "aren",
    "couldn",
    "didn",
    "doesn",
    "hadn",
    "hasn",
    "haven",
    "isn",
    "ma",
    "mightn",
    "mustn",
    "needn",
    "shan",
    "shouldn",
    "wasn",
    "weren",
    "won",
    "wouldn",
];

static STEMMER: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// The form of `text` that matching compares.
pub fn normalise(text: &str) -> String {
    let lower = text.to_lowercase().replace('-', "");
    let kept: Vec<&str> = lower
        .split_whitespace()
        .filter(|word| {
            !(word.chars().any(|c| c.is_ascii_digit())
                || word.contains('@')
                || word.contains("http")
                || word.contains("www"))
        })
        .collect();
    let letters: String = kept
        .join(" ")
        .chars()
        .map(|c| if c.is_alphabetic() { c } else { ' ' })
        .collect();
    let collapsed = letters.split_whitespace().collect::<Vec<_>>().join(" ");
    let without_origin = collapsed.replace("origin", "");
    without_origin
        .split_whitespace()
        .filter(|word| !STOP_WORDS.contains(word))
        .map(|word| STEMMER.stem(word).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// How alike two normalised texts are, from 0 to 100.
pub fn score(a: &str, b: &str) -> f64 {
    100.0 * rapidfuzz::fuzz::ratio(a.chars(), b.chars())
}

/// Matches typed text against options, prepared once.
#[derive(Debug, Clone)]
pub struct Matcher {
    options: Vec<(String, String)>,
    /// What recent texts matched (files repeat the same few spellings on every row).
    seen: std::collections::HashMap<String, Option<usize>>,
}

/// Most remembered spellings per matcher.
const REMEMBERED: usize = 4096;

impl Matcher {
    /// A matcher over `options` (in priority order).
    pub fn new<'a>(options: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            options: options
                .into_iter()
                .map(|option| (option.to_owned(), normalise(option)))
                .collect(),
            seen: std::collections::HashMap::new(),
        }
    }

    /// The option `text` means, if one scores at least [`THRESHOLD`].
    pub fn find(&mut self, text: &str) -> Option<&str> {
        let found = match self.seen.get(text) {
            Some(found) => *found,
            None => {
                let found = self.best(text);
                if self.seen.len() >= REMEMBERED {
                    self.seen.clear();
                }
                self.seen.insert(text.to_owned(), found);
                found
            }
        };
        found.map(|index| self.options[index].0.as_str())
    }

    fn best(&self, text: &str) -> Option<usize> {
        let typed = normalise(text);
        let mut best: Option<(usize, f64)> = None;
        for (index, (_, normalised)) in self.options.iter().enumerate() {
            let score = score(&typed, normalised);
            if score >= THRESHOLD && best.is_none_or(|(_, top)| score > top) {
                best = Some((index, score));
            }
        }
        best.map(|(index, _)| index)
    }

    /// The options, as given.
    pub fn options(&self) -> impl Iterator<Item = &str> {
        self.options.iter().map(|(option, _)| option.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFENSES: [&str; 5] = [
        "Person Offenses",
        "Property Offenses",
        "Public Order Offenses",
        "Drug Offenses",
        "Other Offenses",
    ];

    #[test]
    fn close_spellings_match_their_label() {
        let mut offenses = Matcher::new(OFFENSES);
        assert_eq!(offenses.find("person offense"), Some("Person Offenses"));
        assert_eq!(offenses.find("PERSON OFFENSES"), Some("Person Offenses"));
        assert_eq!(offenses.find("Drug  Offenses "), Some("Drug Offenses"));
        let mut race = Matcher::new([
            "Asian / Hispanic or Latino",
            "Asian / Not Hispanic or Latino",
        ]);
        assert_eq!(
            race.find("Asian, Not Hispanic or Latino"),
            Some("Asian / Not Hispanic or Latino")
        );
        assert_eq!(
            race.find("Asian/Hispanic or Latino"),
            Some("Asian / Hispanic or Latino")
        );
    }

    #[test]
    fn partial_words_do_not_match() {
        let mut offenses = Matcher::new(OFFENSES);
        for typed in ["Person", "PERSON", "Other Offenses - Theft", ""] {
            assert_eq!(offenses.find(typed), None, "{typed}");
        }
        assert_eq!(
            Matcher::new(["Male Biological Sex", "Female Biological Sex"]).find("Male"),
            None
        );
        assert_eq!(
            Matcher::new(["Emergency Calls", "Non-emergency Calls"]).find("Emergency"),
            None
        );
        assert_eq!(
            Matcher::new(["Asian / Not Hispanic or Latino"]).find("Asian"),
            None
        );
    }

    #[test]
    fn month_names_forgive_typos_not_abbreviations() {
        let mut months = Matcher::new(["January", "February", "September", "December"]);
        assert_eq!(months.find("january"), Some("January"));
        assert_eq!(months.find("Febuary"), Some("February"));
        for typed in ["Jan", "Sept", "Dec"] {
            assert_eq!(months.find(typed), None, "{typed}");
        }
    }
}
