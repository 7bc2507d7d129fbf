//! The lexer: C tokens with their line numbers, comments kept as tokens
//! (they become docs), preprocessor directives as one token per logical
//! line.

use crate::Error;

/// A token of the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    /// An integer (or other) number, as written.
    Number(String),
    /// A string literal's contents, escapes as written.
    Str(String),
    Char(String),
    Punct(&'static str),
    /// A comment's text without its delimiters. `trailing`: code precedes
    /// it on its first line.
    Comment {
        text: String,
        end_line: usize,
        trailing: bool,
    },
    /// `#name rest...`: the directive's name and the tokens after it on
    /// its logical line (comments moved out, after it).
    /// `function_like`: a `(` follows the first name with no space
    /// (`#define f(x)`).
    Directive {
        name: String,
        body: Vec<Token>,
        function_like: bool,
    },
    /// Lines a conditional left out (set by [`crate::cond`], never by the
    /// lexer): the condition as written and the last line left out.
    Skipped {
        cond: String,
        end_line: usize,
    },
}

/// A token and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
}

const PUNCTS: &[&str] = &[
    "<<=", ">>=", "...", "->", "++", "--", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "+=",
    "-=", "*=", "/=", "%=", "&=", "|=", "^=", "##", "{", "}", "[", "]", "(", ")", ";", ",", ":",
    "=", "+", "-", "*", "/", "%", "&", "|", "^", "!", "~", "<", ">", "?", ".", "#",
];

struct Lexer<'a> {
    file: &'a str,
    src: &'a [u8],
    pos: usize,
    line: usize,
    /// Whether a non-comment token was seen on the current line.
    code_on_line: bool,
}

/// Splits `src` into tokens.
pub fn lex(file: &str, src: &str) -> Result<Vec<Token>, Error> {
    let mut lx = Lexer {
        file,
        src: src.as_bytes(),
        pos: 0,
        line: 1,
        code_on_line: false,
    };
    let mut out = Vec::new();
    let mut line_start = true;
    while let Some(c) = lx.peek(0) {
        if c == b'\n' {
            lx.bump();
            line_start = true;
            continue;
        }
        if c.is_ascii_whitespace() || (c == b'\\' && lx.peek(1) == Some(b'\n')) {
            lx.bump();
            continue;
        }
        if c == b'#' && line_start {
            lx.bump();
            lx.code_on_line = true;
            let d = lx.directive()?;
            out.extend(d);
            line_start = true;
            continue;
        }
        line_start = false;
        if let Some(t) = lx.token(false)? {
            out.push(t);
        }
    }
    Ok(out)
}

