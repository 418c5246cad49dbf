//! The xl.cfg syntax: a lexer and a parser producing positioned values.
//!
//! Follows libxlu's grammar (tools/libs/util/libxlu_cfg_l.l and libxlu_cfg_y.y in
//! Xen 4.17):
//! - a statement is `key = value` or `key += value`, ended by a newline or `;`
//!   (the last statement of a file needs no terminator);
//! - keys are `[a-z][._0-9a-z]*`;
//! - a value is an atom (a quoted string, or a number `[0-9][0-9a-fx]*` kept as text)
//!   or a list `[ v, v, ... ]` of values (lists may nest, may span lines and may end
//!   with a trailing comma);
//! - strings are in single or double quotes, do not span lines, and know the escapes
//!   `\" \' \\ \a \b \f \n \r \t \v \xHH \OOO`;
//! - `#` starts a comment that runs to the end of the line.
//!
//! There is no backslash line continuation in xl.cfg: a value spans lines only inside
//! a list. `key += value` appends to an earlier string or list of the same key; as in
//! xl, the last setting of a key wins.
//!
//! Deviations from xl: a carriage return is treated as a blank (xl calls it a lexical
//! error), a comment may end the file without a newline, and octal escapes are read
//! in base 8 (libxlu reads them in base 10, a bug).

use std::fmt;

/// The longest input accepted, to bound memory and time on hostile input.
pub const MAX_SOURCE_LEN: usize = 1 << 20;
/// The deepest list nesting accepted (xl's own configs nest at most 2 deep: vnuma).
pub const MAX_LIST_DEPTH: usize = 8;

/// Where a value or setting came from: the source (file name or `<command line>`) and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub source: String,
    pub line: u32,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source, self.line)
    }
}

/// A parsed value with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string or a number: xl keeps both as text and converts on use.
    Atom { text: String, line: u32 },
    /// A list of values.
    List { items: Vec<Value>, line: u32 },
}

impl Value {
    pub fn line(&self) -> u32 {
        match self {
            Value::Atom { line, .. } | Value::List { line, .. } => *line,
        }
    }
}

/// One `key = value` (or `key += value`, already folded) statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: Value,
    pub origin: Origin,
}

/// A lexical or syntax error, with its place.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{origin}: {message}")]
pub struct ParseError {
    pub origin: Origin,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Number(String),
    Str(String),
    Comma,
    LBracket,
    RBracket,
    Assign,
    AddAssign,
    Semicolon,
    Newline,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("name `{s}`"),
            Tok::Number(s) => format!("number `{s}`"),
            Tok::Str(_) => "a string".to_string(),
            Tok::Comma => "`,`".to_string(),
            Tok::LBracket => "`[`".to_string(),
            Tok::RBracket => "`]`".to_string(),
            Tok::Assign => "`=`".to_string(),
            Tok::AddAssign => "`+=`".to_string(),
            Tok::Semicolon => "`;`".to_string(),
            Tok::Newline => "end of line".to_string(),
        }
    }
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: u32,
    source: &'a str,
}

