//! The rule language's recursive-descent parser: tokens into an untyped syntax tree (one
//! function per grammar rule of the module documentation), stopping at the first syntax error.

use super::{
    Diagnostic, MAX_COMPARISONS, MAX_IN_LIST, MAX_NESTING, Span,
    lexer::{Spanned, Token},
};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CompareOp {
    /// The operator as written in a rule.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

impl ArithOp {
    /// The operator as written in a rule.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
        }
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A number.
    Number(f64),
    /// A string.
    Str(String),
    /// `true` or `false`.
    Bool(bool),
}

/// A node of the syntax tree with the span of the text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Ast {
    /// What the node is.
    pub kind: AstKind,
    /// Where it is in the rule (bytes).
    pub span: Span,
}

/// The kinds of syntax tree node.
#[derive(Debug, Clone, PartialEq)]
pub enum AstKind {
    /// `a or b or …`
    Or(Vec<Ast>),
    /// `a and b and …`
    And(Vec<Ast>),
    /// `not a`
    Not(Box<Ast>),
    /// `a op b`
    Compare(CompareOp, Box<Ast>, Box<Ast>),
    /// `a [not] in (literals)`
    In {
        /// `not in`.
        negated: bool,
        /// The tested value.
        value: Box<Ast>,
        /// The literals with their spans.
        list: Vec<(Literal, Span)>,
    },
    /// `a [not] between low and high`
    Between {
        /// `not between`.
        negated: bool,
        /// The tested value.
        value: Box<Ast>,
        /// Lower bound, inclusive.
        low: Box<Ast>,
        /// Upper bound, inclusive.
        high: Box<Ast>,
    },
    /// `a is [not] null`
    IsNull {
        /// `is not null`.
        negated: bool,
        /// The tested value.
        value: Box<Ast>,
    },
    /// `a op b` for + - * /
    Arith(ArithOp, Box<Ast>, Box<Ast>),
    /// `-a`
    Neg(Box<Ast>),
    /// A literal.
    Literal(Literal),
    /// A field: `tier`, or a profile fact `profile.city` (name `profile.city`).
    Field(String),
    /// A function call.
    Call {
        /// The function's name.
        name: String,
        /// Where the name is.
        name_span: Span,
        /// The arguments.
        args: Vec<Ast>,
    },
}

/// Parses `tokens` (from the lexer) of `text` into a syntax tree.
pub(crate) fn parse(text: &str, tokens: &[Spanned]) -> Result<Ast, Box<Diagnostic>> {
    let mut parser = Parser { text, tokens, pos: 0, depth: 0, parens: 0, comparisons: 0 };
    let ast = parser.expr()?;
    match parser.peek() {
        Token::End => Ok(ast),
        Token::RParen => Err(parser.unexpected(&["\"and\"", "\"or\"", "end of rule"])),
        _ => Err(parser.after_operand()),
    }
}

