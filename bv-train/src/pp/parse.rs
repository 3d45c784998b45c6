//! The pp language: `op|op(1, 2)|op(size=224, method='nearest')|keep('image', 'labels')`.
//!
//! Arguments are Python literals: integers, floats, strings in single or double quotes,
//! `True`/`False`/`None`, and tuples or lists of those; positional ones come first.

use super::error::PpError;

/// A literal argument value.
#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// `True` or `False`.
    Bool(bool),
    /// `None`.
    None,
    /// A tuple or list.
    List(Vec<Lit>),
}

impl std::fmt::Display for Lit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lit::Int(v) => write!(f, "{v}"),
            Lit::Float(v) => write!(f, "{v:?}"),
            Lit::Str(s) => write!(f, "'{s}'"),
            Lit::Bool(b) => write!(f, "{}", if *b { "True" } else { "False" }),
            Lit::None => write!(f, "None"),
            Lit::List(v) => {
                write!(f, "(")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{x}")?;
                }
                write!(f, ")")
            }
        }
    }
}

/// One `name(args)` of a pipeline string.
#[derive(Clone, Debug, PartialEq)]
pub struct OpCall {
    /// The op name.
    pub name: String,
    /// 1-based column of the name in the pipeline string.
    pub col: usize,
    /// Positional arguments.
    pub positional: Vec<Lit>,
    /// Keyword arguments, in order.
    pub keyword: Vec<(String, Lit)>,
}

struct Parser<'a> {
    spec: &'a str,
    chars: Vec<char>,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, msg: impl Into<String>) -> PpError {
        PpError::Parse {
            spec: self.spec.to_string(),
            col: self.pos + 1,
            msg: msg.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn ident(&mut self) -> Option<String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        (self.pos > start && !self.chars[start].is_ascii_digit())
            .then(|| self.chars[start..self.pos].iter().collect())
            .or_else(|| {
                self.pos = start;
                None
            })
    }

    fn literal(&mut self) -> Result<Lit, PpError> {
        self.skip_ws();
        match self.peek() {
            Some(q @ ('\'' | '"')) => {
                self.pos += 1;
                let start = self.pos;
                while self.peek().is_some_and(|c| c != q) {
                    self.pos += 1;
                }
                if self.peek().is_none() {
                    self.pos = start - 1;
                    return Err(self.err("unterminated string"));
                }
                let s: String = self.chars[start..self.pos].iter().collect();
                self.pos += 1;
                Ok(Lit::Str(s))
            }
            Some(open @ ('(' | '[')) => {
                let close = if open == '(' { ')' } else { ']' };
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        return Ok(Lit::List(items));
                    }
                    items.push(self.literal()?);
                    self.skip_ws();
                    match self.peek() {
                        Some(',') => self.pos += 1,
                        Some(c) if c == close => {}
                        _ => return Err(self.err(format!("expected ',' or '{close}'"))),
                    }
                }
            }
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let start = self.pos;
                self.pos += 1;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
                    || (self.peek().is_some_and(|c| c == '-' || c == '+')
                        && matches!(self.chars[self.pos - 1], 'e' | 'E'))
                {
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                let clean = text.replace('_', "");
                if let Ok(v) = clean.parse::<i64>() {
                    Ok(Lit::Int(v))
                } else if let Ok(v) = clean.parse::<f64>() {
                    Ok(Lit::Float(v))
                } else {
                    self.pos = start;
                    Err(self.err(format!("'{text}' is not a number")))
                }
            }
            _ => {
                let start = self.pos;
                match self.ident().as_deref() {
                    Some("True") => Ok(Lit::Bool(true)),
                    Some("False") => Ok(Lit::Bool(false)),
                    Some("None") => Ok(Lit::None),
                    Some(other) => {
                        self.pos = start;
                        Err(self.err(format!(
                            "'{other}' is not a literal; quote strings, e.g. '{other}'"
                        )))
                    }
                    None => {
                        Err(self
                            .err("expected a literal (number, 'string', True, False, None, tuple)"))
                    }
                }
            }
        }
    }

    fn op(&mut self) -> Result<OpCall, PpError> {
        self.skip_ws();
        let col = self.pos + 1;
        let name = self
            .ident()
            .ok_or_else(|| self.err("expected an op name"))?;
        let mut call = OpCall {
            name,
            col,
            positional: Vec::new(),
            keyword: Vec::new(),
        };
        self.skip_ws();
        if self.peek() != Some('(') {
            return Ok(call);
        }
        self.pos += 1;
        loop {
            self.skip_ws();
            if self.peek() == Some(')') {
                self.pos += 1;
                return Ok(call);
            }
            let start = self.pos;
            let kw = self.ident().and_then(|id| {
                self.skip_ws();
                if self.peek() == Some('=') {
                    self.pos += 1;
                    Some(id)
                } else {
                    self.pos = start;
                    None
                }
            });
            let v = self.literal()?;
            match kw {
                Some(k) => {
                    if call.keyword.iter().any(|(n, _)| *n == k) {
                        self.pos = start;
                        return Err(self.err(format!("keyword '{k}' given twice")));
                    }
                    call.keyword.push((k, v));
                }
                None if !call.keyword.is_empty() => {
                    self.pos = start;
                    return Err(self.err("positional argument after a keyword argument"));
                }
                None => call.positional.push(v),
            }
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {}
                _ => return Err(self.err("expected ',' or ')'")),
            }
        }
    }
}

