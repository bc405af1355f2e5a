//! Redis's glob patterns for KEYS, SCAN MATCH and CONFIG GET: `*`, `?`, `[abc]`,
//! `[^a-z]`, and `\` to escape.
//!
//! The one idea: match with the classic two-pointer backtrack (remember the last `*`
//! and where it started matching, retry one byte further on a mismatch). No recursion,
//! so a pattern of many stars cannot exhaust the stack, and the work is bounded by
//! pattern length × subject length.

/// Matches one non-star pattern element at `p` against `c`; returns the pattern
/// position after the element, or `None` on mismatch.
fn match_one(pat: &[u8], p: usize, c: u8, nocase: bool) -> Option<usize> {
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    match pat[p] {
        b'?' => Some(p + 1),
        b'[' => {
            let mut i = p + 1;
            let negate = i < pat.len() && pat[i] == b'^';
            if negate {
                i += 1;
            }
            let mut hit = false;
            loop {
                if i >= pat.len() {
                    // An unterminated class: Redis treats the end as closing it.
                    break;
                }
                if pat[i] == b']' {
                    i += 1;
                    break;
                }
                if pat[i] == b'\\' && i + 1 < pat.len() {
                    i += 1;
                    if eq(pat[i], c) {
                        hit = true;
                    }
                    i += 1;
                } else if i + 2 < pat.len() && pat[i + 1] == b'-' {
                    let (mut lo, mut hi) = (pat[i], pat[i + 2]);
                    if lo > hi {
                        std::mem::swap(&mut lo, &mut hi);
                    }
                    let (l, h, x) = if nocase {
                        (
                            lo.to_ascii_lowercase(),
                            hi.to_ascii_lowercase(),
                            c.to_ascii_lowercase(),
                        )
                    } else {
                        (lo, hi, c)
                    };
                    if x >= l && x <= h {
                        hit = true;
                    }
                    i += 3;
                } else {
                    if eq(pat[i], c) {
                        hit = true;
                    }
                    i += 1;
                }
            }
            (hit != negate).then_some(i)
        }
        b'\\' if p + 1 < pat.len() => eq(pat[p + 1], c).then_some(p + 2),
        other => eq(other, c).then_some(p + 1),
    }
}

/// Redis's guard against abusive patterns: a match that has to pass more than this
/// many groups of stars fails (Redis's `stringmatchlen` recursion limit), so KEYS
/// answers the same keys as Redis for such a pattern.
const MAX_STAR_GROUPS: usize = 1000;

/// True when `s` matches the glob `pat`.
pub fn matches(pat: &[u8], s: &[u8], nocase: bool) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    // The star group to retry from, where its match started, and how many groups the
    // match had passed on reaching it.
    let mut star: Option<(usize, usize, usize)> = None;
    let mut groups = 0;
    while i < s.len() {
        if p < pat.len() && pat[p] == b'*' {
            while p < pat.len() && pat[p] == b'*' {
                p += 1;
            }
            if p == pat.len() {
                return true;
            }
            groups += 1;
            if groups > MAX_STAR_GROUPS {
                return false;
            }
            star = Some((p, i, groups));
            continue;
        }
        if p < pat.len() {
            if let Some(np) = match_one(pat, p, s[i], nocase) {
                p = np;
                i += 1;
                continue;
            }
        }
        match star {
            Some((sp, si, g)) => {
                p = sp;
                i = si + 1;
                groups = g;
                star = Some((sp, si + 1, g));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        let m = |p: &str, s: &str| matches(p.as_bytes(), s.as_bytes(), false);
        assert!(m("*", ""));
        assert!(m("*", "abc"));
        assert!(m("a*c", "abbbc"));
        assert!(!m("a*c", "abbbd"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("key:*:x", "key:12:x"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c*d", "xxaxxbxxcxx"));
        assert!(m("save", "save"));
        assert!(matches(b"SAVE", b"save", true));
    }

    #[test]
    fn many_stars_stay_fast() {
        let pat = "*a".repeat(50) + "b";
        let s = "a".repeat(5000);
        assert!(!matches(pat.as_bytes(), s.as_bytes(), false));
    }

    #[test]
    fn more_than_a_thousand_star_groups_fail_as_in_redis() {
        let s = "a".repeat(5000);
        let m = |groups: usize| matches("*?".repeat(groups).as_bytes(), s.as_bytes(), false);
        assert!(m(1000));
        assert!(!m(1001));
        assert!(!m(50_000));
        // Trailing stars are not groups to pass.
        assert!(matches(
            ("*?".repeat(1000) + "*").as_bytes(),
            s.as_bytes(),
            false
        ));
    }
}
