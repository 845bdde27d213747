//! Sigma `condition` expressions: tokenizer, precedence parser (`not` > `and` > `or`) and
//! the resolved tree the evaluator walks.
//!
//! Identifiers and `x of pattern` are resolved against the rule's detection names here, so
//! an unknown identifier or a pattern that names nothing fails the load instead of silently
//! never matching.

/// A resolved condition; `usize`s index the rule's detections.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    Det(usize),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    /// At least `n` of these detections match (`1 of sel*`, `2 of them`).
    AtLeast(usize, Vec<usize>),
    /// Every one of these detections matches (`all of sel*`).
    All(Vec<usize>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Number(usize),
    And,
    Or,
    Not,
    Of,
    All,
    Them,
    LParen,
    RParen,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Tok::LParen);
            }
            ')' => {
                chars.next();
                out.push(Tok::RParen);
            }
            c if c.is_alphanumeric() || c == '_' || c == '*' || c == '-' || c == '.' => {
                let mut end = i;
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_alphanumeric() || matches!(d, '_' | '*' | '-' | '.') {
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = s.get(i..end).unwrap_or_default();
                out.push(match word.to_ascii_lowercase().as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "of" => Tok::Of,
                    "all" => Tok::All,
                    "them" => Tok::Them,
                    _ => match word.parse::<usize>() {
                        Ok(n) => Tok::Number(n),
                        Err(_) => Tok::Ident(word.to_owned()),
                    },
                });
            }
            other => return Err(format!("unexpected character {other:?} in condition")),
        }
    }
    Ok(out)
}

struct P<'a> {
    toks: Vec<Tok>,
    pos: usize,
    names: &'a [String],
}