/// Parses a pipeline string into op calls (empty string: no ops).
pub fn parse(spec: &str) -> Result<Vec<OpCall>, PpError> {
    let mut p = Parser {
        spec,
        chars: spec.chars().collect(),
        pos: 0,
    };
    let mut ops = Vec::new();
    p.skip_ws();
    if p.peek().is_none() {
        return Ok(ops);
    }
    loop {
        ops.push(p.op()?);
        p.skip_ws();
        match p.peek() {
            None => return Ok(ops),
            Some('|') => p.pos += 1,
            Some(c) => return Err(p.err(format!("expected '|' between ops, found '{c}'"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_big_vision_strings() {
        let ops = parse(
            "decode|resize(96, method='nearest')|value_range(-1, 1)|onehot(5, on=0.9, off=.025)|keep(\"image\", 'labels')|central_crop((10, 20))",
        )
        .unwrap();
        let names: Vec<_> = ops.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "decode",
                "resize",
                "value_range",
                "onehot",
                "keep",
                "central_crop"
            ]
        );
        assert_eq!(ops[1].col, 8);
        assert_eq!(
            ops[1].keyword,
            [("method".into(), Lit::Str("nearest".into()))]
        );
        assert_eq!(ops[2].positional, [Lit::Int(-1), Lit::Int(1)]);
        assert_eq!(ops[3].keyword[1], ("off".into(), Lit::Float(0.025)));
        assert_eq!(
            ops[5].positional,
            [Lit::List(vec![Lit::Int(10), Lit::Int(20)])]
        );
    }

    #[test]
    fn errors_give_the_column() {
        let cases = [
            ("decode|resize(96", 17, "expected ',' or ')'"),
            ("decode resize", 8, "expected '|'"),
            ("resize(size=1, 2)", 16, "positional argument after"),
            ("resize(method=nearest)", 15, "quote strings"),
            ("resize('abc)", 8, "unterminated"),
            ("decode||x", 8, "expected an op name"),
        ];
        for (spec, col, msg) in cases {
            match parse(spec).unwrap_err() {
                PpError::Parse { col: c, msg: m, .. } => {
                    assert_eq!(c, col, "{spec}: {m}");
                    assert!(m.contains(msg), "{spec}: {m}");
                }
                other => panic!("{other}"),
            }
        }
    }
}