impl Lexer<'_> {
    fn peek(&self, n: usize) -> Option<u8> {
        self.src.get(self.pos + n).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek(0)?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
            self.code_on_line = false;
        }
        Some(c)
    }

    fn err(&self, line: usize, msg: impl Into<String>) -> Error {
        Error::at(self.file, line, msg)
    }

    /// The rest of a directive's logical line: its name and tokens, then
    /// the comments that were on it.
    fn directive(&mut self) -> Result<Vec<Token>, Error> {
        let line = self.line;
        let mut body = Vec::new();
        let mut comments = Vec::new();
        let mut function_like = false;
        loop {
            match self.peek(0) {
                None | Some(b'\n') => break,
                Some(b'\\') if self.peek(1) == Some(b'\n') => {
                    self.bump();
                    self.bump();
                    // The continuation line carries the directive's code.
                    self.code_on_line = true;
                }
                Some(c) if c.is_ascii_whitespace() => {
                    self.bump();
                }
                Some(_) => {
                    if let Some(t) = self.token(true)? {
                        if body.len() == 1 && matches!(t.tok, Tok::Ident(_)) {
                            function_like = self.peek(0) == Some(b'(');
                        }
                        if matches!(t.tok, Tok::Comment { .. }) {
                            comments.push(t);
                        } else {
                            body.push(t);
                        }
                    }
                }
            }
        }
        let mut body = body.into_iter();
        let name = match body.next() {
            Some(Token {
                tok: Tok::Ident(n), ..
            }) => n,
            None => String::new(),
            Some(t) => return Err(self.err(t.line, "malformed preprocessor directive")),
        };
        let mut out = vec![Token {
            tok: Tok::Directive {
                name,
                body: body.collect(),
                function_like,
            },
            line,
        }];
        out.extend(comments);
        Ok(out)
    }

    /// One token at the current position (not whitespace).
    fn token(&mut self, in_directive: bool) -> Result<Option<Token>, Error> {
        let line = self.line;
        let c = self.peek(0).unwrap_or(0);
        if c == b'/' && self.peek(1) == Some(b'*') {
            let trailing = self.code_on_line;
            self.bump();
            self.bump();
            let start = self.pos;
            loop {
                match self.peek(0) {
                    None => return Err(self.err(line, "unterminated comment")),
                    Some(b'*') if self.peek(1) == Some(b'/') => break,
                    Some(_) => {
                        self.bump();
                    }
                }
            }
            let text = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
            let end_line = self.line;
            self.bump();
            self.bump();
            // A comment inside a directive keeps the directive's line going.
            if in_directive {
                self.code_on_line = true;
            }
            return Ok(Some(Token {
                tok: Tok::Comment {
                    text,
                    end_line,
                    trailing,
                },
                line,
            }));
        }
        if c == b'/' && self.peek(1) == Some(b'/') {
            let trailing = self.code_on_line;
            let start = self.pos + 2;
            while !matches!(self.peek(0), None | Some(b'\n')) {
                self.bump();
            }
            let text = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
            return Ok(Some(Token {
                tok: Tok::Comment {
                    text,
                    end_line: line,
                    trailing,
                },
                line,
            }));
        }
        self.code_on_line = true;
        let tok = if c.is_ascii_alphabetic() || c == b'_' {
            let start = self.pos;
            while self
                .peek(0)
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
            {
                self.bump();
            }
            Tok::Ident(String::from_utf8_lossy(&self.src[start..self.pos]).into_owned())
        } else if c.is_ascii_digit()
            || (c == b'.' && self.peek(1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = self.pos;
            while self
                .peek(0)
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_')
            {
                self.bump();
            }
            Tok::Number(String::from_utf8_lossy(&self.src[start..self.pos]).into_owned())
        } else if c == b'"' || c == b'\'' {
            self.bump();
            let start = self.pos;
            loop {
                match self.peek(0) {
                    None | Some(b'\n') => {
                        return Err(self.err(line, "unterminated string or character literal"))
                    }
                    Some(b'\\') => {
                        self.bump();
                        self.bump();
                    }
                    Some(q) if q == c => break,
                    Some(_) => {
                        self.bump();
                    }
                }
            }
            let text = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
            self.bump();
            if c == b'"' {
                Tok::Str(text)
            } else {
                Tok::Char(text)
            }
        } else {
            let rest = &self.src[self.pos..];
            let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(p.as_bytes())) else {
                return Err(self.err(
                    line,
                    format!("unexpected character `{}`", char::from(c).escape_default()),
                ));
            };
            for _ in 0..p.len() {
                self.bump();
            }
            Tok::Punct(p)
        };
        Ok(Some(Token { tok, line }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok> {
        lex("t.h", src)
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn directives_take_their_logical_line_and_give_up_comments() {
        let toks = lex(
            "t.h",
            "#define A \\\n  (1U << 3) /* the A */\nint x; // trailing\n",
        )
        .unwrap();
        assert_eq!(toks.len(), 6);
        let Tok::Directive { name, body, .. } = &toks[0].tok else {
            panic!("{toks:?}")
        };
        assert_eq!(name, "define");
        assert_eq!(body.len(), 6);
        assert_eq!(body[5].line, 2);
        assert!(
            matches!(&toks[1].tok, Tok::Comment { text, trailing: true, .. } if text == " the A ")
        );
        assert_eq!(toks[2].line, 3);
        assert!(matches!(&toks[5].tok, Tok::Comment { trailing: true, .. }));
    }

    #[test]
    fn comments_know_whether_code_precedes_them() {
        let k = kinds("/* a\n b */\nint y;\n");
        assert!(matches!(
            &k[0],
            Tok::Comment {
                trailing: false,
                end_line: 2,
                ..
            }
        ));
        assert_eq!(k[1], Tok::Ident("int".into()));
    }

    #[test]
    fn unterminated_comment_is_an_error_with_its_line() {
        let e = lex("t.h", "int a;\n/* never closed\n").unwrap_err();
        assert_eq!(e.to_string(), "t.h:2: unterminated comment");
    }
}