impl P<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self, depth: usize) -> Result<Cond, String> {
        let mut parts = vec![self.and(depth)?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            parts.push(self.and(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::Or(parts)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Cond, String> {
        let mut parts = vec![self.unary(depth)?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            parts.push(self.unary(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::And(parts)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Cond, String> {
        if depth > 64 {
            return Err("condition nested too deeply".into());
        }
        match self.next() {
            Some(Tok::Not) => Ok(Cond::Not(Box::new(self.unary(depth + 1)?))),
            Some(Tok::LParen) => {
                let inner = self.or(depth + 1)?;
                match self.next() {
                    Some(Tok::RParen) => Ok(inner),
                    _ => Err("missing `)` in condition".into()),
                }
            }
            Some(Tok::Ident(name)) => self.ident(&name),
            Some(Tok::Number(n)) => self.of(Some(n)),
            Some(Tok::All) => self.of(None),
            Some(t) => Err(format!("unexpected {} in condition", describe(&t))),
            None => Err("condition ends too early".into()),
        }
    }

    fn ident(&self, name: &str) -> Result<Cond, String> {
        if name.contains('*') {
            return Err(format!(
                "`{name}`: wildcards are only allowed after `1 of` / `all of`"
            ));
        }
        self.names
            .iter()
            .position(|n| n == name)
            .map(Cond::Det)
            .ok_or_else(|| {
                format!("condition names `{name}`, which is not a detection of this rule")
            })
    }

    /// `n of X` (`n` = `None` for `all of X`).
    fn of(&mut self, n: Option<usize>) -> Result<Cond, String> {
        if self.next() != Some(Tok::Of) {
            return Err("expected `of` after a count or `all` in condition".into());
        }
        let dets: Vec<usize> = match self.next() {
            Some(Tok::Them) => (0..self.names.len())
                .filter(|&i| !self.names.get(i).is_some_and(|n| n.starts_with('_')))
                .collect(),
            Some(Tok::Ident(pat)) => {
                let dets: Vec<usize> = (0..self.names.len())
                    .filter(|&i| self.names.get(i).is_some_and(|n| glob(&pat, n)))
                    .collect();
                if dets.is_empty() {
                    return Err(format!("`of {pat}` matches no detection of this rule"));
                }
                dets
            }
            _ => return Err("expected `them` or a detection pattern after `of`".into()),
        };
        match n {
            None => Ok(Cond::All(dets)),
            Some(0) => Err("`0 of` is always true; write the condition without it".into()),
            Some(n) if n > dets.len() => Err(format!(
                "`{n} of` needs more detections than the {} it names",
                dets.len()
            )),
            Some(n) => Ok(Cond::AtLeast(n, dets)),
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Number(n) => format!("`{n}`"),
        Tok::And => "`and`".into(),
        Tok::Or => "`or`".into(),
        Tok::Not => "`not`".into(),
        Tok::Of => "`of`".into(),
        Tok::All => "`all`".into(),
        Tok::Them => "`them`".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
    }
}

/// Sigma identifier patterns: `*` matches any run of characters, nothing else is special.
fn glob(pat: &str, name: &str) -> bool {
    let mut parts = pat.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let tail: Vec<&str> = parts.collect();
    let Some((last, middle)) = tail.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = rest.get(i + part.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Parse `text` against the detection `names` of one rule.
pub(crate) fn parse(text: &str, names: &[String]) -> Result<Cond, String> {
    let toks = tokenize(text)?;
    if toks.is_empty() {
        return Err("empty condition".into());
    }
    let mut p = P {
        toks,
        pos: 0,
        names,
    };
    let cond = p.or(0)?;
    match p.peek() {
        None => Ok(cond),
        Some(t) => Err(format!("unexpected {} in condition", describe(t))),
    }
}

/// Evaluate `cond`, asking `det` for detection results (lazily, short-circuiting).
pub(crate) fn eval(cond: &Cond, det: &mut impl FnMut(usize) -> bool) -> bool {
    match cond {
        Cond::Det(i) => det(*i),
        Cond::And(parts) => parts.iter().all(|c| eval(c, det)),
        Cond::Or(parts) => parts.iter().any(|c| eval(c, det)),
        Cond::Not(inner) => !eval(inner, det),
        Cond::AtLeast(n, dets) => {
            let mut hits = 0;
            for (seen, &i) in dets.iter().enumerate() {
                if det(i) {
                    hits += 1;
                    if hits >= *n {
                        return true;
                    }
                }
                // not enough detections left to reach n
                if hits + (dets.len() - seen - 1) < *n {
                    return false;
                }
            }
            false
        }
        Cond::All(dets) => dets.iter().all(|&i| det(i)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn run(cond: &str, dets: &[&str], truth: &[bool]) -> bool {
        let c = parse(cond, &names(dets)).unwrap();
        eval(&c, &mut |i| truth[i])
    }

    #[test]
    fn precedence_not_and_or() {
        let d = ["a", "b", "c"];
        // a or (b and c)
        assert!(run("a or b and c", &d, &[true, false, false]));
        assert!(!run("a or b and c", &d, &[false, true, false]));
        // (not a) and b
        assert!(run("not a and b", &d, &[false, true, false]));
        assert!(!run("not a and b", &d, &[true, true, false]));
        // parentheses override
        assert!(!run("(a or b) and c", &d, &[true, false, false]));
        assert!(run("not (a or b)", &d, &[false, false, true]));
        assert!(run("A AND NOT b", &["A", "b"], &[true, false]));
    }

    #[test]
    fn of_patterns() {
        let d = ["sel_a", "sel_b", "filter", "_hidden"];
        assert!(run("1 of sel_*", &d, &[false, true, false, false]));
        assert!(!run("1 of sel_*", &d, &[false, false, true, true]));
        assert!(run("all of sel_*", &d, &[true, true, false, false]));
        assert!(!run("all of sel_*", &d, &[true, false, false, false]));
        assert!(run("2 of them", &d, &[true, false, true, false]));
        assert!(!run("2 of them", &d, &[true, false, false, true]));
        // `them` leaves out detections named `_...`
        assert!(run("all of them", &d, &[true, true, true, false]));
        assert!(!run("all of them", &d, &[true, false, true, true]));
        assert!(run(
            "1 of them and not filter",
            &d,
            &[true, false, false, false]
        ));
        assert!(run("1 of *a", &d, &[true, false, false, false]));
    }

    #[test]
    fn bad_conditions_are_errors() {
        let d = names(&["sel", "filter"]);
        assert!(parse("sel and nope", &d).unwrap_err().contains("nope"));
        assert!(parse("1 of x*", &d)
            .unwrap_err()
            .contains("matches no detection"));
        assert!(parse("sel and", &d).is_err());
        assert!(parse("(sel", &d).is_err());
        assert!(parse("sel)", &d).is_err());
        assert!(parse("sel*", &d).is_err());
        assert!(parse("3 of them", &d).is_err());
        assert!(parse("sel | count() > 5", &d).is_err());
        assert!(parse("", &d).is_err());
    }

    #[test]
    fn glob_patterns() {
        assert!(glob("sel*", "sel"));
        assert!(glob("sel*", "selection"));
        assert!(glob("*tion", "selection"));
        assert!(glob("s*l*n", "selection"));
        assert!(!glob("s*x*n", "selection"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
    }
}
