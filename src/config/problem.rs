//! What is wrong: with a policy file (every problem, each with its place), or with the route an
//! operator names.

use std::fmt;

/// One thing wrong with a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `(line, column)`, 1-based, where the YAML gives one.
    pub at: Option<(usize, usize)>,
    /// A short lowercase sentence.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, col)) => write!(f, "{line}:{col}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Every problem a policy file has, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Why [`super::Policy::route_named`] found no route, as a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// The name is no route's.
    Unknown(String),
    /// No name, and there are several routes.
    Unnamed(String),
}