impl<'a> Lexer<'a> {
    fn err(&self, line: u32, message: impl Into<String>) -> ParseError {
        ParseError {
            origin: Origin {
                source: self.source.to_string(),
                line,
            },
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    /// The next token and the line it starts on; `None` at the end of the input.
    fn next_token(&mut self) -> Result<Option<(Tok, u32)>, ParseError> {
        loop {
            let Some(c) = self.peek() else {
                return Ok(None);
            };
            let line = self.line;
            match c {
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    return Ok(Some((Tok::Newline, line)));
                }
                b'#' => {
                    while let Some(c) = self.peek() {
                        if c == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                b'a'..=b'z' => {
                    let start = self.pos;
                    while matches!(self.peek(), Some(b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_')) {
                        self.pos += 1;
                    }
                    return Ok(Some((Tok::Ident(self.text(start)), line)));
                }
                b'0'..=b'9' => {
                    let start = self.pos;
                    while matches!(self.peek(), Some(b'0'..=b'9' | b'a'..=b'f' | b'x')) {
                        self.pos += 1;
                    }
                    return Ok(Some((Tok::Number(self.text(start)), line)));
                }
                b',' => return Ok(Some((self.single(Tok::Comma), line))),
                b'[' => return Ok(Some((self.single(Tok::LBracket), line))),
                b']' => return Ok(Some((self.single(Tok::RBracket), line))),
                b'=' => return Ok(Some((self.single(Tok::Assign), line))),
                b';' => return Ok(Some((self.single(Tok::Semicolon), line))),
                b'+' if self.src.get(self.pos + 1) == Some(&b'=') => {
                    self.pos += 2;
                    return Ok(Some((Tok::AddAssign, line)));
                }
                b'\'' | b'"' => {
                    let s = self.string(c)?;
                    return Ok(Some((Tok::Str(s), line)));
                }
                b'+' | b'-' | b'.' | b'(' | b')' | b':' => {
                    return Err(self.err(
                        line,
                        format!(
                            "lexical error near `{}` (this looks like Python; xl.cfg is not Python)",
                            self.rest_of_word()
                        ),
                    ));
                }
                _ => {
                    return Err(self.err(
                        line,
                        format!("lexical error near `{}`", self.rest_of_word()),
                    ))
                }
            }
        }
    }

    fn single(&mut self, t: Tok) -> Tok {
        self.pos += 1;
        t
    }

    fn text(&self, start: usize) -> String {
        String::from_utf8_lossy(&self.src[start..self.pos]).into_owned()
    }

    fn rest_of_word(&self) -> String {
        let end = self.src[self.pos..]
            .iter()
            .position(|c| matches!(c, b' ' | b'\t' | b'\n'))
            .map_or(self.src.len(), |n| self.pos + n);
        let end = end.min(self.pos + 40);
        String::from_utf8_lossy(&self.src[self.pos..end]).into_owned()
    }

    /// A quoted string; `self.pos` is at the opening quote.
    fn string(&mut self, quote: u8) -> Result<String, ParseError> {
        let line = self.line;
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err(line, "unterminated string"));
            };
            self.pos += 1;
            match c {
                b'\n' => {
                    return Err(self.err(line, "unterminated string (strings do not span lines)"))
                }
                c if c == quote => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.err(line, "unterminated string"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' | b'\'' | b'\\' => out.push(e),
                        b'a' => out.push(0x07),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'v' => out.push(0x0b),
                        b'x' => {
                            let digits = self.take_digits(2, 16);
                            if digits.len() != 2 {
                                return Err(self.err(
                                    line,
                                    "invalid digit after backslash hex numerical character escape in quoted string",
                                ));
                            }
                            out.push(parse_radix_u8(&digits, 16));
                        }
                        b'0'..=b'7' => {
                            self.pos -= 1;
                            let digits = self.take_digits(3, 8);
                            let v = u32::from_str_radix(&digits, 8).unwrap_or(u32::MAX);
                            let Ok(b) = u8::try_from(v) else {
                                return Err(self.err(
                                    line,
                                    format!("octal escape \\{digits} is out of range"),
                                ));
                            };
                            out.push(b);
                        }
                        b'\n' => {
                            return Err(
                                self.err(line, "unterminated string (strings do not span lines)")
                            )
                        }
                        other => {
                            return Err(self.err(
                                line,
                                format!(
                                    "invalid character `{}` after backslash in quoted string",
                                    char::from(other).escape_default()
                                ),
                            ))
                        }
                    }
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err(line, "string is not valid UTF-8"))
    }

    fn take_digits(&mut self, max: usize, radix: u32) -> String {
        let mut s = String::new();
        while s.len() < max {
            match self.peek() {
                Some(c) if char::from(c).is_digit(radix) => {
                    s.push(char::from(c));
                    self.pos += 1;
                }
                _ => break,
            }
        }
        s
    }
}

fn parse_radix_u8(digits: &str, radix: u32) -> u8 {
    // Callers pass at most two hex digits, which always fit.
    u8::from_str_radix(digits, radix).unwrap_or(0)
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    ahead: Option<(Tok, u32)>,
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<Option<&(Tok, u32)>, ParseError> {
        if self.ahead.is_none() {
            self.ahead = self.lexer.next_token()?;
        }
        Ok(self.ahead.as_ref())
    }

    fn bump(&mut self) -> Result<Option<(Tok, u32)>, ParseError> {
        self.peek()?;
        Ok(self.ahead.take())
    }

    fn err(&self, line: u32, message: impl Into<String>) -> ParseError {
        self.lexer.err(line, message)
    }

    fn skip_newlines(&mut self) -> Result<(), ParseError> {
        while let Some((Tok::Newline, _)) = self.peek()? {
            self.bump()?;
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        let eof_line = self.lexer.line;
        match self.bump()? {
            Some((Tok::Str(text), line)) | Some((Tok::Number(text), line)) => {
                Ok(Value::Atom { text, line })
            }
            Some((Tok::LBracket, line)) => {
                if depth >= MAX_LIST_DEPTH {
                    return Err(
                        self.err(line, format!("lists nested deeper than {MAX_LIST_DEPTH}"))
                    );
                }
                let mut items = Vec::new();
                loop {
                    self.skip_newlines()?;
                    if let Some((Tok::RBracket, _)) = self.peek()? {
                        self.bump()?;
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                    self.skip_newlines()?;
                    match self.bump()? {
                        Some((Tok::Comma, _)) => continue,
                        Some((Tok::RBracket, _)) => break,
                        Some((t, l)) => {
                            return Err(self.err(
                                l,
                                format!(
                                    "syntax error: expected `,` or `]` in list, found {}",
                                    t.describe()
                                ),
                            ))
                        }
                        None => {
                            return Err(self.err(line, "syntax error: list not closed with `]`"))
                        }
                    }
                }
                Ok(Value::List { items, line })
            }
            Some((t, line)) => Err(self.err(
                line,
                format!(
                    "syntax error: expected a value (string, number or list), found {}",
                    t.describe()
                ),
            )),
            None => Err(self.err(
                eof_line,
                "syntax error: expected a value, found end of file",
            )),
        }
    }
}

/// Parses xl.cfg text into its settings in file order (`+=` already folded into the
/// earlier value, as xl does). `source` names the text in errors (a file name, or
/// `<command line>`).
pub fn parse(text: &str, source: &str) -> Result<Vec<Setting>, ParseError> {
    let mut settings: Vec<Setting> = Vec::new();
    parse_into(text, source, &mut settings)?;
    Ok(settings)
}

/// Like [`parse`], appending to (and `+=`-folding with) settings parsed earlier:
/// `rxl create cfg key=value` parses the overrides this way after the file.
pub fn parse_into(text: &str, source: &str, settings: &mut Vec<Setting>) -> Result<(), ParseError> {
    if text.len() > MAX_SOURCE_LEN {
        return Err(ParseError {
            origin: Origin {
                source: source.to_string(),
                line: 1,
            },
            message: format!("config is larger than {MAX_SOURCE_LEN} bytes"),
        });
    }
    let mut p = Parser {
        lexer: Lexer {
            src: text.as_bytes(),
            pos: 0,
            line: 1,
            source,
        },
        ahead: None,
    };
    loop {
        let Some((tok, line)) = p.bump()? else {
            return Ok(());
        };
        match tok {
            Tok::Newline | Tok::Semicolon => continue,
            Tok::Ident(key) => {
                let add = match p.bump()? {
                    Some((Tok::Assign, _)) => false,
                    Some((Tok::AddAssign, _)) => true,
                    Some((t, l)) => {
                        return Err(p.err(
                            l,
                            format!(
                                "syntax error: expected `=` or `+=` after `{key}`, found {}",
                                t.describe()
                            ),
                        ))
                    }
                    None => {
                        return Err(p.err(line, format!("syntax error: `{key}` without `= value`")))
                    }
                };
                let value = p.value(0)?;
                match p.bump()? {
                    None | Some((Tok::Newline, _)) | Some((Tok::Semicolon, _)) => {}
                    Some((t, l)) => {
                        return Err(p.err(
                            l,
                            format!(
                                "syntax error: expected end of line or `;` after the value of `{key}`, found {}",
                                t.describe()
                            ),
                        ))
                    }
                }
                let origin = Origin {
                    source: source.to_string(),
                    line,
                };
                store(settings, key, value, add, origin).map_err(|message| ParseError {
                    origin: Origin {
                        source: source.to_string(),
                        line,
                    },
                    message,
                })?;
            }
            t => {
                return Err(p.err(
                    line,
                    format!(
                        "syntax error: expected a setting `key = value`, found {}",
                        t.describe()
                    ),
                ))
            }
        }
    }
}

fn store(
    settings: &mut Vec<Setting>,
    key: String,
    value: Value,
    add: bool,
    origin: Origin,
) -> Result<(), String> {
    let value = if add {
        match settings.iter().rev().find(|s| s.key == key) {
            None => value,
            Some(prev) => match (&prev.value, value) {
                (Value::Atom { text: a, line }, Value::Atom { text: b, .. }) => Value::Atom {
                    text: format!("{a}{b}"),
                    line: *line,
                },
                (Value::List { items: a, line }, Value::List { items: b, .. }) => {
                    let mut items = a.clone();
                    items.extend(b);
                    Value::List { items, line: *line }
                }
                _ => {
                    return Err(format!(
                        "`{key} +=`: cannot add a list to a string or a string to a list"
                    ))
                }
            },
        }
    } else {
        value
    };
    settings.push(Setting { key, value, origin });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atom(s: &Setting) -> &str {
        match &s.value {
            Value::Atom { text, .. } => text,
            Value::List { .. } => panic!("expected an atom"),
        }
    }

    #[test]
    fn parses_the_xl_example_config() {
        let text = r#"
# guest config
name    = "guest"
kernel  = '/guest/Image'
memory  = 128 ; vcpus = 2
extra   = "console=hvc0 rdinit=/init"
disk = [ 'format=raw, vdev=xvda, access=rw, target=/d.img',
         "phy:/dev/loop0,xvdb,r",   # second disk
       ]
mem_hex = 0x80
"#;
        let s = parse(text, "guest.cfg").expect("parses");
        let keys: Vec<&str> = s.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            ["name", "kernel", "memory", "vcpus", "extra", "disk", "mem_hex"]
        );
        assert_eq!(atom(&s[0]), "guest");
        assert_eq!(atom(&s[1]), "/guest/Image");
        assert_eq!(atom(&s[2]), "128");
        assert_eq!(s[3].origin.line, 5);
        assert_eq!(atom(&s[6]), "0x80");
        match &s[5].value {
            Value::List { items, line } => {
                assert_eq!(*line, 7);
                assert_eq!(items.len(), 2);
                assert_eq!(
                    items[1],
                    Value::Atom {
                        text: "phy:/dev/loop0,xvdb,r".into(),
                        line: 8
                    }
                );
            }
            v => panic!("not a list: {v:?}"),
        }
    }

    #[test]
    fn escapes_like_libxlu() {
        let s = parse(r#"a = "q\"\'\\\t\x41\101\n""#, "t").expect("parses");
        assert_eq!(atom(&s[0]), "q\"'\\\tAA\n");
        let e = parse(r#"a = "\q""#, "t").unwrap_err();
        assert!(e.message.contains("after backslash"), "{e}");
        let e = parse(r#"a = "\xg1""#, "t").unwrap_err();
        assert!(e.message.contains("hex"), "{e}");
    }

    #[test]
    fn plus_equals_concatenates_strings_and_lists() {
        let s = parse(
            "extra = \"a\"\nextra += \" b\"\nl = ['x']\nl += ['y', 'z']\n",
            "t",
        )
        .expect("parses");
        assert_eq!(atom(&s[1]), "a b");
        match &s[3].value {
            Value::List { items, .. } => assert_eq!(items.len(), 3),
            v => panic!("{v:?}"),
        }
        let e = parse("l = ['x']\nl += 'y'\n", "t").unwrap_err();
        assert_eq!(e.origin.line, 2);
        // `+=` without an earlier value is a plain assignment.
        let s = parse("n += '1'", "t").expect("parses");
        assert_eq!(atom(&s[0]), "1");
    }

    #[test]
    fn lists_nest_span_lines_and_allow_trailing_commas() {
        let s = parse("v = [\n [ '1', '2', ],\n\n [],\n]\n", "t").expect("parses");
        match &s[0].value {
            Value::List { items, .. } => {
                assert_eq!(items.len(), 2);
                assert_eq!(
                    items[1],
                    Value::List {
                        items: vec![],
                        line: 4
                    }
                );
            }
            v => panic!("{v:?}"),
        }
        assert!(parse("v = [,]", "t").is_err());
        assert!(parse("v = ['a' 'b']", "t").is_err());
        let deep = format!(
            "v = {}{}",
            "[".repeat(MAX_LIST_DEPTH + 1),
            "]".repeat(MAX_LIST_DEPTH + 1)
        );
        assert!(parse(&deep, "t").unwrap_err().message.contains("nested"));
    }

    #[test]
    fn errors_name_source_and_line() {
        let e = parse("name = 'a'\n\nmemory = \n", "g.cfg").unwrap_err();
        assert_eq!(
            e.origin,
            Origin {
                source: "g.cfg".into(),
                line: 3
            }
        );
        assert!(e.to_string().starts_with("g.cfg:3: "), "{e}");

        let e = parse("a = 'x'\nb = 'unterminated\n", "g.cfg").unwrap_err();
        assert_eq!(e.origin.line, 2);
        assert!(e.message.contains("unterminated"));

        let e = parse("vcpus = 1 + 1\n", "g.cfg").unwrap_err();
        assert!(e.message.contains("Python"), "{e}");

        let e = parse("Name = 'x'\n", "g.cfg").unwrap_err();
        assert!(e.message.contains("lexical error"), "{e}");

        let e = parse("name 'x'\n", "g.cfg").unwrap_err();
        assert!(e.message.contains("expected `=`"), "{e}");

        let e = parse("name = 'x' 'y'\n", "g.cfg").unwrap_err();
        assert!(e.message.contains("end of line"), "{e}");
    }

    #[test]
    fn last_statement_needs_no_newline_and_comment_may_end_file() {
        let s = parse("a = 1; b = 2", "t").expect("parses");
        assert_eq!(s.len(), 2);
        let s = parse("a = 1 # trailing", "t").expect("parses");
        assert_eq!(atom(&s[0]), "1");
    }

    #[test]
    fn oversized_input_is_refused() {
        let big = "#".repeat(MAX_SOURCE_LEN + 1);
        assert!(parse(&big, "t").unwrap_err().message.contains("larger"));
    }
}
