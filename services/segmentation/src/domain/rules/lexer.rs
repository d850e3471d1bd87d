//! The rule language's lexer: turns rule text into tokens with their byte spans, or the first
//! lexical error (an unterminated string, a bad escape, a stray character).

use super::{Diagnostic, Span};

/// One token of a rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token {
    /// A field or function name (as written; keywords are recognised case-insensitively).
    Ident(String),
    /// A number literal.
    Number(f64),
    /// A string literal, unescaped.
    Str(String),
    And,
    Or,
    Not,
    In,
    Between,
    Is,
    Null,
    True,
    False,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    LParen,
    RParen,
    Comma,
    Dot,
    /// The end of the rule.
    End,
}

/// A token and where it is in the rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spanned {
    pub(crate) token: Token,
    pub(crate) span: Span,
}

/// Splits `text` into tokens, ending with [`Token::End`].
pub(crate) fn tokenize(text: &str) -> Result<Vec<Spanned>, Box<Diagnostic>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let simple = |token: Token, len: usize| Spanned { token, span: Span::new(start, start + len) };
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => tokens.push(simple(Token::LParen, 1)),
            b')' => tokens.push(simple(Token::RParen, 1)),
            b',' => tokens.push(simple(Token::Comma, 1)),
            b'.' => tokens.push(simple(Token::Dot, 1)),
            b'+' => tokens.push(simple(Token::Plus, 1)),
            b'-' => tokens.push(simple(Token::Minus, 1)),
            b'*' => tokens.push(simple(Token::Star, 1)),
            b'/' => tokens.push(simple(Token::Slash, 1)),
            b'=' => tokens.push(simple(Token::Eq, 1)),
            b'!' if bytes.get(i + 1) == Some(&b'=') => tokens.push(simple(Token::Ne, 2)),
            b'<' if bytes.get(i + 1) == Some(&b'=') => tokens.push(simple(Token::Le, 2)),
            b'<' => tokens.push(simple(Token::Lt, 1)),
            b'>' if bytes.get(i + 1) == Some(&b'=') => tokens.push(simple(Token::Ge, 2)),
            b'>' => tokens.push(simple(Token::Gt, 1)),
            b'"' => {
                let (value, end) = string(text, start)?;
                tokens.push(Spanned { token: Token::Str(value), span: Span::new(start, end) });
                i = end;
                continue;
            }
            b'0'..=b'9' => {
                let (value, end) = number(text, start)?;
                tokens.push(Spanned { token: Token::Number(value), span: Span::new(start, end) });
                i = end;
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut end = i;
                while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                    end += 1;
                }
                let word = &text[start..end];
                let token = match word.to_ascii_lowercase().as_str() {
                    "and" => Token::And,
                    "or" => Token::Or,
                    "not" => Token::Not,
                    "in" => Token::In,
                    "between" => Token::Between,
                    "is" => Token::Is,
                    "null" => Token::Null,
                    "true" => Token::True,
                    "false" => Token::False,
                    _ => Token::Ident(word.to_owned()),
                };
                tokens.push(Spanned { token, span: Span::new(start, end) });
                i = end;
                continue;
            }
            _ => {
                let ch = text[start..].chars().next().unwrap_or('\u{fffd}');
                let span = Span::new(start, start + ch.len_utf8());
                let found = match ch {
                    '!' => "\"!\" (use \"!=\" or \"not\")".to_owned(),
                    _ => format!("{:?}", ch.to_string()),
                };
                return fail(Diagnostic::syntax(
                    text,
                    span,
                    vec!["a field, function, literal, operator or \"(\"".to_owned()],
                    found,
                    None,
                ));
            }
        }
        i += tokens.last().map_or(1, |t| t.span.end - t.span.start);
    }
    tokens.push(Spanned { token: Token::End, span: Span::new(text.len(), text.len()) });
    Ok(tokens)
}

/// Reads the string literal starting at the quote at `start`: its value and the byte after it.
fn string(text: &str, start: usize) -> Result<(String, usize), Box<Diagnostic>> {
    let mut value = String::new();
    let mut chars = text[start + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        let at = start + 1 + offset;
        match c {
            '"' => return Ok((value, at + 1)),
            '\\' => match chars.next() {
                Some((_, '"')) => value.push('"'),
                Some((_, '\\')) => value.push('\\'),
                Some((_, other)) => {
                    let span = Span::new(at, at + 1 + other.len_utf8());
                    return fail(Diagnostic::syntax(
                        text,
                        span,
                        vec!["\\\" or \\\\ (the only escapes in a string)".to_owned()],
                        format!("{:?}", format!("\\{other}")),
                        None,
                    ));
                }
                None => break,
            },
            c => value.push(c),
        }
    }
    fail(Diagnostic::syntax(
        text,
        Span::new(text.len(), text.len()),
        vec!["a closing '\"' for the string opened at column ".to_owned() + &column_of(text, start)],
        "end of rule".to_owned(),
        None,
    ))
}

fn column_of(text: &str, byte: usize) -> String {
    let (_, column) = super::line_column(text, byte);
    column.to_string()
}

/// Reads the number literal at `start`: `digits [ "." digits ]`.
fn number(text: &str, start: usize) -> Result<(f64, usize), Box<Diagnostic>> {
    let bytes = text.as_bytes();
    let mut end = start;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    if end < bytes.len() && bytes[end] == b'.' {
        end += 1;
        if end >= bytes.len() || !bytes[end].is_ascii_digit() {
            let found = text[end..].chars().next().map_or("end of rule".to_owned(), |c| format!("{:?}", c.to_string()));
            let len = text[end..].chars().next().map_or(0, char::len_utf8);
            return fail(Diagnostic::syntax(
                text,
                Span::new(end, end + len),
                vec!["a digit after the decimal point".to_owned()],
                found,
                None,
            ));
        }
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
    }
    if end < bytes.len() && (bytes[end].is_ascii_alphabetic() || bytes[end] == b'_') {
        let mut word_end = end;
        while word_end < bytes.len() && (bytes[word_end].is_ascii_alphanumeric() || bytes[word_end] == b'_') {
            word_end += 1;
        }
        return fail(Diagnostic::syntax(
            text,
            Span::new(start, word_end),
            vec!["a number (digits with an optional decimal part)".to_owned()],
            format!("{:?}", &text[start..word_end]),
            None,
        ));
    }
    // Digits and one dot always parse as f64.
    let value = text[start..end].parse::<f64>().unwrap_or(f64::NAN);
    Ok((value, end))
}

/// An error result (boxed: a diagnostic is large and errors are rare).
fn fail<T>(diagnostic: Diagnostic) -> Result<T, Box<Diagnostic>> {
    Err(Box::new(diagnostic))
}