struct Parser<'a> {
    text: &'a str,
    tokens: &'a [Spanned],
    pos: usize,
    depth: usize,
    parens: usize,
    comparisons: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos].token
    }

    fn span(&self) -> Span {
        self.tokens[self.pos].span
    }

    fn bump(&mut self) -> Spanned {
        let t = self.tokens[self.pos].clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn eat(&mut self, token: &Token) -> Option<Span> {
        if self.peek() == token { Some(self.bump().span) } else { None }
    }

    /// How the current token reads in a message: `"p_alive"`, `"\"0.5\""`, `end of rule`.
    fn found(&self) -> String {
        match self.peek() {
            Token::End => "end of rule".to_owned(),
            _ => format!("{:?}", self.span().slice(self.text)),
        }
    }

    fn unexpected(&self, expected: &[&str]) -> Box<Diagnostic> {
        Box::new(Diagnostic::syntax(
            self.text,
            self.span(),
            expected.iter().map(|s| (*s).to_owned()).collect(),
            self.found(),
            None,
        ))
    }

    /// The error when an operand is complete and what follows cannot continue the rule.
    fn after_operand(&self) -> Box<Diagnostic> {
        let mut expected = vec!["a comparison operator", "\"and\"", "\"or\""];
        if self.parens > 0 {
            expected.push("\")\"");
        } else {
            expected.push("end of rule");
        }
        self.unexpected(&expected)
    }

    fn enter(&mut self) -> Result<(), Box<Diagnostic>> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return fail(Diagnostic::error(
                self.text,
                self.span(),
                format!("the rule nests deeper than {MAX_NESTING} levels"),
                None,
            ));
        }
        Ok(())
    }

    // expr = and_expr { "or" and_expr }
    fn expr(&mut self) -> Result<Ast, Box<Diagnostic>> {
        self.enter()?;
        let first = self.and_expr()?;
        let mut items = vec![first];
        while self.eat(&Token::Or).is_some() {
            items.push(self.and_expr()?);
        }
        self.depth -= 1;
        Ok(join(items, AstKind::Or))
    }

    // and_expr = not_expr { "and" not_expr }
    fn and_expr(&mut self) -> Result<Ast, Box<Diagnostic>> {
        let mut items = vec![self.not_expr()?];
        while self.eat(&Token::And).is_some() {
            items.push(self.not_expr()?);
        }
        Ok(join(items, AstKind::And))
    }

    // not_expr = "not" not_expr | predicate
    fn not_expr(&mut self) -> Result<Ast, Box<Diagnostic>> {
        if let Some(start) = self.eat(&Token::Not) {
            self.enter()?;
            let inner = self.not_expr()?;
            self.depth -= 1;
            let span = start.to(inner.span);
            return Ok(Ast { kind: AstKind::Not(Box::new(inner)), span });
        }
        self.predicate()
    }

    fn count_comparison(&mut self, span: Span) -> Result<(), Box<Diagnostic>> {
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            return fail(Diagnostic::error(
                self.text,
                span,
                format!("the rule has more than {MAX_COMPARISONS} comparisons"),
                None,
            ));
        }
        Ok(())
    }

    // predicate = sum [ comparison ]
    fn predicate(&mut self) -> Result<Ast, Box<Diagnostic>> {
        let lhs = self.sum()?;
        let op = match self.peek() {
            Token::Eq => Some(CompareOp::Eq),
            Token::Ne => Some(CompareOp::Ne),
            Token::Lt => Some(CompareOp::Lt),
            Token::Le => Some(CompareOp::Le),
            Token::Gt => Some(CompareOp::Gt),
            Token::Ge => Some(CompareOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            let op_token = self.bump();
            let rhs = self.operand_after(op_token.span)?;
            let span = lhs.span.to(rhs.span);
            self.count_comparison(span)?;
            return Ok(Ast { kind: AstKind::Compare(op, Box::new(lhs), Box::new(rhs)), span });
        }
        let negated = if matches!(self.peek(), Token::Not)
            && matches!(self.tokens.get(self.pos + 1).map(|t| &t.token), Some(Token::In | Token::Between))
        {
            self.bump();
            true
        } else {
            false
        };
        match self.peek() {
            Token::In => {
                self.bump();
                if self.eat(&Token::LParen).is_none() {
                    return Err(self.unexpected(&["\"(\" opening the list after \"in\""]));
                }
                let mut list = Vec::new();
                loop {
                    let span = self.span();
                    let literal = match self.peek().clone() {
                        Token::Number(n) => Literal::Number(n),
                        Token::Minus => {
                            self.bump();
                            match self.peek() {
                                Token::Number(n) => Literal::Number(-n),
                                _ => return Err(self.unexpected(&["a number after \"-\""])),
                            }
                        }
                        Token::Str(s) => Literal::Str(s),
                        Token::True => Literal::Bool(true),
                        Token::False => Literal::Bool(false),
                        _ => return Err(self.unexpected(&["a number, string, true or false"])),
                    };
                    let span = span.to(self.span());
                    self.bump();
                    list.push((literal, span));
                    if list.len() > MAX_IN_LIST {
                        return fail(Diagnostic::error(
                            self.text,
                            span,
                            format!("an \"in\" list holds at most {MAX_IN_LIST} literals"),
                            None,
                        ));
                    }
                    if self.eat(&Token::Comma).is_some() {
                        continue;
                    }
                    if let Some(close) = self.eat(&Token::RParen) {
                        let span = lhs.span.to(close);
                        self.count_comparison(span)?;
                        return Ok(Ast { kind: AstKind::In { negated, value: Box::new(lhs), list }, span });
                    }
                    return Err(self.unexpected(&["\",\"", "\")\""]));
                }
            }
            Token::Between => {
                let between = self.bump();
                let low = self.operand_after(between.span)?;
                if self.eat(&Token::And).is_none() {
                    return Err(self.unexpected(&["\"and\" between the bounds of \"between\""]));
                }
                let high = self.operand_after(self.tokens[self.pos - 1].span)?;
                let span = lhs.span.to(high.span);
                self.count_comparison(span)?;
                Ok(Ast {
                    kind: AstKind::Between { negated, value: Box::new(lhs), low: Box::new(low), high: Box::new(high) },
                    span,
                })
            }
            Token::Is => {
                self.bump();
                let negated = self.eat(&Token::Not).is_some();
                let Some(null) = self.eat(&Token::Null) else {
                    return Err(self.unexpected(if negated { &["\"null\""] } else { &["\"null\"", "\"not null\""] }));
                };
                let span = lhs.span.to(null);
                self.count_comparison(span)?;
                Ok(Ast { kind: AstKind::IsNull { negated, value: Box::new(lhs) }, span })
            }
            Token::End | Token::And | Token::Or | Token::RParen | Token::Comma => Ok(lhs),
            _ => Err(self.after_operand()),
        }
    }

    /// The operand of a binary operator; a missing one names the operator in the message.
    fn operand_after(&mut self, op: Span) -> Result<Ast, Box<Diagnostic>> {
        if self.starts_operand() {
            return self.sum();
        }
        let what = format!("a number, string, field or \"(\" after {:?}", op.slice(self.text));
        Err(self.unexpected(&[what.as_str()]))
    }

    fn starts_operand(&self) -> bool {
        matches!(
            self.peek(),
            Token::Number(_)
                | Token::Str(_)
                | Token::True
                | Token::False
                | Token::Ident(_)
                | Token::LParen
                | Token::Minus
        )
    }

    // sum = product { ( "+" | "-" ) product }
    fn sum(&mut self) -> Result<Ast, Box<Diagnostic>> {
        let mut lhs = self.product()?;
        loop {
            let op = match self.peek() {
                Token::Plus => ArithOp::Add,
                Token::Minus => ArithOp::Sub,
                _ => return Ok(lhs),
            };
            let op_span = self.bump().span;
            let rhs = if self.starts_operand() { self.product()? } else { self.operand_after(op_span)? };
            let span = lhs.span.to(rhs.span);
            lhs = Ast { kind: AstKind::Arith(op, Box::new(lhs), Box::new(rhs)), span };
        }
    }

    // product = unary { ( "*" | "/" ) unary }
    fn product(&mut self) -> Result<Ast, Box<Diagnostic>> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek() {
                Token::Star => ArithOp::Mul,
                Token::Slash => ArithOp::Div,
                _ => return Ok(lhs),
            };
            let op_span = self.bump().span;
            let rhs = if self.starts_operand() { self.unary()? } else { self.operand_after(op_span)? };
            let span = lhs.span.to(rhs.span);
            lhs = Ast { kind: AstKind::Arith(op, Box::new(lhs), Box::new(rhs)), span };
        }
    }

    // unary = [ "-" ] primary
    fn unary(&mut self) -> Result<Ast, Box<Diagnostic>> {
        if let Some(minus) = self.eat(&Token::Minus) {
            if !self.starts_operand() || matches!(self.peek(), Token::Minus) {
                let what = "a number, field or \"(\" after \"-\"";
                return Err(self.unexpected(&[what]));
            }
            let inner = self.primary()?;
            let span = minus.to(inner.span);
            if let AstKind::Literal(Literal::Number(n)) = inner.kind {
                return Ok(Ast { kind: AstKind::Literal(Literal::Number(-n)), span });
            }
            return Ok(Ast { kind: AstKind::Neg(Box::new(inner)), span });
        }
        self.primary()
    }

    // primary = literal | field | call | "(" expr ")"
    fn primary(&mut self) -> Result<Ast, Box<Diagnostic>> {
        let start = self.span();
        match self.peek().clone() {
            Token::Number(n) => {
                self.bump();
                Ok(Ast { kind: AstKind::Literal(Literal::Number(n)), span: start })
            }
            Token::Str(s) => {
                self.bump();
                Ok(Ast { kind: AstKind::Literal(Literal::Str(s)), span: start })
            }
            Token::True | Token::False => {
                let value = matches!(self.peek(), Token::True);
                self.bump();
                Ok(Ast { kind: AstKind::Literal(Literal::Bool(value)), span: start })
            }
            Token::LParen => {
                self.bump();
                self.parens += 1;
                let inner = self.expr()?;
                self.parens -= 1;
                let Some(close) = self.eat(&Token::RParen) else {
                    return Err(match self.peek() {
                        Token::End | Token::Comma => self.unexpected(&["\")\""]),
                        _ => self.after_operand(),
                    });
                };
                Ok(Ast { kind: inner.kind, span: start.to(close) })
            }
            Token::Ident(name) => {
                self.bump();
                if self.eat(&Token::LParen).is_some() {
                    let mut args = Vec::new();
                    if let Some(close) = self.eat(&Token::RParen) {
                        return Ok(Ast { kind: AstKind::Call { name, name_span: start, args }, span: start.to(close) });
                    }
                    self.parens += 1;
                    loop {
                        if !self.starts_operand() && !matches!(self.peek(), Token::Not) {
                            return Err(self.unexpected(&["a function argument"]));
                        }
                        args.push(self.expr()?);
                        if self.eat(&Token::Comma).is_some() {
                            continue;
                        }
                        if let Some(close) = self.eat(&Token::RParen) {
                            self.parens -= 1;
                            return Ok(Ast {
                                kind: AstKind::Call { name, name_span: start, args },
                                span: start.to(close),
                            });
                        }
                        return Err(self.unexpected(&["\",\"", "\")\""]));
                    }
                }
                if name.eq_ignore_ascii_case("profile") && self.eat(&Token::Dot).is_some() {
                    let key_span = self.span();
                    let Token::Ident(key) = self.peek().clone() else {
                        return Err(self.unexpected(&["a profile fact name after \"profile.\""]));
                    };
                    self.bump();
                    return Ok(Ast { kind: AstKind::Field(format!("profile.{key}")), span: start.to(key_span) });
                }
                Ok(Ast { kind: AstKind::Field(name), span: start })
            }
            _ => Err(self.unexpected(&["a number", "a string", "a field", "a function call", "\"not\"", "\"(\""])),
        }
    }
}

fn join(mut items: Vec<Ast>, make: fn(Vec<Ast>) -> AstKind) -> Ast {
    if items.len() == 1 {
        return items.remove(0);
    }
    let span = items[0].span.to(items[items.len() - 1].span);
    Ast { kind: make(items), span }
}

/// An error result (boxed: a diagnostic is large and errors are rare).
fn fail<T>(diagnostic: Diagnostic) -> Result<T, Box<Diagnostic>> {
    Err(Box::new(diagnostic))
}
